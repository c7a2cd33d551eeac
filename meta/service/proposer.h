// Proposer: how a mutation reaches the state machine. A handler builds one
// pb::Op (stamped with the time and placement), proposes it, and waits for
// its OpResult; the Op is applied when the Entry that carries it commits.
//
// LocalProposer is the single-node implementation: one applier thread drains
// the queue of pending Ops into one Entry (group commit: every Op that queued
// while the previous Entry was being applied rides in the next one), serializes
// it exactly as it would go to the Raft log, calls StateMachine::Apply (one
// SQLite transaction, one fsync) and fulfils each Op's promise. meta-raft
// replaces it with a proposer that hands the Entry bytes to raft_apply on the
// libraft loop thread and fulfils the promises from the FSM apply callback.
//
// Thread-safety: Propose from any thread. Threads: LocalProposer owns
// `applier_` (drains the queue, runs Apply).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/result.h"
#include "meta/state_machine/state_machine.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

class Proposer {
 public:
  using Done = std::function<void(common::Result<pb::OpResult>)>;
  virtual ~Proposer() = default;
  // Queues `op`; `done` runs exactly once, on the applier's thread, with the
  // Op's OpResult once applied, or Unavailable if the proposer stopped first.
  // Does not block; `done` must not block either (it finishes RPCs).
  virtual void ProposeAsync(pb::Op op, Done done) = 0;
  // The same, waiting through a future.
  std::future<common::Result<pb::OpResult>> Propose(pb::Op op);
};

class LocalProposer final : public Proposer {
 public:
  struct Stats {
    uint64_t entries = 0;  // Apply calls (transactions, fsyncs)
    uint64_t ops = 0;
  };

  // `state_machine` must outlive the proposer. At most `max_ops_per_entry`
  // Ops share one Entry.
  explicit LocalProposer(StateMachine* state_machine, size_t max_ops_per_entry = 1024);
  // Stops: fails what is still queued with Unavailable, joins the applier.
  ~LocalProposer() override;
  LocalProposer(const LocalProposer&) = delete;
  LocalProposer& operator=(const LocalProposer&) = delete;

  void ProposeAsync(pb::Op op, Done done) override;
  Stats stats();

 private:
  struct Pending {
    pb::Op op;
    Done done;
  };
  void Run();

  StateMachine* const state_machine_;
  const size_t max_ops_per_entry_;
  std::mutex mu_;  // guards queue_, stopping_, stats_; leaf lock
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread applier_;  // drains queue_ into Entries and applies them
};

}  // namespace dfs::meta
