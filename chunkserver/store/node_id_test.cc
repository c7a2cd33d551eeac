#include "chunkserver/store/node_id.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/file_util.h"

namespace dfs::chunkserver {
namespace {

std::string MakeDir() {
  char tmpl[] = "/tmp/node_id_test.XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl), nullptr);
  return tmpl;
}

TEST(NodeId, LoadOrCreateNodeId_CreatesOnceAndKeepsIt) {
  std::string a = MakeDir();
  std::string b = MakeDir();
  auto first = LoadOrCreateNodeId({a});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_NE(*first, 0u);
  auto again = LoadOrCreateNodeId({a, b});  // b is a new disk: stamped with the same id
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(*LoadOrCreateNodeId({b}), *first);
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}

TEST(NodeId, LoadOrCreateNodeId_RefusesAFolderOfAnotherNode) {
  std::string a = MakeDir();
  std::string b = MakeDir();
  ASSERT_TRUE(LoadOrCreateNodeId({a}).ok());
  ASSERT_TRUE(LoadOrCreateNodeId({b}).ok());
  auto mixed = LoadOrCreateNodeId({a, b});
  EXPECT_EQ(mixed.status().code(), common::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(common::WriteFileAtomic(a + "/dfs-folder", "garbage").ok());
  EXPECT_EQ(LoadOrCreateNodeId({a}).status().code(), common::StatusCode::kDataLoss);
  EXPECT_EQ(LoadOrCreateNodeId({a + "/missing"}).status().code(), common::StatusCode::kNotFound);
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}

}  // namespace
}  // namespace dfs::chunkserver
