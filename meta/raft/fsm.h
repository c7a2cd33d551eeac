// Fsm: the metadata StateMachine as libraft's FSM (struct raft_fsm, v2).
//
//  - apply: decodes the entry frame (framing.h) and applies it at Raft index
//    raft_last_applied(r) + 1 (0.15 does not pass the index; it advances
//    last_applied only after apply returns). The OpResults stay in
//    last_results() for the raft_apply callback that libraft calls right
//    after, on the same thread. On a follower nobody waits for results, and
//    libraft applies the entries a leader's AppendEntries says are committed
//    before it acknowledges the entries that message carried: so a follower
//    keeps a copy of the entry and applies it in Drain, which RaftNode runs
//    after each turn of the loop's I/O (the acknowledgement has gone), and
//    which runs first whenever anything needs the database as applied: an
//    apply as leader, a new leader's barrier, a snapshot, a restore.
//  - snapshot (v3, asynchronous): `snapshot`, on the loop thread, pins the
//    database as applied so far (StateMachine::PinImage, a read
//    transaction); `snapshot_async`, on libuv's thread pool, copies that
//    pinned state (sqlite3_serialize) while the loop goes on applying;
//    `snapshot_finalize`, on the loop thread again, frees the copy (raft
//    frees nothing itself). A synchronous copy stopped the loop, heartbeats
//    included, for ~0.3 s per 250 MB of metadata every snapshot_threshold
//    entries: enough for followers to start an election.
//  - restore: StateMachine::Restore, which keeps a database that is already
//    newer than the snapshot (libraft restores on every start); the buffer is
//    ours to free (libraft hands its ownership over).
//
// Thread-safety: libraft calls it on its loop thread, except
// snapshot_async, which it runs on the thread pool between `snapshot` and
// `snapshot_finalize` (libraft takes one snapshot at a time, and refuses to
// install a leader's snapshot meanwhile).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meta/raft/raft_c.h"
#include "meta/state_machine/state_machine.h"

namespace dfs::meta::raft {

struct FsmOptions {
  // Snapshot copies on libuv's thread pool (FSM v3). Off: on the loop
  // thread (v2), for libraft 0.15's test fixture, whose I/O has no thread
  // pool (raft_fixture_grow refuses a v3 FSM).
  bool async_snapshots = true;
  // A follower's entries wait for Drain (see `apply` above).
  bool defer_follower_applies = true;
};

class Fsm {
 public:
  // `state_machine` must outlive the Fsm.
  explicit Fsm(StateMachine* state_machine, FsmOptions options = FsmOptions());
  Fsm(const Fsm&) = delete;
  Fsm& operator=(const Fsm&) = delete;

  raft_fsm* get() { return &fsm_; }
  // The raft instance that drives this FSM (set before raft_start).
  void set_raft(struct raft* r) { raft_ = r; }
  // Tests only: runs on the thread pool before each snapshot's copy.
  void set_before_copy(std::function<void()> hook) { before_copy_ = std::move(hook); }
  // Results of the entry applied last (moved out by the apply callback).
  std::vector<pb::OpResult>& last_results() { return last_results_; }
  StateMachine* state_machine() { return state_machine_; }
  // Applies the entries a follower deferred, in order.
  void Drain();

 private:
  static int Apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotAsync(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int Restore(raft_fsm* fsm, raft_buffer* buf);
  void ApplyNow(uint64_t index, std::string_view payload, std::vector<pb::OpResult>* out);
  struct Deferred {
    uint64_t index;
    std::string payload;
  };

  StateMachine* const state_machine_;
  struct raft* raft_ = nullptr;
  raft_fsm fsm_{};
  std::vector<pb::OpResult> last_results_;
  // From `snapshot` to `snapshot_async` (or to `snapshot_finalize`, if
  // libraft never ran the copy).
  std::optional<StateMachine::ImagePin> pin_;
  std::function<void()> before_copy_;
  const bool defer_follower_applies_;
  std::vector<Deferred> deferred_;
};

}  // namespace dfs::meta::raft
