// FileSystem's file locks (file_system.h, "File locks"): fcntl and flock
// locks kept by meta, the flush before an unlock, the cache drop after a
// grant, and the ends of locks at close and at release.
#include <spdlog/spdlog.h>

#include <type_traits>

#include "fuse/client/file_system.h"

namespace dfs::fuse {

using common::Result;
using common::Status;

namespace {

// SetLockRequest or GetLockRequest: the same fields.
template <typename Request>
Request LockRequest(uint64_t ino, const FileSystem::LockSpec& spec) {
  Request request;
  request.set_ino(ino);
  request.set_owner(spec.owner);
  request.set_kind(spec.kind);
  request.set_type(spec.type);
  request.set_start(spec.start);
  request.set_end(spec.end);
  if constexpr (std::is_same_v<Request, pb::SetLockRequest>) request.set_pid(spec.pid);
  return request;
}

}  // namespace

Result<bool> FileSystem::Lock(FileHandle& handle, const LockSpec& spec) {
  const uint64_t ino = handle.ino;
  auto st = State(ino);
  if (spec.type != pb::LOCK_TYPE_UNLOCK && handle.lost) {
    return LostHandleError();
  }
  // A lost handle's writes are dropped by the next flush, which says so.
  if (spec.type == pb::LOCK_TYPE_UNLOCK && !handle.lost) RETURN_IF_ERROR(Flush(ino));
  const AttrStamp before = StampBeforeCall();
  ASSIGN_OR_RETURN(std::optional<pb::Attr> attr,
                   WithSession([&] { return meta_->SetLock(LockRequest<pb::SetLockRequest>(ino, spec)); }));
  std::lock_guard<std::mutex> io_lock(st->io_mu);  // for st->leases, taken before mu
  std::lock_guard<std::mutex> lock(st->mu);
  if (spec.type == pb::LOCK_TYPE_UNLOCK) {
    if (spec.kind == pb::LOCK_KIND_FLOCK || (spec.start == 0 && spec.end >= kLockToEnd)) {
      std::erase_if(st->lock_holders,
                    [&](const auto& h) { return std::get<1>(h) == spec.kind && std::get<2>(h) == spec.owner; });
    }
    return false;
  }
  st->lock_holders.emplace(&handle, spec.kind, spec.owner);
  if (!attr) return false;
  // As at open (close-to-open): keep the cached data only if size and mtime
  // are what this mount last saw; our own buffered writes are newer anyway,
  // and so is a flush of ours that ended after meta made this reply (the
  // size of SQLite's -shm file went back to 3 bytes that way).
  const bool dirty = !st->buffer.empty() || !st->in_flight.empty();
  const bool fresh = LearnAttr(*st, *attr, before);
  const bool changed =
      !dirty && fresh && (st->opened_mtime_ns != attr->mtime_ns() || st->opened_size != attr->size());
  if (changed) {
    // Another mount wrote: it took the chunks' leases (meta ended ours when
    // it locked), so ours name versions that are gone.
    st->leases.clear();
    DropCachedData(*st);
    st->opened_mtime_ns = attr->mtime_ns();
    st->opened_size = attr->size();
    st->attr_known_mono_ms = -1;
  }
  return changed;
}

Result<pb::GetLockReply> FileSystem::TestLock(uint64_t ino, const LockSpec& spec) {
  return meta_->GetLock(LockRequest<pb::GetLockRequest>(ino, spec));
}

Status FileSystem::EndLocks(uint64_t ino, InodeState& st, int kind, uint64_t owner) {
  LockSpec spec;
  spec.owner = owner;
  spec.kind = static_cast<pb::LockKind>(kind);
  spec.type = pb::LOCK_TYPE_UNLOCK;
  spec.end = kLockToEnd;
  Result<std::optional<pb::Attr>> done = meta_->SetLock(LockRequest<pb::SetLockRequest>(ino, spec));
  if (!done.ok()) {
    // The session's end frees them at meta at the latest.
    spdlog::warn("unlock of inode {} (owner {:x}): {}", ino, owner, done.status().ToString());
    return done.status();
  }
  std::lock_guard<std::mutex> lock(st.mu);
  std::erase_if(st.lock_holders, [&](const auto& h) { return std::get<1>(h) == kind && std::get<2>(h) == owner; });
  return Status::Ok();
}

Status FileSystem::UnlockOnClose(uint64_t ino, uint64_t owner) {
  auto st = FindState(ino);
  if (st == nullptr) return Status::Ok();
  bool held = false;
  {
    std::lock_guard<std::mutex> lock(st->mu);
    for (const auto& h : st->lock_holders) held |= std::get<1>(h) == pb::LOCK_KIND_POSIX && std::get<2>(h) == owner;
  }
  if (!held) return Status::Ok();
  return EndLocks(ino, *st, pb::LOCK_KIND_POSIX, owner);
}

Status FileSystem::EndHandleLocks(const FileHandle& handle) {
  auto st = FindState(handle.ino);
  if (st == nullptr) return Status::Ok();
  std::set<std::pair<int, uint64_t>> ends;
  {
    std::lock_guard<std::mutex> lock(st->mu);
    for (const auto& [h, kind, owner] : st->lock_holders) {
      if (h == &handle) ends.emplace(kind, owner);
    }
  }
  Status status;
  for (const auto& [kind, owner] : ends) {
    Status s = EndLocks(handle.ino, *st, kind, owner);
    if (status.ok()) status = s;
  }
  return status;
}

}  // namespace dfs::fuse
