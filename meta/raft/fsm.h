// Fsm: the metadata StateMachine as libraft's FSM (struct raft_fsm, v2).
//
//  - apply: decodes the entry frame (framing.h) and applies it at Raft index
//    raft_last_applied(r) + 1 (0.15 does not pass the index; it advances
//    last_applied only after apply returns). The OpResults stay in
//    last_results() for the raft_apply callback that libraft calls right
//    after, on the same thread; followers have no callback, so nothing is
//    allocated per entry that nobody would free.
//  - snapshot: an image of the SQLite database (sqlite3_serialize), freed by
//    snapshot_finalize (v2: raft frees nothing itself).
//  - restore: StateMachine::Restore, which keeps a database that is already
//    newer than the snapshot (libraft restores on every start); the buffer is
//    ours to free (libraft hands its ownership over).
//
// Thread-safety: libraft calls it on its loop thread only.
#pragma once

#include <vector>

#include "meta/raft/raft_c.h"
#include "meta/state_machine/state_machine.h"

namespace dfs::meta::raft {

class Fsm {
 public:
  // `state_machine` must outlive the Fsm.
  explicit Fsm(StateMachine* state_machine);
  Fsm(const Fsm&) = delete;
  Fsm& operator=(const Fsm&) = delete;

  raft_fsm* get() { return &fsm_; }
  // The raft instance that drives this FSM (set before raft_start).
  void set_raft(struct raft* r) { raft_ = r; }
  // Results of the entry applied last (moved out by the apply callback).
  std::vector<pb::OpResult>& last_results() { return last_results_; }
  StateMachine* state_machine() { return state_machine_; }

 private:
  static int Apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int Restore(raft_fsm* fsm, raft_buffer* buf);

  StateMachine* const state_machine_;
  struct raft* raft_ = nullptr;
  raft_fsm fsm_{};
  std::vector<pb::OpResult> last_results_;
};

}  // namespace dfs::meta::raft
