#include "meta/raft/fsm.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <utility>

#include "common/check.h"
#include "meta/raft/framing.h"

namespace dfs::meta::raft {

namespace {
Fsm* Self(raft_fsm* fsm) { return static_cast<Fsm*>(fsm->data); }
}  // namespace

Fsm::Fsm(StateMachine* state_machine, FsmOptions options)
    : state_machine_(state_machine), defer_follower_applies_(options.defer_follower_applies) {
  fsm_.version = options.async_snapshots ? 3 : 2;
  fsm_.data = this;
  fsm_.apply = &Fsm::Apply;
  fsm_.snapshot = &Fsm::Snapshot;
  fsm_.restore = &Fsm::Restore;
  fsm_.snapshot_finalize = &Fsm::SnapshotFinalize;
  fsm_.snapshot_async = options.async_snapshots ? &Fsm::SnapshotAsync : nullptr;
}

int Fsm::Apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  Fsm* self = Self(fsm);
  CHECK(self->raft_ != nullptr);
  const raft_index index = raft_last_applied(self->raft_) + 1;
  self->last_results_.clear();
  *result = &self->last_results_;
  common::Result<std::string_view> payload = DecodeEntry(*buf);
  if (!payload.ok()) {
    // Every replica holds the same bytes, so every replica skips it alike.
    spdlog::error("raft entry {}: {}", index, payload.status().ToString());
    payload = std::string_view();
  }
  if (self->defer_follower_applies_ && raft_state(self->raft_) != RAFT_LEADER) {
    // Nobody waits for a follower's results, and libraft acknowledges the
    // entries it just wrote only after this returns: the copy is applied
    // by Drain, right after.
    self->deferred_.push_back({index, std::string(*payload)});
    return 0;
  }
  self->Drain();
  self->ApplyNow(index, *payload, &self->last_results_);
  // Non-zero would make libraft retry the same entry forever.
  return 0;
}

void Fsm::ApplyNow(uint64_t index, std::string_view payload, std::vector<pb::OpResult>* out) {
  auto results = state_machine_->ApplyAt(payload, index);
  if (results.ok()) {
    if (out != nullptr) *out = std::move(results).value();
  } else if (!payload.empty()) {
    spdlog::error("raft entry {}: {}", index, results.status().ToString());
  }
}

void Fsm::Drain() {
  for (Deferred& entry : deferred_) ApplyNow(entry.index, entry.payload, nullptr);
  deferred_.clear();
}

int Fsm::Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  Fsm* self = Self(fsm);
  self->Drain();
  auto pin = self->state_machine_->PinImage();
  if (!pin.ok()) {
    spdlog::error("snapshot: {}", pin.status().ToString());
    return RAFT_IOERR;
  }
  self->pin_.emplace(std::move(pin).value());
  *bufs = nullptr;
  *n_bufs = 0;
  if (self->fsm_.snapshot_async == nullptr) return SnapshotAsync(fsm, bufs, n_bufs);
  return 0;
}

int Fsm::SnapshotAsync(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  Fsm* self = Self(fsm);
  if (!self->pin_) return RAFT_INVALID;
  if (self->before_copy_) self->before_copy_();
  auto image = self->pin_->Take();
  self->pin_.reset();
  if (!image.ok()) {
    spdlog::error("snapshot: {}", image.status().ToString());
    return RAFT_NOMEM;
  }
  *bufs = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  if (*bufs == nullptr) return RAFT_NOMEM;
  (*bufs)[0].len = image->size;
  (*bufs)[0].base = image->bytes.release();
  *n_bufs = 1;
  return 0;
}

int Fsm::SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  Self(fsm)->pin_.reset();
  if (*bufs != nullptr) {
    for (unsigned i = 0; i < *n_bufs; ++i) StateMachine::ImageDeleter()(static_cast<unsigned char*>((*bufs)[i].base));
    raft_free(*bufs);
  }
  *bufs = nullptr;
  *n_bufs = 0;
  return 0;
}

int Fsm::Restore(raft_fsm* fsm, raft_buffer* buf) {
  Fsm* self = Self(fsm);
  self->Drain();
  const uint64_t before = self->state_machine_->AppliedIndex();
  common::Status status =
      self->state_machine_->Restore(std::string_view(static_cast<const char*>(buf->base), buf->len));
  raft_free(buf->base);
  if (status.ok() && self->state_machine_->AppliedIndex() != before) {
    spdlog::info("raft: restored a snapshot ({} bytes) at applied index {}", buf->len,
                 self->state_machine_->AppliedIndex());
  }
  if (!status.ok()) {
    spdlog::critical("restoring a snapshot: {}", status.ToString());
    return RAFT_CORRUPT;
  }
  return 0;
}

}  // namespace dfs::meta::raft
