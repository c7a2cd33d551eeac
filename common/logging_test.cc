#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace dfs::common {
namespace {

std::string TempPath(const char* name) {
  return (std::filesystem::temp_directory_path() /
          (std::string(name) + "." + std::to_string(getpid()))).string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(LoggingTest, AppendJsonEscaped_EscapesSpecials) {
  std::string out;
  AppendJsonEscaped("a\"b\\c\nd\te\x01" "f/é", &out);
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\te\\u0001f/é");
}

TEST(LoggingTest, InitLogging_JsonLinesAreOneObjectPerLine) {
  std::string path = TempPath("dfs-log-json");
  std::filesystem::remove(path);
  LogOptions options;
  options.name = "dfs-test";
  options.format = LogFormat::kJson;
  options.file = path;
  ASSERT_TRUE(InitLogging(options).ok());
  spdlog::info("chunk {} said \"hi\"\nsecond line", 42);
  spdlog::debug("not shown at info");
  spdlog::default_logger()->flush();

  std::string text = ReadFile(path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text.front(), '{');
  EXPECT_NE(text.find(R"("level":"info")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("logger":"dfs-test")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("msg":"chunk 42 said \"hi\"\nsecond line"})"), std::string::npos) << text;
  EXPECT_EQ(text.find("not shown"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(LoggingTest, InitLogging_RejectsBadInput) {
  LogOptions options;
  options.level = "loud";
  EXPECT_EQ(InitLogging(options).code(), StatusCode::kInvalidArgument);
  options.level = "info";
  // A regular file as the parent directory: cannot be created, even as root.
  std::string parent = TempPath("dfs-log-parent");
  std::ofstream(parent).put('x');
  options.file = parent + "/log";
  EXPECT_FALSE(InitLogging(options).ok());
  std::filesystem::remove(parent);
}

}  // namespace
}  // namespace dfs::common
