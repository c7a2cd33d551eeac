#include "fuse/client/attr_overlay.h"

#include <gtest/gtest.h>

#include <future>

namespace dfs::fuse {
namespace {

pb::Attr Attr(uint64_t ino, uint32_t mode, uint32_t uid) {
  pb::Attr a;
  a.set_ino(ino);
  a.set_mode(mode);
  a.set_uid(uid);
  a.set_gid(uid);
  a.set_ctime_ns(static_cast<int64_t>(mode) * 1000);
  a.set_size(42);
  return a;
}

TEST(AttrOverlay, APendingChangeIsLaidOverEveryAnswer) {
  AttrOverlay o;
  const uint64_t epoch = o.Epoch();
  o.Add(Attr(5, 0100600, 1000));
  EXPECT_TRUE(o.Pending(5));
  pb::Attr from_meta = Attr(5, 0100644, 0);
  from_meta.set_size(7);
  o.Apply(&from_meta, epoch);
  EXPECT_EQ(from_meta.mode(), 0100600u);
  EXPECT_EQ(from_meta.uid(), 1000u);
  EXPECT_EQ(from_meta.gid(), 1000u);
  EXPECT_EQ(from_meta.ctime_ns(), 0100600 * 1000);
  EXPECT_EQ(from_meta.size(), 7u);  // only what the change set
  pb::Attr other = Attr(6, 0100644, 0);
  o.Apply(&other, o.Epoch());
  EXPECT_EQ(other.mode(), 0100644u);
}

// A read that started before meta applied the change may have read the old
// state: it still gets the change. One sent after gets meta's state, which
// may hold a later change by another client.
TEST(AttrOverlay, OnceAppliedOnlyReadsThatStartedBeforeGetIt) {
  AttrOverlay o;
  const uint64_t seq = o.Add(Attr(5, 0100600, 0));
  const uint64_t before = o.Epoch();
  o.Acked(5, seq);
  EXPECT_FALSE(o.Pending(5));
  pb::Attr raced = Attr(5, 0100644, 0);
  o.Apply(&raced, before);
  EXPECT_EQ(raced.mode(), 0100600u);
  pb::Attr later = Attr(5, 0100444, 0);
  o.Apply(&later, o.Epoch());
  EXPECT_EQ(later.mode(), 0100444u);
}

TEST(AttrOverlay, AnAckForAnOlderChangeLeavesTheNewerPending) {
  AttrOverlay o;
  const uint64_t first = o.Add(Attr(5, 0100640, 0));
  const uint64_t second = o.Add(Attr(5, 0100600, 0));
  o.Acked(5, first);  // the carrier held only the first
  EXPECT_TRUE(o.Pending(5));
  o.Acked(5, second);
  EXPECT_FALSE(o.Pending(5));
}

TEST(AttrOverlay, WaitAppliedWakesOnTheAckOrTimesOut) {
  AttrOverlay o;
  EXPECT_TRUE(o.WaitApplied(5, std::chrono::milliseconds(0)));  // nothing to wait for
  const uint64_t seq = o.Add(Attr(5, 0100600, 0));
  EXPECT_FALSE(o.WaitApplied(5, std::chrono::milliseconds(20)));
  auto waiter = std::async(std::launch::async, [&] { return o.WaitApplied(5, std::chrono::seconds(30)); });
  o.Acked(5, seq);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
}

}  // namespace
}  // namespace dfs::fuse
