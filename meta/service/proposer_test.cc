// LocalProposer: concurrent proposals share Entries (group commit), every
// proposal gets its own result, and stopping fails what is left.
#include "meta/service/proposer.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

TEST(LocalProposerTest, Propose_ConcurrentOpsAreBatchedAndAllApplied) {
  testing::SmHarness h;
  LocalProposer proposer(&h.sm());
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> inos;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        pb::Op op;
        op.mutable_mkdir()->set_parent(1);
        op.mutable_mkdir()->set_name("d" + std::to_string(t) + "_" + std::to_string(i));
        auto result = proposer.Propose(op).get();
        ASSERT_TRUE(result.ok());
        ASSERT_EQ(result->status().code(), 0);
        std::lock_guard<std::mutex> lock(mu);
        inos.insert(result->attr().ino());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(inos.size(), static_cast<size_t>(kThreads * kPerThread));
  LocalProposer::Stats stats = proposer.stats();
  EXPECT_EQ(stats.ops, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LE(stats.entries, stats.ops);
}

TEST(LocalProposerTest, Destructor_FailsNothingWhenIdle) {
  testing::SmHarness h;
  auto proposer = std::make_unique<LocalProposer>(&h.sm());
  pb::Op op;
  op.mutable_mkdir()->set_parent(1);
  op.mutable_mkdir()->set_name("x");
  EXPECT_TRUE(proposer->Propose(op).get().ok());
  proposer.reset();
}

}  // namespace
}  // namespace dfs::meta
