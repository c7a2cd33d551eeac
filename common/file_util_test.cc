#include "common/file_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace dfs::common {
namespace {

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dfs-file-util-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(FileUtilTest, WriteFileAtomic_ReplacesWholeContent) {
  std::string path = (dir_ / "node_id").string();
  ASSERT_TRUE(WriteFileAtomic(path, "first, and longer").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second").ok());
  auto content = ReadFileToString(path);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "second");
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

TEST_F(FileUtilTest, ReadFileToString_MissingIsNotFound) {
  EXPECT_EQ(ReadFileToString((dir_ / "nope").string()).status().code(), StatusCode::kNotFound);
}

TEST_F(FileUtilTest, WriteFileAtomic_MissingDirectoryFails) {
  Status s = WriteFileAtomic((dir_ / "no-such-dir" / "f").string(), "x");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no-such-dir"), std::string_view::npos);
}

}  // namespace
}  // namespace dfs::common
