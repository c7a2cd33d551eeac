#include "fuse/command_line.h"

#include <gtest/gtest.h>

namespace dfs::fuse {
namespace {

TEST(CommandLineTest, Parse_SplitsSourceAndOptions) {
  auto cl = ParseCommandLine({"dfs", "m1:7400,m2:7400", "/mnt/dfs", "-o",
                              "rw,dev,suid,cache_size=1G,attr_timeout=5,retry_timeout=10s,allow_other"},
                             /*running_as_root=*/false);
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  EXPECT_EQ(cl->source, "m1:7400,m2:7400");
  EXPECT_EQ(cl->mount_point, "/mnt/dfs");
  EXPECT_EQ(cl->cache_bytes, 1ull << 30);
  EXPECT_DOUBLE_EQ(cl->attr_timeout_s, 5);
  EXPECT_EQ(cl->retry_timeout_ms, 10'000);
  EXPECT_FALSE(cl->foreground);
  ASSERT_EQ(cl->fuse_args.size(), 3u);
  EXPECT_EQ(cl->fuse_args[1], "-o");
  const std::string& o = cl->fuse_args[2];
  EXPECT_NE(o.find("fsname=m1:7400\\,m2:7400"), std::string::npos);  // escaped; the mount table shows m1:7400,m2:7400
  EXPECT_NE(o.find("subtype=dfs"), std::string::npos);
  EXPECT_NE(o.find("default_permissions"), std::string::npos);
  EXPECT_NE(o.find("allow_other"), std::string::npos);
  EXPECT_NE(o.find("dev"), std::string::npos);
  EXPECT_EQ(o.find("cache_size"), std::string::npos);  // ours, not libfuse's
}

TEST(CommandLineTest, Parse_MountHelperShape) {
  // What mount.fuse3 runs for an fstab line: options joined after -o.
  auto cl = ParseCommandLine({"dfs", "127.0.0.1:7400", "/mnt/x", "-o", "rw,_netdev,ro"}, true);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->read_only);
  EXPECT_NE(cl->fuse_args[2].find("allow_other"), std::string::npos);
  EXPECT_EQ(cl->fuse_args[2].find("_netdev"), std::string::npos);
}

TEST(CommandLineTest, Parse_AclsOnUnlessNoacl) {
  auto cl = ParseCommandLine({"dfs", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->posix_acl);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "noacl"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->posix_acl);
  EXPECT_EQ(cl->fuse_args[2].find("acl"), std::string::npos);  // ours, not libfuse's
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "noacl,acl"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->posix_acl);
}

TEST(CommandLineTest, Parse_LocksClusterUnlessLocal) {
  auto cl = ParseCommandLine({"dfs", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->cluster_locks);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "locks=local"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->cluster_locks);
  EXPECT_EQ(cl->fuse_args[2].find("locks"), std::string::npos);  // ours, not libfuse's
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "locks=maybe"}, false);
  ASSERT_FALSE(cl.ok());
  EXPECT_NE(cl.status().message().find("locks=maybe"), std::string::npos);
}

TEST(CommandLineTest, Parse_MetaStreamsOnUnlessOff) {
  auto cl = ParseCommandLine({"dfs", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->meta_streams);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "meta_streams=off"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->meta_streams);
  EXPECT_EQ(cl->fuse_args[2].find("meta_streams"), std::string::npos);  // ours, not libfuse's
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "meta_streams=on"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->meta_streams);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "meta_streams=1"}, false);
  ASSERT_FALSE(cl.ok());
  EXPECT_NE(cl.status().message().find("meta_streams=1"), std::string::npos);
}

TEST(CommandLineTest, Parse_ForegroundAndDebug) {
  auto cl = ParseCommandLine({"dfs", "-f", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->foreground);
  auto d = ParseCommandLine({"dfs", "h:1", "/m", "-d"}, false);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->foreground);
  EXPECT_EQ(d->fuse_args.back(), "-d");
}

TEST(CommandLineTest, Parse_RejectsBadInput) {
  EXPECT_EQ(ParseCommandLine({"dfs", "/mnt"}, false).status().code(), common::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCommandLine({"dfs", "a:1", "/m", "/x"}, false).status().code(),
            common::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseCommandLine({"dfs", "nohostport", "/m"}, false).ok());
  EXPECT_FALSE(ParseCommandLine({"dfs", "a:1", "/m", "-o", "cache_size=lots"}, false).ok());
  EXPECT_FALSE(ParseCommandLine({"dfs", "a:1", "/m", "-o"}, false).ok());
  EXPECT_FALSE(ParseCommandLine({"dfs", "a:1", "/m", "--frobnicate"}, false).ok());
}

TEST(CommandLineTest, Parse_MetricsEndpoint) {
  auto cl = ParseCommandLine({"dfs", "a:1", "/m", "-o", "metrics=127.0.0.1:9100"}, false);
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  EXPECT_EQ(cl->metrics, "127.0.0.1:9100");
  EXPECT_EQ(cl->fuse_args[2].find("metrics"), std::string::npos);  // ours, not libfuse's
  auto bad = ParseCommandLine({"dfs", "a:1", "/m", "-o", "metrics=nowhere"}, false);
  EXPECT_EQ(bad.status().code(), common::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("metrics"), std::string::npos);
}

TEST(CommandLineTest, Parse_Help) {
  auto cl = ParseCommandLine({"dfs", "-h"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->show_help);
  EXPECT_NE(Usage("dfs").find("SOURCE MOUNTPOINT"), std::string::npos);
}

TEST(CommandLineTest, Parse_FlushAfter) {
  auto cl = ParseCommandLine({"dfs", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_DOUBLE_EQ(cl->flush_after_s, 1.0);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "flush_after=0.25"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_DOUBLE_EQ(cl->flush_after_s, 0.25);
  EXPECT_EQ(cl->fuse_args[2].find("flush_after"), std::string::npos);  // ours, not libfuse's
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "flush_after=soon"}, false);
  ASSERT_FALSE(cl.ok());
  EXPECT_NE(cl.status().message().find("flush_after=soon"), std::string::npos);
}

TEST(CommandLineTest, Parse_NoticesOnUnlessOff) {
  auto cl = ParseCommandLine({"dfs", "h:1", "/m"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->change_notices);
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "notices=off"}, false);
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->change_notices);
  EXPECT_EQ(cl->fuse_args[2].find("notices"), std::string::npos);  // ours, not libfuse's
  cl = ParseCommandLine({"dfs", "h:1", "/m", "-o", "notices=yes"}, false);
  ASSERT_FALSE(cl.ok());
  EXPECT_NE(cl.status().message().find("notices=yes"), std::string::npos);
}

}  // namespace
}  // namespace dfs::fuse
