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

// O_APPEND writes, each at the end of the one before, make one run the
// flush may move whole (FileSystem::PlaceAppends); anything else in the
// buffer, or a run with a gap, may not move.
TEST(WriteBufferTest, AppendsOnly_OneRunOfAppendsAtItsEnd) {
  WriteBuffer b;
  EXPECT_FALSE(b.appends_only());  // empty
  b.Write(100, "abc", /*append=*/true);
  b.Write(103, "defg", /*append=*/true);
  EXPECT_TRUE(b.appends_only());
  b.MoveTo(1000);
  ASSERT_EQ(b.extents().size(), 1u);
  EXPECT_EQ(b.extents().begin()->first, 1000u);
  EXPECT_EQ(b.extents().begin()->second, "abcdefg");
  EXPECT_EQ(b.buffered_bytes(), 7u);
  EXPECT_EQ(b.end_offset(), 1007u);
  b.Write(1007, "h", /*append=*/true);
  EXPECT_TRUE(b.appends_only());

  WriteBuffer gap;  // an append not at the run's end
  gap.Write(0, "abc", true);
  gap.Write(10, "d", true);
  EXPECT_FALSE(gap.appends_only());
  gap.MoveTo(50);  // a no-op
  EXPECT_EQ(gap.extents().begin()->first, 0u);

  WriteBuffer mixed;  // a positional write, even inside the run
  mixed.Write(0, "abc", true);
  mixed.Write(1, "X");
  EXPECT_FALSE(mixed.appends_only());
  mixed.Write(3, "d", true);
  EXPECT_FALSE(mixed.appends_only());

  WriteBuffer cut;  // a truncate into the run
  cut.Write(0, "abcdef", true);
  cut.Truncate(100);
  EXPECT_TRUE(cut.appends_only());
  cut.Truncate(2);
  EXPECT_FALSE(cut.appends_only());

  WriteBuffer cleared;  // the flag starts over once the buffer is empty
  cleared.Write(5, "x");
  cleared.Clear();
  cleared.Write(9, "y", true);
  EXPECT_TRUE(cleared.appends_only());
}

}  // namespace
}  // namespace dfs::fuse
