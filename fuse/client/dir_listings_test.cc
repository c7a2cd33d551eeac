#include "fuse/client/dir_listings.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace dfs::fuse {
namespace {

std::vector<pb::DirEntry> Entries(int n, uint64_t first_ino = 100) {
  std::vector<pb::DirEntry> out;
  for (int i = 0; i < n; ++i) {
    pb::DirEntry e;
    e.set_name("f" + std::to_string(i));
    e.set_ino(first_ino + i);
    e.set_cookie(i + 1);
    e.mutable_attr()->set_ino(first_ino + i);
    e.mutable_attr()->set_mode(S_IFREG | 0644);
    e.mutable_attr()->set_size(i);
    out.push_back(e);
  }
  return out;
}

class DirListingsTest : public ::testing::Test {
 protected:
  void AdvanceMs(int64_t ms) { clock_.Advance(ms * 1'000'000); }
  // Lookups until one says "fetch"; returns how many it took (0: none in `max`).
  int LookupsToFetch(uint64_t dir, int max = 10'000) {
    for (int i = 1; i <= max; ++i) {
      if (listings_.NoteLookup(dir)) return i;
    }
    return 0;
  }

  common::ManualClock clock_;
  DirListings listings_{DirListings::Options{.ttl_ms = 1'000, .trigger_lookups = 4, .max_trigger_lookups = 64,
                                             .max_entries = 100, .max_total_entries = 5, .max_dirs = 3,
                                             .page_entries = 10},
                        clock_};
};

TEST_F(DirListingsTest, AFetchIsAskedForAfterTriggerLookupsCloseTogether) {
  EXPECT_FALSE(listings_.NoteLookup(1));
  AdvanceMs(1'100);  // the window restarts: lookups far apart never list
  EXPECT_EQ(LookupsToFetch(1), 4);
  EXPECT_FALSE(listings_.NoteLookup(1));  // in flight: one fetch at a time
  listings_.Put(1, Entries(3), 7, 0);
  EXPECT_FALSE(listings_.NoteLookup(1));
}

TEST_F(DirListingsTest, AnswersNamesAndInodesForTheTimeoutWhileTheStampHolds) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Put(1, Entries(3), 7, 5);
  auto hit = listings_.Find(1, "f2", 7);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->attr.ino(), 102u);
  EXPECT_EQ(hit->attr.size(), 2u);
  EXPECT_EQ(hit->epoch, 5u);
  EXPECT_DOUBLE_EQ(hit->valid_s, 1.0);
  EXPECT_FALSE(listings_.Find(1, "f3", 7).has_value());  // not listed: meta is asked
  EXPECT_FALSE(listings_.Find(2, "f1", 7).has_value());
  AdvanceMs(600);
  hit = listings_.FindIno(101, 7);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->attr.size(), 1u);
  EXPECT_DOUBLE_EQ(hit->valid_s, 0.4);  // the kernel keeps it only for what is left
  AdvanceMs(400);
  EXPECT_FALSE(listings_.Find(1, "f1", 7).has_value());
  EXPECT_EQ(listings_.TEST_Listings(), 0u);
}

TEST_F(DirListingsTest, AnInodeWithNoNameLeftDropsTheListingsThatNameIt) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Put(1, Entries(2, 100), 7, 0);
  ASSERT_EQ(LookupsToFetch(2), 4);
  listings_.Put(2, Entries(2, 200), 7, 0);
  listings_.DropListingsOf(101);
  EXPECT_FALSE(listings_.Find(1, "f0", 7).has_value());  // the whole listing of dir 1 went
  EXPECT_FALSE(listings_.FindIno(101, 7).has_value());
  EXPECT_TRUE(listings_.Find(2, "f1", 7).has_value());  // dir 2's stays
  listings_.DropListingsOf(999);  // in no listing: nothing happens
  EXPECT_TRUE(listings_.FindIno(200, 7).has_value());
}

// Meta's answer to a lookup that contradicts a listing (the name is gone,
// or names another inode now) ends it; one that agrees, or a name the
// listing does not hold, leaves it.
TEST_F(DirListingsTest, AMetaLookupThatSaysOtherwiseEndsTheListing) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Put(1, Entries(3, 100), 7, 0);
  listings_.Answered(1, "f1", 101);  // agrees
  listings_.Answered(1, "new", 555);  // made since: not held, asked of meta anyway
  listings_.Answered(2, "f1", 0);     // another directory
  EXPECT_TRUE(listings_.Find(1, "f1", 7).has_value());
  listings_.Answered(1, "f2", 0);  // removed since the fetch
  EXPECT_FALSE(listings_.Find(1, "f0", 7).has_value());
  EXPECT_FALSE(listings_.FindIno(100, 7).has_value());

  ASSERT_GT(LookupsToFetch(1), 0);  // more than 4: the last listing answered nothing
  listings_.Put(1, Entries(3, 100), 7, 0);
  listings_.Answered(1, "f0", 900);  // renamed over since the fetch
  EXPECT_FALSE(listings_.Find(1, "f1", 7).has_value());
}

TEST_F(DirListingsTest, AMutationOfThisMountEndsTheListing) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Put(1, Entries(3), 7, 0);
  EXPECT_FALSE(listings_.Find(1, "f1", 8).has_value());
  EXPECT_FALSE(listings_.Find(1, "f1", 7).has_value());  // gone for good, not only hidden
  EXPECT_FALSE(listings_.FindIno(101, 7).has_value());
}

// Another client's change, heard as a notice, ends what it touched and only
// that: a listing of the directory it named, an entry of the inode it named
// (in any listing); listings fetched after the notice was heard stay.
TEST(DirListingsRemote, ANoticeEndsTheNamedDirectoryAndTheNamedInodesEntriesOnly) {
  common::ManualClock clock;
  RemoteChanges remote;
  DirListings listings(DirListings::Options{.ttl_ms = 1'000, .trigger_lookups = 1}, clock, &remote);
  for (uint64_t dir : {1, 2}) {
    ASSERT_TRUE(listings.NoteLookup(dir));
    listings.Put(dir, Entries(3, dir * 100), 7, 0, remote.Now());
  }
  remote.Note({1}, false);  // a name in dir 1 changed
  EXPECT_FALSE(listings.Find(1, "f0", 7).has_value());
  EXPECT_FALSE(listings.FindIno(101, 7).has_value());
  EXPECT_TRUE(listings.Find(2, "f0", 7).has_value()) << "dir 2 was not touched";
  remote.Note({201}, false);  // an inode listed in dir 2: its attributes changed
  EXPECT_FALSE(listings.Find(2, "f1", 7).has_value());
  EXPECT_FALSE(listings.FindIno(201, 7).has_value());
  EXPECT_TRUE(listings.Find(2, "f2", 7).has_value()) << "its other entries stay";
  // A fetch stamped after the notices is current (Put needs no NoteLookup).
  listings.Put(1, Entries(3, 100), 7, 0, remote.Now());
  EXPECT_TRUE(listings.Find(1, "f0", 7).has_value());
  // One stamped before a notice that came while it ran is not.
  const uint64_t sent = remote.Now();
  remote.Note({1}, false);
  listings.Put(1, Entries(3, 100), 7, 0, sent);
  EXPECT_FALSE(listings.Find(1, "f0", 7).has_value());
  // Missed notices end everything fetched before.
  listings.Put(2, Entries(3, 200), 7, 0, remote.Now());
  remote.Note({}, /*all=*/true);
  EXPECT_FALSE(listings.Find(2, "f0", 7).has_value());
}

TEST_F(DirListingsTest, MetasNewerWordReplacesAListedAttributeButNotAnOlderOne) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  std::vector<pb::DirEntry> entries = Entries(3);
  for (auto& e : entries) e.mutable_attr()->set_ctime_ns(100);
  listings_.Put(1, entries, 7, 0);
  pb::Attr newer = entries[1].attr();
  newer.set_size(70'000);
  newer.set_ctime_ns(200);
  listings_.Refresh(newer);
  EXPECT_EQ(listings_.Find(1, "f1", 7)->attr.size(), 70'000u);
  EXPECT_EQ(listings_.FindIno(101, 7)->attr.size(), 70'000u);
  pb::Attr older = newer;
  older.set_size(5);
  older.set_ctime_ns(150);  // a reply sent before the one above
  listings_.Refresh(older);
  EXPECT_EQ(listings_.Find(1, "f1", 7)->attr.size(), 70'000u);
  // A name of the same inode in another listed directory is refreshed too.
  ASSERT_EQ(LookupsToFetch(2), 4);
  std::vector<pb::DirEntry> linked = Entries(1, 101);
  linked[0].mutable_attr()->set_ctime_ns(200);
  listings_.Put(2, linked, 7, 0);
  newer.set_size(80'000);
  newer.set_ctime_ns(300);
  listings_.Refresh(newer);
  EXPECT_EQ(listings_.Find(1, "f1", 7)->attr.size(), 80'000u);
  EXPECT_EQ(listings_.Find(2, "f0", 7)->attr.size(), 80'000u);
  pb::Attr unlisted;
  unlisted.set_ino(999);
  listings_.Refresh(unlisted);
  EXPECT_FALSE(listings_.FindIno(999, 7).has_value());
}

TEST_F(DirListingsTest, DotEntriesEntriesWithoutAttributesAndSecondLinksAreLeftToMeta) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  std::vector<pb::DirEntry> entries = Entries(4);
  entries[0].set_name("..");
  entries[1].clear_attr();
  entries[3].set_ino(102);  // a hard link of f2: one copy of its attributes
  entries[3].mutable_attr()->set_ino(102);
  listings_.Put(1, entries, 7, 0);
  EXPECT_FALSE(listings_.Find(1, "..", 7).has_value());
  EXPECT_FALSE(listings_.Find(1, "f1", 7).has_value());
  EXPECT_TRUE(listings_.Find(1, "f2", 7).has_value());
  EXPECT_FALSE(listings_.Find(1, "f3", 7).has_value());
}

TEST_F(DirListingsTest, AtMostMaxTotalEntriesInMaxDirsListingsOldestGoesFirst) {
  for (uint64_t dir = 1; dir <= 3; ++dir) {
    ASSERT_EQ(LookupsToFetch(dir), 4);
    listings_.Put(dir, Entries(2, dir * 1000), 7, 0);
  }
  // 5 entries at most: the third listing (2 more) pushed the first out.
  EXPECT_EQ(listings_.TEST_Listings(), 2u);
  EXPECT_FALSE(listings_.Find(1, "f0", 7).has_value());
  EXPECT_TRUE(listings_.Find(2, "f0", 7).has_value());
  EXPECT_TRUE(listings_.Find(3, "f0", 7).has_value());
  for (uint64_t dir = 4; dir <= 6; ++dir) {  // 3 directories at most
    ASSERT_EQ(LookupsToFetch(dir), 4);
    listings_.Put(dir, Entries(1, dir * 1000), 7, 0);
  }
  EXPECT_EQ(listings_.TEST_Listings(), 3u);
  EXPECT_FALSE(listings_.Find(3, "f0", 7).has_value());
  for (uint64_t dir = 4; dir <= 6; ++dir) EXPECT_TRUE(listings_.Find(dir, "f0", 7).has_value()) << dir;
}

TEST_F(DirListingsTest, AListingThatDidNotPayMakesTheNextFetchWaitLonger) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Put(1, Entries(3), 7, 0);  // one page: pays after 10 answers
  AdvanceMs(1'000);
  EXPECT_FALSE(listings_.Find(1, "f0", 7).has_value());  // expired unused
  EXPECT_EQ(LookupsToFetch(1), 8);
  listings_.Put(1, Entries(3), 7, 0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(listings_.Find(1, "f1", 7).has_value());
  AdvanceMs(1'000);
  EXPECT_FALSE(listings_.Find(1, "f0", 7).has_value());
  EXPECT_EQ(LookupsToFetch(1), 4);  // it paid: back to the first trigger
}

TEST_F(DirListingsTest, AFailedFetchBacksOffAndATooBigDirectoryIsLeftAlone) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Abandon(1, false);
  EXPECT_EQ(LookupsToFetch(1), 8);
  listings_.Abandon(1, true);
  EXPECT_EQ(LookupsToFetch(1, 1'000), 0);
  AdvanceMs(60'000);
  EXPECT_GT(LookupsToFetch(1), 0);
}

TEST_F(DirListingsTest, StatsCountFetchesAbandonedFetchesAndAnswers) {
  ASSERT_EQ(LookupsToFetch(1), 4);
  listings_.Abandon(1, false);
  ASSERT_GT(LookupsToFetch(1), 0);
  listings_.Put(1, Entries(3), 7, 0);
  EXPECT_TRUE(listings_.Find(1, "f0", 7).has_value());
  EXPECT_TRUE(listings_.FindIno(101, 7).has_value());
  EXPECT_FALSE(listings_.Find(1, "absent", 7).has_value());  // left to meta: not an answer
  EXPECT_FALSE(listings_.Find(1, "f1", 8).has_value());      // a change since: not an answer
  const DirListings::Stats stats = listings_.stats();
  EXPECT_EQ(stats.fetched, 1u);
  EXPECT_EQ(stats.abandoned, 1u);
  EXPECT_EQ(stats.served, 2u);
}

TEST_F(DirListingsTest, OffWithoutATimeout) {
  common::ManualClock clock;
  DirListings off(DirListings::Options{.ttl_ms = 0}, clock);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(off.NoteLookup(1));
  off.Put(1, Entries(2), 7, 0);
  EXPECT_FALSE(off.Find(1, "f0", 7).has_value());
}

}  // namespace
}  // namespace dfs::fuse
