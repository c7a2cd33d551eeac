#include "fuse/client/dir_read_ahead.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dfs::fuse {
namespace {

// A directory of `n` entries with cookies 1..n, served as meta would.
class FakeMeta {
 public:
  explicit FakeMeta(int n) : n_(n) {}
  DirReadAhead::Fetch Fetcher(std::optional<uint64_t> stamp, uint64_t epoch = 3) {
    return [this, stamp, epoch](uint64_t cookie, uint32_t max_entries) -> common::Result<DirReadAhead::Fetched> {
      ++calls;
      asked.push_back(max_entries);
      if (fail) return common::UnavailableError("meta is down");
      DirReadAhead::Fetched f;
      f.stamp = stamp;
      f.epoch = epoch;
      uint64_t c = cookie;
      for (; c < static_cast<uint64_t>(n_) && f.reply.entries_size() < static_cast<int>(max_entries); ++c) {
        pb::DirEntry* e = f.reply.add_entries();
        e->set_name("e" + std::to_string(c + 1));
        e->set_cookie(c + 1);
        e->mutable_attr()->set_size(version);
      }
      f.reply.set_eof(c == static_cast<uint64_t>(n_));
      return f;
    };
  }
  int calls = 0;
  std::vector<uint32_t> asked;
  bool fail = false;
  uint64_t version = 1;

 private:
  int n_;
};

// Reads the whole directory `want` entries per call, as the kernel does;
// returns the names in order.
std::vector<std::string> ReadAll(DirReadAhead& ahead, FakeMeta& meta, uint32_t want, uint64_t stamp = 7) {
  std::vector<std::string> names;
  uint64_t cookie = 0;
  for (int guard = 0; guard < 10'000; ++guard) {
    auto page = ahead.Next(cookie, want, true, stamp, meta.Fetcher(stamp));
    EXPECT_TRUE(page.ok());
    if (!page.ok()) break;
    for (const auto& e : page->reply.entries()) {
      names.push_back(e.name());
      cookie = e.cookie();
    }
    if (page->reply.eof()) break;
  }
  return names;
}

class DirReadAheadTest : public ::testing::Test {
 protected:
  common::ManualClock clock_;
  DirReadAhead ahead_{{.max_age_ms = 1'000, .read_ahead_entries = 100}, clock_};
};

TEST_F(DirReadAheadTest, TheFirstCallAsksForWhatItNeedsLaterOnesReadAhead) {
  FakeMeta meta(1000);
  std::vector<std::string> names = ReadAll(ahead_, meta, 25);
  ASSERT_EQ(names.size(), 1000u);
  for (size_t i = 0; i < names.size(); ++i) ASSERT_EQ(names[i], "e" + std::to_string(i + 1));
  ASSERT_GE(meta.asked.size(), 2u);
  EXPECT_EQ(meta.asked[0], 25u);
  EXPECT_EQ(meta.asked[1], 100u);
  EXPECT_EQ(meta.calls, 1 + 10);  // 25, then 975 in pages of 100
}

TEST_F(DirReadAheadTest, ASmallDirectoryIsOneCall) {
  FakeMeta meta(10);
  EXPECT_EQ(ReadAll(ahead_, meta, 25).size(), 10u);
  EXPECT_EQ(meta.calls, 1);
}

TEST_F(DirReadAheadTest, HeldEntriesComeWithTheFetchEpochAndWhatIsLeftOfTheTimeout) {
  FakeMeta meta(1000);
  ASSERT_TRUE(ahead_.Next(0, 25, true, 7, meta.Fetcher(7)).ok());
  auto fetched = ahead_.Next(25, 25, true, 7, meta.Fetcher(7));  // reads 100 ahead
  ASSERT_TRUE(fetched.ok());
  EXPECT_FALSE(fetched->from_memory);
  clock_.Advance(400'000'000);
  auto held = ahead_.Next(50, 25, true, 7, meta.Fetcher(7));
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->from_memory);
  EXPECT_EQ(held->epoch, 3u);
  EXPECT_DOUBLE_EQ(held->valid_s, 0.6);
  ASSERT_EQ(held->reply.entries_size(), 25);
  EXPECT_EQ(held->reply.entries(0).name(), "e51");
  EXPECT_EQ(meta.calls, 2);
}

TEST_F(DirReadAheadTest, NothingHeldIsUsedAfterAChangeOfThisMountOrTheTimeout) {
  FakeMeta meta(1000);
  ASSERT_TRUE(ahead_.Next(0, 25, true, 7, meta.Fetcher(7)).ok());
  ASSERT_TRUE(ahead_.Next(25, 25, true, 7, meta.Fetcher(7)).ok());
  meta.version = 2;
  auto after_change = ahead_.Next(50, 25, true, 8, meta.Fetcher(8));
  ASSERT_TRUE(after_change.ok());
  EXPECT_FALSE(after_change->from_memory);
  EXPECT_EQ(after_change->reply.entries(0).attr().size(), 2u);
  EXPECT_EQ(after_change->reply.entries(0).name(), "e51");
  clock_.Advance(1'000'000'000);
  auto after_timeout = ahead_.Next(75, 25, true, 8, meta.Fetcher(8));
  ASSERT_TRUE(after_timeout.ok());
  EXPECT_FALSE(after_timeout->from_memory);
  EXPECT_EQ(meta.calls, 4);
}

TEST_F(DirReadAheadTest, AFetchWithAChangeInFlightIsNotHeld) {
  FakeMeta meta(1000);
  ASSERT_TRUE(ahead_.Next(0, 25, true, 7, meta.Fetcher(std::nullopt)).ok());
  ASSERT_TRUE(ahead_.Next(25, 25, true, 7, meta.Fetcher(std::nullopt)).ok());
  auto next = ahead_.Next(50, 25, true, 7, meta.Fetcher(7));
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->from_memory);
}

TEST_F(DirReadAheadTest, PlainAndPlusCallsDoNotShareAndUnknownCookiesAskMeta) {
  FakeMeta meta(1000);
  ASSERT_TRUE(ahead_.Next(0, 25, true, 7, meta.Fetcher(7)).ok());
  ASSERT_TRUE(ahead_.Next(25, 25, true, 7, meta.Fetcher(7)).ok());
  EXPECT_FALSE(ahead_.Next(50, 25, false, 7, meta.Fetcher(7))->from_memory);
  ASSERT_TRUE(ahead_.Next(75, 25, false, 7, meta.Fetcher(7))->from_memory);
  auto rewound = ahead_.Next(3, 25, false, 7, meta.Fetcher(7));  // a seekdir back
  ASSERT_TRUE(rewound.ok());
  EXPECT_FALSE(rewound->from_memory);
  EXPECT_EQ(rewound->reply.entries(0).name(), "e4");
}

TEST_F(DirReadAheadTest, MetasErrorIsReturnedAndNothingIsKept) {
  FakeMeta meta(1000);
  meta.fail = true;
  EXPECT_FALSE(ahead_.Next(0, 25, true, 7, meta.Fetcher(7)).ok());
  meta.fail = false;
  EXPECT_EQ(ReadAll(ahead_, meta, 25).size(), 1000u);
}

TEST_F(DirReadAheadTest, WithoutAnAgeNothingIsHeldOrReadAhead) {
  DirReadAhead off({.max_age_ms = 0}, clock_);
  FakeMeta meta(100);
  EXPECT_EQ(ReadAll(off, meta, 25).size(), 100u);
  EXPECT_EQ(meta.calls, 4);
  for (uint32_t asked : meta.asked) EXPECT_EQ(asked, 25u);
}

}  // namespace
}  // namespace dfs::fuse
