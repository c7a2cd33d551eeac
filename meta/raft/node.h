// RaftNode: this dfs-meta's member of the metadata Raft group (libraft 0.15
// over its libuv TCP transport), and the Proposer the MetaService hands its
// mutations to.
//
// Threads: one loop thread owns the uv loop and the raft object; every raft_*
// call and every FSM callback runs on it (libraft is not thread-safe).
// ProposeAsync, AddMember, RemoveMember and Post queue work under `mu_` and
// wake the loop with uv_async_send (the only libuv call safe from other
// threads). Group commit: each wake-up drains the queue into one Entry per
// max_ops_per_entry Ops - one log append, one replication round, one SQLite
// transaction for all of them - and completes each Op from the raft_apply
// callback (on the loop thread).
//
// Leadership: a 10 ms poll timer watches raft_state(). A new leader first
// commits a barrier (so its state machine has applied everything earlier
// leaders committed), runs `on_leader`, and only then serves; it serves
// while its read lease (read_lease.h) holds, which HookedIo feeds. A
// deposed or partitioned leader stops serving when its lease runs out even
// before libraft notices. While idle, the leader appends a barrier every
// election_timeout / 4 to keep its lease fresh. A member ignores vote
// requests for one election timeout after it starts: the lease counts on
// followers that heard from the leader not voting for another that soon,
// and a restart makes libraft forget that it heard.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

#include "common/result.h"
#include "meta/raft/hooked_io.h"
#include "meta/raft/fsm.h"
#include "meta/raft/raft_c.h"
#include "meta/service/group.h"
#include "meta/service/proposer.h"

namespace dfs::meta::raft {

struct Member {
  uint64_t id = 0;
  std::string raft_address;
};

struct RaftOptions {
  uint64_t id = 1;
  std::string raft_address;             // host:port libraft listens on; peers dial it
  std::vector<Member> initial_members;  // bootstrapped on the first start; empty: wait to be added
  std::string dir;                      // libraft's log, snapshots and term/vote (must exist)
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 8192;  // entries between snapshots
  unsigned snapshot_trailing = 2048;   // entries kept behind a snapshot
  size_t max_ops_per_entry = 1024;
  // Runs on the loop thread each time this node becomes leader, after its
  // barrier applied and before it serves. Must not block on the group.
  std::function<void()> on_leader;
  // Tests only: runs on libuv's thread pool before each snapshot's copy
  // (Fsm::set_before_copy), so that a test can hold a copy in progress.
  std::function<void()> before_snapshot_copy;
};

class RaftNode final : public Proposer, public Group {
 public:
  // Opens libraft's data in options.dir (restoring the newest snapshot into
  // `state_machine`), bootstraps on the first start, listens and starts the
  // loop thread. Unavailable with libraft's message on failure (a taken
  // port shows as "I/O error").
  static common::Result<std::unique_ptr<RaftNode>> Start(StateMachine* state_machine, RaftOptions options);
  // Leaves the group's loop: pending proposals fail with Unavailable.
  ~RaftNode() override;
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Fails with Unavailable "not the leader" unless this node leads; an Op
  // whose leadership is lost before it commits fails with Unavailable too
  // (it may still commit: clients retry with the same request id). Over
  // kMaxQueuedProposals waiting for the loop, Unavailable "overloaded" at
  // once (clients back off and retry), so a flood cannot exhaust memory.
  void ProposeAsync(pb::Op op, Done done) override;
  static constexpr size_t kMaxQueuedProposals = 65'536;

  // Group: leader, caught up (barrier applied) and within its read lease.
  bool Serving() const override;
  // As of the last poll (at most ~10 ms old).
  View view() const override;

  // Membership changes, on the leader: AddMember adds `id` and promotes it
  // to voter once it has caught up; RemoveMember takes it out. `done` runs
  // on the loop thread with the outcome (Unavailable if not leader,
  // AlreadyExists/NotFound for a known/unknown id, FailedPrecondition while
  // another change is in progress).
  void AddMember(uint64_t id, std::string raft_address, std::function<void(common::Status)> done) override;
  void RemoveMember(uint64_t id, std::function<void(common::Status)> done) override;

  // Vote requests ignored because they came within one election timeout
  // of this member's start.
  uint64_t votes_refused_after_start() const { return votes_refused_.load(); }

 private:
  struct Pending {
    pb::Op op;
    Done done;
  };
  struct ApplyReq;
  struct BarrierReq;
  struct ChangeReq;

  RaftNode(StateMachine* state_machine, RaftOptions options);
  common::Status Init();
  void Post(std::function<void()> fn);
  // Loop thread.
  static void OnAsync(uv_async_t* handle);
  static void OnPoll(uv_timer_t* handle);
  static void OnApplied(struct raft_apply* req, int status, void* result);
  static void OnBarrier(struct raft_barrier* req, int status);
  static void OnChange(struct raft_change* req, int status);
  static void OnRaftClosed(struct raft* r);
  void Drain();
  void Poll();
  bool OnRecv(raft_message* message);
  void OnSend(raft_message* message);
  void OnAppendResult(raft_id from, const raft_append_entries_result& result);
  // Notes that the entry just appended (raft_last_index) exists from now.
  void Appended();
  void UpdateLease();
  void Close();

  StateMachine* const state_machine_;
  const RaftOptions options_;
  Fsm fsm_;

  // Loop thread only (after Start).
  uv_loop_t loop_{};
  raft_uv_transport transport_{};
  raft_io io_{};
  std::unique_ptr<HookedIo> hooked_io_;
  // While libraft handles an AppendEntries: its sender and the highest index
  // it vouches for (append_fixes.h), to correct the reply; sender 0 otherwise.
  raft_id handling_append_from_ = 0;
  raft_index handling_append_vouched_ = 0;
  struct raft raft_{};
  uv_async_t async_{};
  uv_timer_t poll_{};
  uv_check_t drain_{};  // applies what the FSM deferred, after each I/O phase
  bool loop_ready_ = false;        // uv_loop_init succeeded
  bool raft_ready_ = false;        // raft_init succeeded (raft_close owed)
  bool handles_ready_ = false;     // async_ and poll_ initialised
  bool leading_ = false;           // raft_state was LEADER at the last poll
  raft_term leader_term_ = 0;      // the term we lead (or last led)
  bool barrier_in_flight_ = false;
  bool caught_up_ = false;         // this term's barrier applied
  std::map<raft_id, int64_t> contacts_;  // voter -> latest proven contact (steady ns), this term
  // Entries this leader appended in its term and when (steady ns), oldest
  // first, pruned to the last 2 election timeouts: an answer that covers
  // index i proves contact at or after i's time (read_lease.h).
  std::deque<std::pair<raft_index, int64_t>> appended_;
  bool lease_barrier_in_flight_ = false;
  std::thread thread_;

  int64_t started_ns_ = 0;                 // raft_start (steady clock)
  std::atomic<uint64_t> votes_refused_{0};
  std::atomic<bool> ready_{false};          // leading and caught up
  std::atomic<int64_t> lease_until_ns_{0};  // steady clock

  mutable std::mutex mu_;  // guards the queues, closing_ and view_; leaf lock
  std::deque<Pending> proposals_;
  std::deque<std::function<void()>> tasks_;
  bool closing_ = false;
  View view_;
};

}  // namespace dfs::meta::raft
