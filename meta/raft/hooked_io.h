// HookedIo: a raft_io that forwards everything to libraft's own (raft_uv)
// and lets RaftNode see, and correct, messages on their way in and out:
// - AppendEntries results received by a leader are what its read lease is
//   built on (libraft 0.15 has check-quorum but does not say when a quorum
//   last heard from the leader; see read_lease.h);
// - libraft 0.15's follower-side AppendEntries bugs are corrected before it
//   sees the request and in its reply (append_fixes.h);
// - a member just started does not hear vote requests (node.h);
// - it reports version 2 when raft_uv has async_work (0.15 says 1), so that
//   the FSM may take snapshots asynchronously (fsm.h).
//
// How the wrapping works: the outer raft_io shares the inner one's `impl`
// and function pointers, so raft_uv finds its state whichever struct it is
// handed. raft_uv calls back with the inner struct (it remembers the one it
// was initialised with), so the receive, tick and close callbacks are
// wrapped to hand libraft the outer struct, whose `data` is the raft.
//
// Thread-safety: the loop thread only, like everything raft.
#pragma once

#include <functional>

#include "meta/raft/raft_c.h"

namespace dfs::meta::raft {

class HookedIo {
 public:
  struct Hooks {
    // Each received message, before libraft; may change it in place.
    // False drops it, as a lost packet (only for messages that own no
    // buffers: RequestVote and the results).
    std::function<bool(raft_message* message)> on_recv;
    // Each message libraft sends, before it is encoded; may change it (it is
    // a copy). Messages libraft sends while handling a received one arrive
    // here before on_recv_done.
    std::function<void(raft_message* message)> on_send;
    // After libraft has handled a received message.
    std::function<void()> on_recv_done;
  };

  // `inner` is an initialised raft_uv io; it must outlive this object.
  HookedIo(raft_io* inner, Hooks hooks);
  HookedIo(const HookedIo&) = delete;
  HookedIo& operator=(const HookedIo&) = delete;

  // What to pass to raft_init.
  raft_io* get() { return &outer_.io; }

 private:
  struct Outer {
    raft_io io;  // first member: a raft_io* is an Outer*
    HookedIo* self;
  };
  static HookedIo* FromOuter(raft_io* io) { return reinterpret_cast<Outer*>(io)->self; }
  static int Load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                  raft_index* start_index, raft_entry* entries[], size_t* n_entries);
  static int Start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static int Send(raft_io* io, raft_io_send* req, const raft_message* message, raft_io_send_cb cb);
  static void Close(raft_io* io, raft_io_close_cb cb);
  static void TickCb(raft_io* inner);
  static void RecvCb(raft_io* inner, raft_message* message);
  static void CloseCb(raft_io* inner);

  raft_io* const inner_;
  Hooks hooks_;
  Outer outer_{};
  raft_io_tick_cb tick_ = nullptr;
  raft_io_recv_cb recv_ = nullptr;
  raft_io_close_cb close_ = nullptr;
};

}  // namespace dfs::meta::raft
