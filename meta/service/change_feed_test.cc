#include "meta/service/change_feed.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace dfs::meta {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

Change Named(uint64_t client, uint64_t parent, const std::string& name) {
  Change c;
  c.client_id = client;
  pb::ChangedName n;
  n.set_parent(parent);
  n.set_name(name);
  c.names.push_back(n);
  return c;
}

TEST(ChangeOf, ARenameNamesBothEndsAndTheirDirectories) {
  pb::Op op;
  op.set_client_id(7);
  pb::RenameRequest* r = op.mutable_rename();
  r->set_parent(2);
  r->set_name("a");
  r->set_new_parent(3);
  r->set_new_name("b");
  const Change c = ChangeOf(op);
  EXPECT_EQ(c.client_id, 7u);
  ASSERT_EQ(c.names.size(), 2u);
  EXPECT_EQ(c.names[0].parent(), 2u);
  EXPECT_EQ(c.names[0].name(), "a");
  EXPECT_EQ(c.names[1].parent(), 3u);
  EXPECT_EQ(c.names[1].name(), "b");
  EXPECT_EQ(c.inodes, (std::vector<uint64_t>{2, 3}));
}

TEST(ChangeOf, WritesLinksAndCarriedChmodsNameTheirInodes) {
  pb::Op commit;
  commit.mutable_commit_write()->set_ino(9);
  EXPECT_EQ(ChangeOf(commit).inodes, (std::vector<uint64_t>{9}));

  pb::Op link;
  link.mutable_link()->set_ino(9);
  link.mutable_link()->set_new_parent(4);
  link.mutable_link()->set_new_name("x");
  const Change l = ChangeOf(link);
  ASSERT_EQ(l.names.size(), 1u);
  EXPECT_EQ(l.names[0].name(), "x");
  EXPECT_EQ(l.inodes, (std::vector<uint64_t>{4, 9}));

  pb::Op release;  // a release changes nothing a cache holds, but its carried chmod does
  release.mutable_release()->set_ino(5);
  EXPECT_TRUE(ChangeOf(release).empty());
  release.add_set_attrs()->set_ino(6);
  EXPECT_EQ(ChangeOf(release).inodes, (std::vector<uint64_t>{6}));

  pb::Op open;  // only a truncating open changes the file
  open.mutable_open()->set_ino(8);
  open.mutable_open()->set_flags(O_RDWR);
  EXPECT_TRUE(ChangeOf(open).empty());
  open.mutable_open()->set_flags(O_RDWR | O_TRUNC);
  EXPECT_EQ(ChangeOf(open).inodes, (std::vector<uint64_t>{8}));

  pb::Op lease;
  lease.mutable_lease_chunk();
  EXPECT_TRUE(ChangeOf(lease).empty());
}

TEST(ChangeFeed, AWatcherHearsOthersChangesFromWhereItStarted) {
  ChangeFeed feed;
  feed.Publish(Named(1, 2, "before"));
  uint64_t cursor = feed.End();
  feed.Publish(Named(1, 2, "a"));
  feed.Publish(Named(5, 2, "own"));  // the watcher's own: not sent back
  feed.Publish(Named(3, 2, "b"));
  pb::ChangeNotices out;
  ASSERT_TRUE(feed.Next(&cursor, 5, steady_clock::now(), &out));
  ASSERT_EQ(out.names_size(), 2);
  EXPECT_EQ(out.names(0).name(), "a");
  EXPECT_EQ(out.names(1).name(), "b");
  EXPECT_FALSE(out.missed());
  EXPECT_EQ(cursor, feed.End());
  pb::ChangeNotices none;
  EXPECT_FALSE(feed.Next(&cursor, 5, steady_clock::now() + milliseconds(20), &none));
}

TEST(ChangeFeed, NextWakesForAChangePublishedWhileItWaits) {
  ChangeFeed feed;
  uint64_t cursor = feed.End();
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(50));
    feed.Publish(Named(1, 2, "late"));
  });
  pb::ChangeNotices out;
  const auto start = steady_clock::now();
  EXPECT_TRUE(feed.Next(&cursor, 5, start + std::chrono::seconds(10), &out));
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  publisher.join();
  ASSERT_EQ(out.names_size(), 1);
  EXPECT_EQ(out.names(0).name(), "late");
}

TEST(ChangeFeed, AWatchersOwnChangesNeitherWakeNorReachIt) {
  ChangeFeed feed;
  uint64_t cursor = feed.End();
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(20));
    feed.Publish(Named(5, 2, "own"));
  });
  pb::ChangeNotices out;
  EXPECT_FALSE(feed.Next(&cursor, 5, steady_clock::now() + milliseconds(300), &out));
  publisher.join();
  EXPECT_EQ(out.names_size(), 0);
  EXPECT_EQ(cursor, feed.End());  // moved past it
  feed.Publish(Named(6, 2, "other"));
  ASSERT_TRUE(feed.Next(&cursor, 5, steady_clock::now(), &out));
  ASSERT_EQ(out.names_size(), 1);
  EXPECT_EQ(out.names(0).name(), "other");
}

TEST(ChangeFeed, AWatcherThatFellBehindIsToldItMissedSome) {
  ChangeFeed feed(4);
  uint64_t cursor = feed.End();
  for (int i = 0; i < 10; ++i) feed.Publish(Named(1, 2, "n" + std::to_string(i)));
  pb::ChangeNotices out;
  ASSERT_TRUE(feed.Next(&cursor, 5, steady_clock::now(), &out));
  EXPECT_TRUE(out.missed());
  ASSERT_EQ(out.names_size(), 4);  // the newest four are still there
  EXPECT_EQ(out.names(0).name(), "n6");
  feed.Publish(Change{});  // nothing changed: not kept
  EXPECT_EQ(feed.End(), cursor);
}

}  // namespace
}  // namespace dfs::meta
