#include "meta/raft/append_fixes.h"

#include <gtest/gtest.h>

#include <cstring>

namespace dfs::meta::raft {
namespace {

// An AppendEntries as raft_uv decodes one: entries prev+1.. with the given
// terms, sharing one batch buffer of 8 bytes per entry.
raft_append_entries Received(raft_index prev, raft_term prev_term, std::initializer_list<raft_term> terms,
                             raft_index leader_commit) {
  raft_append_entries append{};
  append.term = 9;
  append.prev_log_index = prev;
  append.prev_log_term = prev_term;
  append.leader_commit = leader_commit;
  append.n_entries = static_cast<unsigned>(terms.size());
  if (terms.size() == 0) return append;
  auto* batch = static_cast<char*>(raft_malloc(8 * terms.size()));
  append.entries = static_cast<raft_entry*>(raft_calloc(terms.size(), sizeof(raft_entry)));
  size_t i = 0;
  for (raft_term term : terms) {
    std::memset(batch + 8 * i, static_cast<int>(i), 8);
    append.entries[i].term = term;
    append.entries[i].type = RAFT_COMMAND;
    append.entries[i].buf.base = batch + 8 * i;
    append.entries[i].buf.len = 8;
    append.entries[i].batch = batch;
    ++i;
  }
  return append;
}

// Frees what libraft would free after handling the request.
void Release(raft_append_entries& append) {
  if (append.n_entries > 0 && append.entries[0].batch != nullptr) raft_free(append.entries[0].batch);
  if (append.entries != nullptr) raft_free(append.entries);
}

TEST(AppendFixes, EntriesBelowOurSnapshotAreSkipped) {
  // The leader starts at 10 (its own old snapshot); ours is at 12.
  raft_append_entries append = Received(10, 3, {3, 4, 4, 5}, 14);
  EXPECT_TRUE(FixIncomingAppend(&append, LocalSnapshot{12, 4}));
  EXPECT_EQ(append.prev_log_index, 12u);
  EXPECT_EQ(append.prev_log_term, 4u);  // the leader's entry 12
  ASSERT_EQ(append.n_entries, 2u);
  EXPECT_EQ(append.entries[0].term, 4u);  // entry 13
  EXPECT_EQ(append.entries[1].term, 5u);  // entry 14
  EXPECT_EQ(static_cast<const char*>(append.entries[0].buf.base)[0], 2);
  EXPECT_EQ(append.leader_commit, 14u);
  Release(append);
}

TEST(AppendFixes, AMessageWhollyBelowOurSnapshotBecomesAHeartbeatAtIt) {
  raft_append_entries append = Received(3, 1, {1, 2}, 5);
  EXPECT_TRUE(FixIncomingAppend(&append, LocalSnapshot{20, 6}));
  EXPECT_EQ(append.prev_log_index, 20u);
  EXPECT_EQ(append.prev_log_term, 6u);
  EXPECT_EQ(append.n_entries, 0u);
  EXPECT_EQ(append.entries, nullptr);
  EXPECT_EQ(append.leader_commit, 5u);
  Release(append);

  raft_append_entries empty = Received(0, 0, {}, 40);
  EXPECT_TRUE(FixIncomingAppend(&empty, LocalSnapshot{20, 6}));
  EXPECT_EQ(empty.prev_log_index, 20u);
  EXPECT_EQ(empty.leader_commit, 20u);
}

TEST(AppendFixes, AHeartbeatCommitsNoFurtherThanItVouches) {
  // A follower holding an uncommitted entry 8 from an old term must not
  // commit it on a heartbeat that only proves 7.
  raft_append_entries heartbeat = Received(7, 5, {}, 30);
  EXPECT_TRUE(FixIncomingAppend(&heartbeat, LocalSnapshot{4, 2}));
  EXPECT_EQ(heartbeat.prev_log_index, 7u);
  EXPECT_EQ(heartbeat.leader_commit, 7u);

  raft_append_entries append = Received(7, 5, {6, 6}, 30);
  EXPECT_TRUE(FixIncomingAppend(&append, LocalSnapshot{}));
  EXPECT_EQ(append.leader_commit, 9u);
  EXPECT_EQ(append.n_entries, 2u);
  Release(append);
}

TEST(AppendFixes, ACorrectMessageIsLeftAlone) {
  raft_append_entries append = Received(12, 4, {4, 5}, 13);
  EXPECT_FALSE(FixIncomingAppend(&append, LocalSnapshot{12, 4}));
  EXPECT_EQ(append.prev_log_index, 12u);
  EXPECT_EQ(append.n_entries, 2u);
  EXPECT_EQ(append.leader_commit, 13u);
  Release(append);
}

TEST(AppendFixes, ASuccessReplyClaimsNoMoreThanTheRequestVouched) {
  raft_append_entries_result result{};
  result.term = 9;
  result.rejected = 0;
  result.last_log_index = 8;  // includes a stale entry 8
  EXPECT_TRUE(FixAppendResult(&result, 7));
  EXPECT_EQ(result.last_log_index, 7u);

  raft_append_entries_result rejection{};
  rejection.rejected = 7;
  rejection.last_log_index = 8;
  EXPECT_FALSE(FixAppendResult(&rejection, 6));
  EXPECT_EQ(rejection.last_log_index, 8u);  // a hint for the leader, kept
}

}  // namespace
}  // namespace dfs::meta::raft
