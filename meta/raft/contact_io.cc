#include "meta/raft/contact_io.h"

#include <cstring>
#include <utility>

namespace dfs::meta::raft {

ContactIo::ContactIo(raft_io* inner, OnResult on_result) : inner_(inner), on_result_(std::move(on_result)) {
  outer_.io = *inner;
  outer_.io.data = nullptr;
  outer_.io.load = &ContactIo::Load;
  outer_.io.start = &ContactIo::Start;
  outer_.io.close = &ContactIo::Close;
  outer_.self = this;
  // raft_uv calls back with `inner`; its `data` leads back here.
  inner_->data = this;
}

int ContactIo::Load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                    raft_index* start_index, raft_entry* entries[], size_t* n_entries) {
  ContactIo* self = FromOuter(io);
  int rv = self->inner_->load(io, term, voted_for, snapshot, start_index, entries, n_entries);
  // raft_uv writes its error text into the struct it was created with.
  if (rv != 0) std::memcpy(io->errmsg, self->inner_->errmsg, sizeof io->errmsg);
  return rv;
}

int ContactIo::Start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  ContactIo* self = FromOuter(io);
  self->tick_ = tick;
  self->recv_ = recv;
  int rv = self->inner_->start(io, msecs, &ContactIo::TickCb, &ContactIo::RecvCb);
  if (rv != 0) std::memcpy(io->errmsg, self->inner_->errmsg, sizeof io->errmsg);
  return rv;
}

void ContactIo::Close(raft_io* io, raft_io_close_cb cb) {
  ContactIo* self = FromOuter(io);
  self->close_ = cb;
  self->inner_->close(io, &ContactIo::CloseCb);
}

void ContactIo::TickCb(raft_io* inner) {
  auto* self = static_cast<ContactIo*>(inner->data);
  self->tick_(&self->outer_.io);
}

void ContactIo::RecvCb(raft_io* inner, raft_message* message) {
  auto* self = static_cast<ContactIo*>(inner->data);
  if (message->type == RAFT_IO_APPEND_ENTRIES_RESULT) {
    self->on_result_(message->server_id, message->append_entries_result);
  }
  self->recv_(&self->outer_.io, message);
}

void ContactIo::CloseCb(raft_io* inner) {
  auto* self = static_cast<ContactIo*>(inner->data);
  if (self->close_ != nullptr) self->close_(&self->outer_.io);
}

}  // namespace dfs::meta::raft
