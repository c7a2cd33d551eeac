#include "meta/raft/hooked_io.h"

#include <cstring>
#include <utility>

namespace dfs::meta::raft {

HookedIo::HookedIo(raft_io* inner, Hooks hooks) : inner_(inner), hooks_(std::move(hooks)) {
  outer_.io = *inner;
  outer_.io.data = nullptr;
  outer_.io.load = &HookedIo::Load;
  outer_.io.start = &HookedIo::Start;
  outer_.io.send = &HookedIo::Send;
  outer_.io.close = &HookedIo::Close;
  outer_.self = this;
  // raft_uv 0.15 implements async_work (libuv's thread pool) but says
  // version 1, and raft_init refuses an FSM with asynchronous snapshots on
  // a version-1 io. Version 2 adds only async_work (raft.h).
  if (outer_.io.async_work != nullptr && outer_.io.version < 2) outer_.io.version = 2;
  // raft_uv calls back with `inner`; its `data` leads back here.
  inner_->data = this;
}

int HookedIo::Load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                   raft_index* start_index, raft_entry* entries[], size_t* n_entries) {
  HookedIo* self = FromOuter(io);
  int rv = self->inner_->load(io, term, voted_for, snapshot, start_index, entries, n_entries);
  // raft_uv writes its error text into the struct it was created with.
  if (rv != 0) std::memcpy(io->errmsg, self->inner_->errmsg, sizeof io->errmsg);
  return rv;
}

int HookedIo::Start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  HookedIo* self = FromOuter(io);
  self->tick_ = tick;
  self->recv_ = recv;
  int rv = self->inner_->start(io, msecs, &HookedIo::TickCb, &HookedIo::RecvCb);
  if (rv != 0) std::memcpy(io->errmsg, self->inner_->errmsg, sizeof io->errmsg);
  return rv;
}

int HookedIo::Send(raft_io* io, raft_io_send* req, const raft_message* message, raft_io_send_cb cb) {
  HookedIo* self = FromOuter(io);
  if (!self->hooks_.on_send) return self->inner_->send(io, req, message, cb);
  // raft_uv encodes the message before returning, so a copy on the stack
  // is enough.
  raft_message copy = *message;
  self->hooks_.on_send(&copy);
  return self->inner_->send(io, req, &copy, cb);
}

void HookedIo::Close(raft_io* io, raft_io_close_cb cb) {
  HookedIo* self = FromOuter(io);
  self->close_ = cb;
  self->inner_->close(io, &HookedIo::CloseCb);
}

void HookedIo::TickCb(raft_io* inner) {
  auto* self = static_cast<HookedIo*>(inner->data);
  self->tick_(&self->outer_.io);
}

void HookedIo::RecvCb(raft_io* inner, raft_message* message) {
  auto* self = static_cast<HookedIo*>(inner->data);
  if (self->hooks_.on_recv && !self->hooks_.on_recv(message)) return;
  self->recv_(&self->outer_.io, message);
  if (self->hooks_.on_recv_done) self->hooks_.on_recv_done();
}

void HookedIo::CloseCb(raft_io* inner) {
  auto* self = static_cast<HookedIo*>(inner->data);
  if (self->close_ != nullptr) self->close_(&self->outer_.io);
}

}  // namespace dfs::meta::raft
