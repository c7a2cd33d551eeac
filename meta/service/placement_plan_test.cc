#include "meta/service/placement_plan.h"

#include <gtest/gtest.h>

namespace dfs::meta {
namespace {

StateMachine::RepairCandidate Chunk(uint32_t want, std::vector<uint64_t> live, std::vector<uint64_t> other = {},
                                    std::vector<uint64_t> deleting = {}) {
  StateMachine::RepairCandidate c;
  c.chunk_id = 77;
  c.version = 3;
  c.want = want;
  c.live_holders = std::move(live);
  c.other_holders = std::move(other);
  c.deleting = std::move(deleting);
  return c;
}

TEST(PlanChunk, AChunkWhereTheRingWantsItIsLeftAlone) {
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2, 3}), {2, 1, 3, 4}, {}).kind, ChunkAction::kNone);
  // Fewer live nodes than wanted copies, all holding it: nothing to do.
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2}), {2, 1}, {}).kind, ChunkAction::kNone);
}

TEST(PlanChunk, AnUnderReplicatedChunkIsCopiedToTheFirstRingNodeWithoutIt) {
  ChunkAction a = PlanChunk(Chunk(3, {1, 2}, /*other=*/{3}), {2, 3, 1, 4, 5}, {});
  EXPECT_EQ(a.kind, ChunkAction::kRepair);
  EXPECT_EQ(a.target, 4u);  // 3 holds a copy, though dead-listed; 2 and 1 hold it
  EXPECT_TRUE(a.source == 1 || a.source == 2);
  // A node still deleting an old copy is no target yet.
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2}, {}, /*deleting=*/{4}), {1, 2, 4, 5}, {}).target, 5u);
  // No counted copy: a live draining node is the source.
  ChunkAction d = PlanChunk(Chunk(2, {}, /*other=*/{9}), {1, 2}, /*draining=*/{9});
  EXPECT_EQ(d.kind, ChunkAction::kRepair);
  EXPECT_EQ(d.source, 9u);
  // Nothing left to copy from.
  EXPECT_EQ(PlanChunk(Chunk(2, {}, /*other=*/{9}), {1, 2}, {}).kind, ChunkAction::kNone);
}

// A copy onto node 4 failed (its disk is full): the next ring node gets it,
// for repairs and moves alike; with none left, nothing is planned.
TEST(PlanChunk, ANodeACopyFailedOnIsPassedOver) {
  ChunkAction a = PlanChunk(Chunk(3, {1, 2}), {1, 4, 2, 5}, {}, /*avoid=*/{4});
  EXPECT_EQ(a.kind, ChunkAction::kRepair);
  EXPECT_EQ(a.target, 5u);
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2}), {1, 4, 2}, {}, /*avoid=*/{4}).kind, ChunkAction::kNone);
  EXPECT_EQ(PlanChunk(Chunk(2, {1, 5}), {4, 1, 5}, {}, /*avoid=*/{4}).kind, ChunkAction::kNone);
  EXPECT_EQ(PlanChunk(Chunk(2, {1, 5}), {4, 1, 5}, {}).kind, ChunkAction::kMove);
}

// Node 4 is short of room: no move goes onto it, and no copy it holds is
// moved off; a repair goes to it only when no other node can take one.
TEST(PlanChunk, ANodeShortOfRoomTakesNoMovesAndRepairsOnlyAsALastResort) {
  const std::vector<uint64_t> full{4};
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2, 5}), {1, 4, 2, 5}, {}, {}, full).kind, ChunkAction::kNone);
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2, 5}), {1, 4, 2, 5}, {}).kind, ChunkAction::kMove) << "with room it would";
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 4, 2}), {1, 4, 2, 5}, {}, {}, full).kind, ChunkAction::kNone) << "stays put";
  ChunkAction r = PlanChunk(Chunk(3, {1, 2}), {1, 4, 2, 5}, {}, {}, full);
  EXPECT_EQ(r.kind, ChunkAction::kRepair);
  EXPECT_EQ(r.target, 5u);
  r = PlanChunk(Chunk(3, {1, 2}), {1, 4, 2}, {}, {}, full);
  EXPECT_EQ(r.kind, ChunkAction::kRepair) << "a missing copy matters more than the reserve";
  EXPECT_EQ(r.target, 4u);
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2}), {1, 4, 2}, {}, /*avoid=*/{4}, full).kind, ChunkAction::kNone)
      << "unless a copy onto it failed";
}

TEST(PlanChunk, ANewRingNodeGetsACopyFromTheNodeThatLostItsPlace) {
  // Ring for this chunk after node 4 joined: 1, 4, 2, 3.
  ChunkAction a = PlanChunk(Chunk(3, {1, 2, 3}), {1, 4, 2, 3}, {});
  EXPECT_EQ(a.kind, ChunkAction::kMove);
  EXPECT_EQ(a.target, 4u);
  EXPECT_EQ(a.source, 3u);
  // Once the copy exists, the misplaced one is the surplus.
  ChunkAction t = PlanChunk(Chunk(3, {1, 2, 3, 4}), {1, 4, 2, 3}, {});
  EXPECT_EQ(t.kind, ChunkAction::kTrim);
  EXPECT_EQ(t.target, 3u);
  EXPECT_EQ(t.keep, (std::vector<uint64_t>{1, 2, 4}));
}

TEST(PlanChunk, ADrainingNodesCopyGoesOnceTheCountedOnesSuffice) {
  ChunkAction t = PlanChunk(Chunk(2, {1, 2}, /*other=*/{9}), {1, 2, 3}, /*draining=*/{9});
  EXPECT_EQ(t.kind, ChunkAction::kTrim);
  EXPECT_EQ(t.target, 9u);
  EXPECT_EQ(t.keep, (std::vector<uint64_t>{1, 2}));
  // Not before: then it is a repair source.
  EXPECT_EQ(PlanChunk(Chunk(3, {1, 2}, {9}), {1, 2, 3}, {9}).kind, ChunkAction::kRepair);
}

TEST(PlanChunk, ALowerReplicationFactorTrimsCopiesOutsideTheRingsChoice) {
  ChunkAction t = PlanChunk(Chunk(1, {1, 2, 3}), {2, 3, 1}, {});
  EXPECT_EQ(t.kind, ChunkAction::kTrim);
  EXPECT_NE(t.target, 2u);
  EXPECT_EQ(t.keep.size(), 2u);
}

TEST(PlanChunk, ADeadNodesCopyIsNeverTrimmed) {
  // Node 5 is dead (listed among other holders, not draining).
  EXPECT_EQ(PlanChunk(Chunk(2, {1, 2}, /*other=*/{5}), {1, 2, 3}, {}).kind, ChunkAction::kNone);
}

}  // namespace
}  // namespace dfs::meta
