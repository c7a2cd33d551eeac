// ContactIo: a raft_io that forwards everything to libraft's own (raft_uv)
// and shows each AppendEntries result to RaftNode before libraft sees it.
// libraft 0.15 has check-quorum but does not say when a quorum last heard
// from the leader; these results are what a leader's read lease is built on
// (see read_lease.h).
//
// How the wrapping works: the outer raft_io shares the inner one's `impl`
// and function pointers, so raft_uv finds its state whichever struct it is
// handed. raft_uv calls back with the inner struct (it remembers the one it
// was initialised with), so the receive, tick and close callbacks are
// wrapped to hand libraft the outer struct, whose `data` is the raft.
//
// Thread-safety: the loop thread only, like everything raft.
#pragma once

#include <cstdint>
#include <functional>

#include "meta/raft/raft_c.h"

namespace dfs::meta::raft {

class ContactIo {
 public:
  // Called on the loop thread for each AppendEntries result received.
  using OnResult = std::function<void(raft_id from, const raft_append_entries_result& result)>;

  // `inner` is an initialised raft_uv io; it must outlive this object.
  ContactIo(raft_io* inner, OnResult on_result);
  ContactIo(const ContactIo&) = delete;
  ContactIo& operator=(const ContactIo&) = delete;

  // What to pass to raft_init.
  raft_io* get() { return &outer_.io; }

 private:
  struct Outer {
    raft_io io;  // first member: a raft_io* is an Outer*
    ContactIo* self;
  };
  static ContactIo* FromOuter(raft_io* io) { return reinterpret_cast<Outer*>(io)->self; }
  static int Load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                  raft_index* start_index, raft_entry* entries[], size_t* n_entries);
  static int Start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static void Close(raft_io* io, raft_io_close_cb cb);
  static void TickCb(raft_io* inner);
  static void RecvCb(raft_io* inner, raft_message* message);
  static void CloseCb(raft_io* inner);

  raft_io* const inner_;
  OnResult on_result_;
  Outer outer_{};
  raft_io_tick_cb tick_ = nullptr;
  raft_io_recv_cb recv_ = nullptr;
  raft_io_close_cb close_ = nullptr;
};

}  // namespace dfs::meta::raft
