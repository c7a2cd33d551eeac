// ReadPins: when the leader may free a file no name leads to any more, given
// what sessions report of their lazy read opens.
#include "meta/service/read_pins.h"

#include <gtest/gtest.h>

namespace dfs::meta {
namespace {

using Inos = std::vector<uint64_t>;

pb::KeepAliveRequest Report(uint64_t client_id, uint64_t epoch, Inos pins) {
  pb::KeepAliveRequest r;
  r.set_client_id(client_id);
  r.set_reports_read_pins(true);
  r.set_pin_epoch(epoch);
  for (uint64_t ino : pins) r.add_read_pins(ino);
  return r;
}

TEST(ReadPinsTest, NoSessions_FreesAtOnce) {
  ReadPins pins;
  EXPECT_EQ(pins.Freeable({5, 6}), (Inos{5, 6}));
}

TEST(ReadPinsTest, ASessionThatDoesNotReport_NeverHoldsAFile) {
  ReadPins pins;
  pins.Opened(7, /*reports_pins=*/false);
  EXPECT_FALSE(pins.MayPin(7));
  EXPECT_EQ(pins.Freeable({5}), (Inos{5}));
}

TEST(ReadPinsTest, Orphan_WaitsForAReportNewerThanItsFirstSight) {
  ReadPins pins;
  pins.Opened(7, true);
  EXPECT_TRUE(pins.MayPin(7));
  const uint64_t before = pins.Epoch();
  // A report from before the orphan was seen may miss a pin added since.
  pins.Reported(Report(7, before, {}));
  EXPECT_TRUE(pins.Freeable({5}).empty());  // first seen at `before`
  pins.Reported(Report(7, before, {}));
  EXPECT_TRUE(pins.Freeable({5}).empty());
  const uint64_t after = pins.Epoch();
  EXPECT_GT(after, before);
  pins.Reported(Report(7, after, {5}));  // still reading it
  EXPECT_TRUE(pins.Freeable({5}).empty());
  pins.Reported(Report(7, after, {4, 6}));
  EXPECT_EQ(pins.Freeable({5}), (Inos{5}));
  pins.Freed({5});
}

TEST(ReadPinsTest, EverySessionMustReport) {
  ReadPins pins;
  pins.Opened(7, true);
  pins.Opened(8, true);
  EXPECT_TRUE(pins.Freeable({5}).empty());
  const uint64_t epoch = pins.Epoch();
  pins.Reported(Report(7, epoch, {}));
  EXPECT_TRUE(pins.Freeable({5}).empty());
  pins.Reported(Report(8, epoch, {}));
  EXPECT_EQ(pins.Freeable({5}), (Inos{5}));
}

TEST(ReadPinsTest, AClosedSessionHoldsNothing) {
  ReadPins pins;
  pins.Opened(7, true);
  pins.Reported(Report(7, pins.Epoch(), {5}));
  EXPECT_TRUE(pins.Freeable({5}).empty());
  pins.Closed(7);
  EXPECT_FALSE(pins.MayPin(7));
  EXPECT_EQ(pins.Freeable({5}), (Inos{5}));
}

TEST(ReadPinsTest, TakenOverSessions_HoldEverythingUntilTheyReportToThisLeader) {
  ReadPins pins;
  pins.Opened(7, true);
  const uint64_t old_epoch = pins.Epoch();
  pins.Reset();  // a new leadership
  pins.TookOver(7, true);
  pins.TookOver(8, true);
  pins.TookOver(9, false);  // never reports: holds nothing
  EXPECT_FALSE(pins.MayPin(9));
  EXPECT_TRUE(pins.MayPin(7));
  EXPECT_TRUE(pins.Freeable({5}).empty());
  // An epoch of the previous leader counts for nothing.
  pins.Reported(Report(7, old_epoch, {}));
  EXPECT_TRUE(pins.Freeable({5}).empty());
  // Session 8 runs an old client: it never pins.
  pb::KeepAliveRequest plain;
  plain.set_client_id(8);
  pins.Reported(plain);
  EXPECT_FALSE(pins.MayPin(8));
  EXPECT_TRUE(pins.Freeable({5}).empty());  // 7 has not reported to us
  pins.Reported(Report(7, pins.Epoch(), {}));
  EXPECT_EQ(pins.Freeable({5}), (Inos{5}));
}

TEST(ReadPinsTest, AnOlderReportDoesNotReplaceANewerOne) {
  ReadPins pins;
  pins.Opened(7, true);
  const uint64_t first = pins.Epoch();
  pins.Freeable({});
  const uint64_t second = pins.Epoch();
  pins.Reported(Report(7, second, {5}));
  pins.Reported(Report(7, first, {}));  // delayed
  pins.Freeable({});
  EXPECT_TRUE(pins.Freeable({5}).empty());
}

TEST(ReadPinsTest, ReportsOfUnknownSessionsAreIgnored) {
  ReadPins pins;
  pins.Reported(Report(9, pins.Epoch(), {}));
  EXPECT_FALSE(pins.MayPin(9));
}

}  // namespace
}  // namespace dfs::meta
