#include "fuse/client/write_buffer.h"

#include <gtest/gtest.h>

#include <random>

namespace dfs::fuse {
namespace {

TEST(WriteBufferTest, Write_MergesAdjacentAndOverlapping) {
  WriteBuffer b;
  b.Write(0, "aaaa");
  b.Write(4, "bbbb");  // adjacent
  EXPECT_EQ(b.extents().size(), 1u);
  b.Write(2, "XX");    // overwrite inside
  b.Write(20, "zz");   // separate
  ASSERT_EQ(b.extents().size(), 2u);
  EXPECT_EQ(b.extents().at(0), "aaXXbbbb");
  EXPECT_EQ(b.extents().at(20), "zz");
  EXPECT_EQ(b.buffered_bytes(), 10u);
  EXPECT_EQ(b.end_offset(), 22u);
  b.Write(6, std::string(14, 'm'));  // bridges both
  ASSERT_EQ(b.extents().size(), 1u);
  EXPECT_EQ(b.extents().at(0), "aaXXbb" + std::string(14, 'm') + "zz");
  EXPECT_EQ(b.buffered_bytes(), 22u);
}

TEST(WriteBufferTest, Overlay_PlacesBufferedBytes) {
  WriteBuffer b;
  b.Write(5, "hello");
  std::string out(8, '.');
  EXPECT_EQ(b.Overlay(3, out), 10u);
  EXPECT_EQ(out, "..hello.");
  std::string none(4, '.');
  EXPECT_EQ(b.Overlay(100, none), 0u);
  EXPECT_EQ(none, "....");
}

TEST(WriteBufferTest, Truncate_CutsAndDrops) {
  WriteBuffer b;
  b.Write(0, "abcdef");
  b.Write(10, "xyz");
  b.Truncate(3);
  ASSERT_EQ(b.extents().size(), 1u);
  EXPECT_EQ(b.extents().at(0), "abc");
  EXPECT_EQ(b.buffered_bytes(), 3u);
  b.Truncate(0);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.buffered_bytes(), 0u);
}

// Random writes against a plain byte array: the buffer must read back the
// same bytes, keep extents disjoint and non-adjacent, and count bytes right.
TEST(WriteBufferTest, Write_MatchesModelUnderRandomWrites) {
  std::mt19937 rng(11);
  WriteBuffer b;
  std::string model(4096, '\0');
  std::vector<bool> written(4096, false);
  for (int i = 0; i < 2000; ++i) {
    size_t off = rng() % 4000;
    size_t len = 1 + rng() % 90;
    std::string data(len, static_cast<char>('a' + rng() % 26));
    b.Write(off, data);
    model.replace(off, len, data);
    for (size_t k = off; k < off + len; ++k) written[k] = true;
  }
  std::string out(4096, '\0');
  b.Overlay(0, out);
  EXPECT_EQ(out, model);
  uint64_t count = 0;
  for (bool w : written) count += w;
  EXPECT_EQ(b.buffered_bytes(), count);
  uint64_t prev_end = 0;
  bool first = true;
  for (const auto& [off, bytes] : b.extents()) {
    if (!first) {
      EXPECT_GT(off, prev_end);
    }
    first = false;
    prev_end = off + bytes.size();
  }
}

}  // namespace
}  // namespace dfs::fuse
