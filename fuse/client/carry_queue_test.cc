#include "fuse/client/carry_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace dfs::fuse {
namespace {

using Clock = std::chrono::steady_clock;

pb::ReleaseRequest Rel(uint64_t handle) {
  pb::ReleaseRequest r;
  r.set_ino(100 + handle);
  r.set_handle_id(handle);
  return r;
}

std::vector<uint64_t> Handles(const google::protobuf::RepeatedPtrField<pb::ReleaseRequest>& rs) {
  std::vector<uint64_t> out;
  for (const auto& r : rs) out.push_back(r.handle_id());
  return out;
}

TEST(CarryQueue, MutationsTakeTheOldestFirstUpToTheirLimit) {
  CarryQueue q(60'000);
  for (uint64_t h = 1; h <= 5; ++h) q.Add(Rel(h));
  pb::RequestContext ctx;
  q.TakeInto(&ctx, 3);
  EXPECT_EQ(Handles(ctx.releases()), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(q.size(), 2u);
  // The carrier failed: they go back in front of the younger ones.
  q.PutBack(ctx);
  pb::RequestContext again;
  q.TakeInto(&again, 100);
  EXPECT_EQ(Handles(again.releases()), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(q.size(), 0u);
}

pb::SetAttrRequest Chmod(uint64_t ino) {
  pb::SetAttrRequest r;
  r.set_ino(ino);
  r.set_valid(pb::SET_MODE);
  return r;
}

// Releases are capped per request; attribute changes all go, so nothing the
// client sends later reaches meta before one of them.
TEST(CarryQueue, AMutationTakesEverySetAttrAndReleasesUpToItsLimit) {
  CarryQueue q(60'000);
  q.Add(Rel(1));
  q.Add(Chmod(7));
  q.Add(Rel(2));
  q.Add(Rel(3));
  q.Add(Chmod(8));
  EXPECT_EQ(q.set_attr_count(), 2u);
  EXPECT_TRUE(q.HoldsSetAttrFor(8));
  EXPECT_FALSE(q.HoldsSetAttrFor(9));
  pb::RequestContext ctx;
  q.TakeInto(&ctx, 1);
  ASSERT_EQ(ctx.set_attrs_size(), 2);
  EXPECT_EQ(ctx.set_attrs(0).ino(), 7u);
  EXPECT_EQ(ctx.set_attrs(1).ino(), 8u);
  EXPECT_EQ(Handles(ctx.releases()), (std::vector<uint64_t>{1}));
  EXPECT_EQ(q.set_attr_count(), 0u);
  EXPECT_FALSE(q.HoldsSetAttrFor(8));
  EXPECT_EQ(q.size(), 2u);

  q.PutBack(ctx);  // the carrier failed
  EXPECT_EQ(q.set_attr_count(), 2u);
  EXPECT_TRUE(q.HoldsSetAttrFor(7));
  pb::RequestContext again;
  q.TakeInto(&again, 100);
  ASSERT_EQ(again.set_attrs_size(), 2);
  EXPECT_EQ(again.set_attrs(0).ino(), 7u);
  EXPECT_EQ(Handles(again.releases()), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(q.size(), 0u);
}

TEST(CarryQueue, OneNobodyCarriedIsHandedOverAfterTheDelay) {
  constexpr int64_t kDelayMs = 50;
  CarryQueue q(kDelayMs);
  const auto start = Clock::now();
  q.Add(Rel(1));
  auto overdue = q.WaitOverdue();
  ASSERT_TRUE(overdue.has_value());
  EXPECT_EQ(std::get<pb::ReleaseRequest>(*overdue).handle_id(), 1u);
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(kDelayMs));  // never before
  EXPECT_EQ(q.size(), 0u);
}

TEST(CarryQueue, OneAMutationCarriedIsNotSentAgain) {
  CarryQueue q(100);
  auto waiter = std::async(std::launch::async, [&] { return q.WaitOverdue(); });
  q.Add(Rel(1));
  pb::RequestContext ctx;
  q.TakeInto(&ctx, 10);  // well within the delay
  ASSERT_EQ(ctx.releases_size(), 1);
  // The waiter wakes at the deadline, finds nothing, and waits on.
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  q.Add(Rel(2));
  auto second = waiter.get();  // 100 ms later
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(std::get<pb::ReleaseRequest>(*second).handle_id(), 2u);
}

TEST(CarryQueue, StopHandsOverWhatIsLeftAtOnceThenEnds) {
  CarryQueue q(60'000);
  q.Add(Rel(1));
  q.Add(Rel(2));
  auto waiter = std::async(std::launch::async, [&] {
    std::vector<uint64_t> got;
    while (auto r = q.WaitOverdue()) got.push_back(std::get<pb::ReleaseRequest>(*r).handle_id());
    return got;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.Stop();
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(waiter.get(), (std::vector<uint64_t>{1, 2}));
}

TEST(CarryQueue, ClearForgetsWhatIsQueued) {
  CarryQueue q(60'000);
  q.Add(Rel(1));
  q.Add(Rel(2));
  EXPECT_FALSE(q.stopping());
  q.Stop();
  EXPECT_TRUE(q.stopping());
  EXPECT_EQ(q.Clear(), 2u);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.WaitOverdue().has_value());
}

}  // namespace
}  // namespace dfs::fuse
