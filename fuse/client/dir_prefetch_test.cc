#include "fuse/client/dir_prefetch.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dfs::fuse {
namespace {

// A listing page naming `dirs` (subdirectories) and one file.
pb::ReadDirReply Page(const std::vector<uint64_t>& dirs) {
  pb::ReadDirReply page;
  uint64_t cookie = 0;
  for (uint64_t ino : dirs) {
    pb::DirEntry* e = page.add_entries();
    e->set_name("d" + std::to_string(ino));
    e->set_ino(ino);
    e->set_type(S_IFDIR);
    e->set_cookie(++cookie);
    e->mutable_attr()->set_ino(ino);
    e->mutable_attr()->set_mode(S_IFDIR | 0755);
  }
  pb::DirEntry* f = page.add_entries();
  f->set_name("file");
  f->set_ino(9999);
  f->set_type(S_IFREG);
  f->set_cookie(++cookie);
  page.set_eof(true);
  return page;
}

class DirPrefetchTest : public ::testing::Test {
 protected:
  void Make(DirPrefetch::Options options) {
    prefetch_ = std::make_unique<DirPrefetch>(options, clock_, [this](const Caller& c, uint64_t dir) {
      std::lock_guard<std::mutex> lock(mu_);
      fetched_.push_back(dir);
      if (fail_) return std::optional<DirPrefetch::Fetched>();
      DirPrefetch::Fetched f;
      f.page = Page({});
      f.page.mutable_entries(0)->set_name("of-" + std::to_string(dir) + "-for-" + std::to_string(c.uid));
      f.stamp = stamp_;
      f.epoch = 3;
      return std::optional<DirPrefetch::Fetched>(std::move(f));
    });
  }
  // Waits (bounded) until `n` fetches were made and the last one landed.
  std::vector<uint64_t> WaitFetched(size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (fetched_.size() >= n && prefetch_->stats().fetched + fails() >= n) return fetched_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::lock_guard<std::mutex> lock(mu_);
    return fetched_;
  }
  size_t fails() { return fail_ ? fetched_.size() : 0; }

  common::ManualClock clock_;
  std::mutex mu_;
  std::vector<uint64_t> fetched_;
  uint64_t stamp_ = 7;
  bool fail_ = false;
  Caller walker_{1000, 1000, 42, {1000, 27}};
  std::unique_ptr<DirPrefetch> prefetch_;
};

TEST_F(DirPrefetchTest, AWalkGoingDownFetchesTheChildrenThenTheFollowingSiblings) {
  Make({.ttl_ms = 1'000, .threads = 1});
  prefetch_->Listed(walker_, 1, Page({10, 11, 12}));  // `ls` of the top: nothing yet
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(WaitFetched(0).empty());
  prefetch_->Listed(walker_, 10, Page({100, 101}));  // the walker went into 10
  EXPECT_EQ(WaitFetched(4), (std::vector<uint64_t>{100, 101, 11, 12}));

  auto hit = prefetch_->Take(walker_, 11, 0, 7);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->page.entries(0).name(), "of-11-for-1000");
  EXPECT_EQ(hit->epoch, 3u);
  EXPECT_DOUBLE_EQ(hit->valid_s, 1.0);
  EXPECT_TRUE(prefetch_->Take(walker_, 11, 0, 7).has_value()) << "held while it may be used";
  EXPECT_FALSE(prefetch_->Take(walker_, 10, 0, 7).has_value()) << "never fetched";
  EXPECT_EQ(prefetch_->stats().served, 2u);

  // Listing 11 (served) queues nothing already held, and 11 has no subdirectory.
  prefetch_->Listed(walker_, 11, Page({}));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(WaitFetched(4).size(), 4u);
}

TEST_F(DirPrefetchTest, APageIsOnlyUsedWithinTheTimeoutTheStampAndTheSameCredentials) {
  Make({.ttl_ms = 1'000, .threads = 1});
  prefetch_->Listed(walker_, 1, Page({10, 11, 12, 13}));
  prefetch_->Listed(walker_, 10, Page({}));
  ASSERT_EQ(WaitFetched(3).size(), 3u);

  clock_.Advance(400'000'000);
  auto hit = prefetch_->Take(walker_, 11, 0, 7);
  ASSERT_TRUE(hit.has_value());
  EXPECT_NEAR(hit->valid_s, 0.6, 1e-9) << "the kernel keeps it for what is left";

  EXPECT_FALSE(prefetch_->Take(walker_, 12, 0, 8).has_value()) << "this mount changed something since the fetch";
  Caller other = walker_;
  other.groups = {1000};
  EXPECT_FALSE(prefetch_->Take(other, 13, 0, 7).has_value()) << "fetched for other credentials";

  // Refused pages are gone (11 is still held); a new walk fetches them
  // again, and time runs out.
  prefetch_->Listed(walker_, 1, Page({10, 11, 12, 13}));
  prefetch_->Listed(walker_, 10, Page({}));
  ASSERT_EQ(WaitFetched(5), (std::vector<uint64_t>{11, 12, 13, 12, 13}));
  clock_.Advance(1'000'000'000);
  EXPECT_FALSE(prefetch_->Take(walker_, 12, 0, 7).has_value()) << "older than the timeout";
}

TEST_F(DirPrefetchTest, QueueAndHeldPagesAreBounded) {
  Make({.ttl_ms = 60'000, .max_pages = 3, .max_queue = 4, .threads = 1});
  std::vector<uint64_t> many;
  for (uint64_t i = 10; i < 40; ++i) many.push_back(i);
  prefetch_->Listed(walker_, 1, Page(many));
  prefetch_->Listed(walker_, 10, Page({}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<uint64_t> fetched = WaitFetched(4);
  EXPECT_LE(fetched.size(), 5u) << "at most max_queue waiting (and one running)";
  size_t held = 0;
  for (uint64_t i = 11; i < 40; ++i) held += prefetch_->Take(walker_, i, 0, 7).has_value() ? 1 : 0;
  EXPECT_EQ(held, 3u) << "the oldest fetches went first";
}

TEST_F(DirPrefetchTest, AFailedFetchHoldsNothingAndZeroTtlTurnsItOff) {
  fail_ = true;
  Make({.ttl_ms = 1'000, .threads = 2});
  prefetch_->Listed(walker_, 1, Page({10, 11}));
  prefetch_->Listed(walker_, 10, Page({}));
  ASSERT_EQ(WaitFetched(1).size(), 1u);
  EXPECT_FALSE(prefetch_->Take(walker_, 11, 0, 7).has_value());
  EXPECT_EQ(prefetch_->stats().fetched, 0u);

  fail_ = false;
  fetched_.clear();
  Make({.ttl_ms = 0});
  prefetch_->Listed(walker_, 1, Page({10, 11}));
  prefetch_->Listed(walker_, 10, Page({}));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(WaitFetched(0).empty());
  EXPECT_FALSE(prefetch_->Take(walker_, 11, 0, 7).has_value());
}

TEST_F(DirPrefetchTest, AKeptPageServesTheCallsThatContinueIt) {
  Make({.ttl_ms = 1'000, .threads = 1});
  DirPrefetch::Fetched f{Page({20, 21, 22, 23}), 7, 0};  // cookies 1..5, eof
  f.page.set_eof(false);
  prefetch_->Keep(walker_, 5, 0, f);
  auto names = [](const DirPrefetch::Hit& hit) {
    std::vector<std::string> out;
    for (const auto& e : hit.page.entries()) out.push_back(e.name());
    return out;
  };
  auto all = prefetch_->Take(walker_, 5, 0, 7);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->page.entries_size(), 5);
  EXPECT_FALSE(all->page.eof());
  auto rest = prefetch_->Take(walker_, 5, 3, 7);  // the kernel's buffer took three
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(names(*rest), (std::vector<std::string>{"d23", "file"}));
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 5, 7).has_value()) << "nothing left, and the directory goes on";
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 99, 7).has_value()) << "not a cookie of this page";

  f.page.set_eof(true);
  prefetch_->Keep(walker_, 5, 40, f);  // a later page replaces it
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 0, 7).has_value());
  auto from40 = prefetch_->Take(walker_, 5, 40, 7);
  ASSERT_TRUE(from40.has_value());
  EXPECT_EQ(from40->page.entries_size(), 5);
  // At most what the caller can use: the rest stays, and eof comes with the last.
  auto two = prefetch_->Take(walker_, 5, 40, 7, 2);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(names(*two), (std::vector<std::string>{"d20", "d21"}));
  EXPECT_FALSE(two->page.eof());
  auto last = prefetch_->Take(walker_, 5, 2, 7, 3);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(names(*last), (std::vector<std::string>{"d22", "d23", "file"}));
  EXPECT_TRUE(last->page.eof());
  auto end = prefetch_->Take(walker_, 5, 5, 7);
  ASSERT_TRUE(end.has_value()) << "the end of the directory is an answer too";
  EXPECT_EQ(end->page.entries_size(), 0);
  EXPECT_TRUE(end->page.eof());
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 3, 8).has_value()) << "this mount changed something";
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 40, 7).has_value()) << "and the page was dropped";
}

// Another client's change, heard as a notice, ends a held page of the
// directory it named, or one that would serve an inode it named; pages of
// other directories serve on.
TEST(DirPrefetchRemote, ANoticeEndsPagesOfTheNamedDirectoryOrServingTheNamedInode) {
  common::ManualClock clock;
  RemoteChanges remote;
  DirPrefetch prefetch({.ttl_ms = 1'000, .threads = 1}, clock,
                       [](const Caller&, uint64_t) { return std::optional<DirPrefetch::Fetched>(); }, &remote);
  const Caller caller{1000, 1000, 42, {}};
  for (uint64_t dir : {5, 6, 7}) {
    prefetch.Keep(caller, dir, 0, DirPrefetch::Fetched{Page({dir * 10, dir * 10 + 1}), 7, 0, remote.Now()});
  }
  remote.Note({5, 71}, false);  // a name in dir 5; the attributes of an entry of dir 7
  EXPECT_FALSE(prefetch.Take(caller, 5, 0, 7).has_value());
  EXPECT_TRUE(prefetch.Take(caller, 6, 0, 7).has_value()) << "dir 6 was not touched";
  EXPECT_FALSE(prefetch.Take(caller, 7, 0, 7).has_value());
  EXPECT_FALSE(prefetch.Take(caller, 7, 0, 7).has_value()) << "and the page was dropped";
  // A page sent before a notice that came while it was fetched is not used.
  const uint64_t sent = remote.Now();
  remote.Note({6}, false);
  prefetch.Keep(caller, 6, 0, DirPrefetch::Fetched{Page({60}), 7, 0, sent});
  EXPECT_FALSE(prefetch.Take(caller, 6, 0, 7).has_value());
  prefetch.Keep(caller, 6, 0, DirPrefetch::Fetched{Page({60}), 7, 0, remote.Now()});
  EXPECT_TRUE(prefetch.Take(caller, 6, 0, 7).has_value());
}

TEST_F(DirPrefetchTest, OnlyAWindowAheadIsFetched) {
  Make({.ttl_ms = 1'000, .look_ahead = 2, .threads = 1});
  prefetch_->Listed(walker_, 1, Page({10, 11, 12, 13, 14}));
  prefetch_->Listed(walker_, 10, Page({100, 101, 102}));
  EXPECT_EQ(WaitFetched(4), (std::vector<uint64_t>{100, 101, 11, 12}));
  // The walker moves on to 11: one more sibling comes into the window.
  prefetch_->Listed(walker_, 11, Page({}));
  EXPECT_EQ(WaitFetched(5), (std::vector<uint64_t>{100, 101, 11, 12, 13}));
}

TEST_F(DirPrefetchTest, NewerAttributesReplaceHeldOnesAndARemovedNameDropsItsPages) {
  Make({.ttl_ms = 1'000, .threads = 1});
  DirPrefetch::Fetched f{Page({20, 21}), 7, 0};
  for (auto& e : *f.page.mutable_entries()) e.mutable_attr()->set_ctime_ns(100);
  prefetch_->Keep(walker_, 5, 0, f);
  prefetch_->Keep(walker_, 6, 0, f);  // a second directory naming the same inodes (hard links aside, a test)
  pb::Attr newer = f.page.entries(1).attr();
  newer.set_ctime_ns(200);
  newer.set_mode(S_IFDIR | 0700);
  prefetch_->Refresh(newer);
  pb::Attr older = f.page.entries(0).attr();
  older.set_ctime_ns(50);
  older.set_mode(S_IFDIR | 0711);
  prefetch_->Refresh(older);
  for (uint64_t dir : {5, 6}) {
    auto hit = prefetch_->Take(walker_, dir, 0, 7);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->page.entries(0).attr().mode(), S_IFDIR | 0755u) << "an older word is ignored";
    EXPECT_EQ(hit->page.entries(1).attr().mode(), S_IFDIR | 0700u) << "a newer one replaces";
  }
  prefetch_->DropPagesNaming(21);
  EXPECT_FALSE(prefetch_->Take(walker_, 5, 0, 7).has_value());
  EXPECT_FALSE(prefetch_->Take(walker_, 6, 0, 7).has_value());
  prefetch_->Refresh(newer);  // nothing held: nothing to do
}

}  // namespace
}  // namespace dfs::fuse
