#include "common/flags.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

namespace dfs::common {
namespace {

TEST(FlagsTest, ParseHostPort_AcceptsHostsAndIpv6) {
  auto hp = ParseHostPort("meta1:7400");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "meta1");
  EXPECT_EQ(hp->port, 7400);
  auto v6 = ParseHostPort("[::1]:9000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ToString(), "[::1]:9000");
  EXPECT_TRUE(ParseHostPort("127.0.0.1:0", /*allow_port_zero=*/true).ok());
}

TEST(FlagsTest, ParseHostPort_RejectsMalformed) {
  for (const char* bad : {"", "meta1", ":7400", "meta1:", "meta1:0", "meta1:65536", "meta1:74x",
                          "::1:80", "[::1]80", "a:1:2"}) {
    auto r = ParseHostPort(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(FlagsTest, ParseAddressList_SplitsAndRejectsDuplicates) {
  auto list = ParseAddressList("meta1:7400,meta2:7400, meta3:7401");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].ToString(), "meta3:7401");
  EXPECT_FALSE(ParseAddressList("a:1,a:1").ok());
  EXPECT_FALSE(ParseAddressList("").ok());
  EXPECT_FALSE(ParseAddressList("a:1,").ok());
}

TEST(FlagsTest, ParseByteSize_BinaryUnits) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64K"), 65536u);
  EXPECT_EQ(*ParseByteSize("64KiB"), 65536u);
  EXPECT_EQ(*ParseByteSize("1.5G"), 1536ull << 20);
  EXPECT_EQ(*ParseByteSize("2T"), 2ull << 40);
  EXPECT_FALSE(ParseByteSize("12Q").ok());
  EXPECT_FALSE(ParseByteSize("G").ok());
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_FALSE(ParseByteSize("99999999999T").ok());
}

TEST(FlagsTest, ParseDurationMs_Units) {
  EXPECT_EQ(*ParseDurationMs("250ms"), 250);
  EXPECT_EQ(*ParseDurationMs("10s"), 10'000);
  EXPECT_EQ(*ParseDurationMs("1.5s"), 1'500);
  EXPECT_EQ(*ParseDurationMs("5m"), 300'000);
  EXPECT_EQ(*ParseDurationMs("1h"), 3'600'000);
  EXPECT_EQ(*ParseDurationMs("1500"), 1'500);
  EXPECT_FALSE(ParseDurationMs("soon").ok());
  EXPECT_FALSE(ParseDurationMs("10d").ok());
}

TEST(FlagsTest, AddLogFlags_ParsesFormatAndLevel) {
  CLI::App app("test");
  LogOptions options;
  AddLogFlags(app, options);
  const char* argv[] = {"test", "--log-format", "json", "--log-level", "debug", "--log-file", "/tmp/x.log"};
  app.parse(7, const_cast<char**>(argv));
  EXPECT_EQ(options.format, LogFormat::kJson);
  EXPECT_EQ(options.level, "debug");
  EXPECT_EQ(options.file, "/tmp/x.log");
}

TEST(FlagsTest, AddLogFlags_RejectsUnknownFormat) {
  CLI::App app("test");
  LogOptions options;
  AddLogFlags(app, options);
  const char* argv[] = {"test", "--log-format", "xml"};
  EXPECT_THROW(app.parse(3, const_cast<char**>(argv)), CLI::ValidationError);
}

}  // namespace
}  // namespace dfs::common
