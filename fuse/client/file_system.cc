#include "fuse/client/file_system.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/chunk_geometry.h"
#include "common/posix_acl.h"
#include "common/posix_attr.h"

namespace dfs::fuse {

using common::Result;
using common::Status;

namespace {

int64_t NowMonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Writable(uint32_t flags) { return (flags & O_ACCMODE) != O_RDONLY; }

// Renew a write lease this long before it expires, so a flush never races the expiry.
constexpr int64_t kLeaseMarginMs = 5'000;
// A writer on another mount that just closed the file holds its chunk leases
// until its release reaches meta (its ReleaseQueue delay, or the next
// mutation there); one that died holds them until meta ends its session
// (30 s after its last keep-alive). A LeaseChunk refused as busy is retried
// this long, with pauses growing to kLeaseBusyPauseMs, before the write
// fails with EAGAIN: a dead mount's leases are ridden through, as a dead
// meta leader is.
constexpr int64_t kLeaseBusyWaitMs = 40'000;
constexpr int64_t kLeaseBusyPauseMs = 500;
// Flushes of one buffer when the chunk moved to another writer between them.
constexpr int kFlushAttempts = 3;
// Leases PlaceAppends takes while the end of file moves to another chunk.
constexpr int kPlaceAppendTries = 4;

}  // namespace

Status LostHandleError() {
  return common::InternalError("the session ended: this descriptor's locks or file are gone");
}

FileSystem::FileSystem(std::unique_ptr<MetaClient> meta, FileSystemOptions options)
    : meta_(std::move(meta)),
      options_(options),
      cache_(options.cache_bytes),
      chunks_(options.io_timeout_ms,
              [this](uint64_t chunk_id, uint64_t version, uint64_t node_id, const std::string& reason) {
                meta_->ReportBadReplica(chunk_id, version, node_id, reason);
              },
              options.retry_timeout_ms) {
  meta_->SetSessionLostHandler([this] { (void)RecoverSession(); });
  if (options_.flush_after_ms > 0) aged_flusher_ = std::thread([this] { FlushAgedLoop(); });
}

FileSystem::~FileSystem() {
  if (aged_flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(dirty_mu_);
      stopping_ = true;
    }
    dirty_cv_.notify_all();
    aged_flusher_.join();
  }
  meta_->SetSessionLostHandler(nullptr);  // waits for a RecoverSession in progress
  std::unique_lock<std::mutex> lock(tasks_mu_);
  background_done_cv_.wait(lock, [this] { return background_tasks_ == 0; });
}

std::shared_ptr<FileSystem::InodeState> FileSystem::State(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = inodes_[ino];
  if (!slot) slot = std::make_shared<InodeState>();
  return slot;
}

std::shared_ptr<FileSystem::InodeState> FileSystem::FindState(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second;
}

void FileSystem::MaybeDropState(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeState& st = *it->second;
  std::lock_guard<std::mutex> st_lock(st.mu);
  if (st.lookups == 0 && st.open_handles == 0 && st.buffer.empty() && st.in_flight.empty()) inodes_.erase(it);
}

void FileSystem::AddLookup(uint64_t ino, double entry_timeout_s) {
  auto st = State(ino);
  // Counted from before the reply leaves, so it ends no later than the
  // kernel's own timeout for the entry.
  const int64_t until = NowMonoMs() + static_cast<int64_t>(entry_timeout_s * 1000);
  std::lock_guard<std::mutex> lock(st->mu);
  st->lookups += 1;
  st->entry_valid_until_mono_ms = std::max(st->entry_valid_until_mono_ms, until);
}

void FileSystem::Forget(uint64_t ino, uint64_t n) {
  auto st = FindState(ino);
  if (st == nullptr) {
    spdlog::error("forget of inode {} that the kernel was never given", ino);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(st->mu);
    CHECK(st->lookups >= n);  // the kernel never forgets more than it was given
    st->lookups -= n;
  }
  MaybeDropState(ino);
}

bool FileSystem::KernelKnows(uint64_t ino) {
  auto st = FindState(ino);
  if (st == nullptr) return false;
  std::lock_guard<std::mutex> lock(st->mu);
  return st->lookups > 0;
}

void FileSystem::NoteRemoteChanges(const pb::ChangeNotices& notices) {
  // The marks it makes end the attributes of those inodes learned from an
  // open before now (GetAttr checks attr_known_remote against them);
  // capability answers have no such stamp, so they are cleared here.
  meta_->NoteRemoteChanges(notices);
  for (uint64_t ino : notices.inodes()) {
    auto st = FindState(ino);
    if (st == nullptr) continue;
    std::lock_guard<std::mutex> lock(st->mu);
    st->capability_checked_mono_ms = -1;
  }
}

uint64_t FileSystem::TEST_LookupCount(uint64_t ino) {
  auto st = FindState(ino);
  if (st == nullptr) return 0;
  std::lock_guard<std::mutex> lock(st->mu);
  return st->lookups;
}

FileSystem::AttrStamp FileSystem::StampBeforeCall() const {
  return AttrStamp{.name_changes = meta_->name_change_count(),
                   .data_changes = data_changes_.load(),
                   .remote_changes = meta_->remote_changes().Now()};
}

bool FileSystem::LearnAttr(InodeState& st, const pb::Attr& attr, const AttrStamp& before) {
  const bool overtaken = st.size_known && st.data_changed_at > before.data_changes;
  if (!overtaken) {
    const bool dirty = !st.buffer.empty() || !st.in_flight.empty();
    // Another client changed the file's length: where its chunks end, and
    // the blocks held of them, are as of before, and a read past the old
    // end would give zeros where it wrote (tail -f of a file another mount
    // appends to read NULs). Asked again at the next read.
    if (st.size_known && !dirty && attr.size() != st.size) DropCachedData(st);
    st.size = dirty ? std::max(st.size, attr.size()) : attr.size();
    st.size_known = true;
  }
  st.attr = attr;
  st.attr_name_changes = before.name_changes;
  return !overtaken;
}

void FileSystem::FreshenForCarry(const Caller& c, uint64_t ino, InodeState& st) {
  if (c.uid != 0 || !meta_->CanCarrySetAttr()) return;
  const AttrStamp before = StampBeforeCall();  // before asking: see below
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.unclosed_handles == 0 || !st.attr || st.attr_name_changes == before.name_changes) return;
  }
  // This mount unlinked, renamed or linked a name since: if it was another
  // name of this file, its link count changed at meta and not in `st`. A
  // read of meta's attributes (no commit) first. They count as of before
  // the read: a name change that ends while it runs may be missing in them.
  Result<pb::Attr> attr = meta_->GetAttr(c, ino);
  if (!attr.ok()) return;  // CarriableSetAttr then leaves the change to meta
  std::lock_guard<std::mutex> lock(st.mu);
  LearnAttr(st, *attr, before);
}

std::optional<pb::Attr> FileSystem::CarriableSetAttr(const Caller& c, const pb::SetAttrRequest& request,
                                                     InodeState& st, bool perm_bits_only) {
  constexpr uint32_t kCarriable = pb::SET_MODE | pb::SET_UID | pb::SET_GID | pb::SET_CTIME;
  const uint32_t valid = request.valid();
  if (c.uid != 0 || valid == 0 || (valid & ~kCarriable) != 0 || !meta_->CanCarrySetAttr()) return std::nullopt;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.unclosed_handles == 0 || !st.attr || !S_ISREG(st.attr->mode())) return std::nullopt;
  // Answered from what this mount last learned, which must postdate its
  // name changes (FreshenForCarry).
  if (st.attr_name_changes != meta_->name_change_count()) return std::nullopt;
  pb::Attr attr = *st.attr;
  const uint32_t new_mode = perm_bits_only ? (attr.mode() & 07000) | (request.mode() & 0777) : request.mode();
  attr.set_mode(common::ModeAfterRootSetAttr(attr.mode(), valid, new_mode));
  if (valid & pb::SET_UID) attr.set_uid(request.uid());
  if (valid & pb::SET_GID) attr.set_gid(request.gid());
  attr.set_ctime_ns(NowUnixMs() * 1'000'000);
  attr.set_size(st.size);
  st.attr = attr;
  return attr;
}

void FileSystem::OverlayLocalSize(pb::Attr* attr, const AttrStamp& before) {
  auto st = FindState(attr->ino());
  if (st == nullptr) return;
  std::lock_guard<std::mutex> lock(st->mu);
  LearnAttr(*st, *attr, before);
  attr->set_size(st->size);
}

Result<pb::Attr> FileSystem::GetAttr(const Caller& c, uint64_t ino) {
  if (auto st = FindState(ino); st != nullptr) {
    std::lock_guard<std::mutex> lock(st->mu);
    const int64_t learned = st->attr_known_mono_ms;
    if (learned >= 0 && st->attr && NowMonoMs() - learned < options_.open_attr_ms &&
        st->attr_known_mutations == meta_->mutation_count() &&
        meta_->remote_changes().Current(ino, st->attr_known_remote)) {
      pb::Attr attr = *st->attr;
      attr.set_size(st->size);
      return attr;
    }
    st->attr_known_mono_ms = -1;
  }
  const AttrStamp before = StampBeforeCall();
  ASSIGN_OR_RETURN(pb::Attr attr, meta_->GetAttr(c, ino));
  OverlayLocalSize(&attr, before);
  return attr;
}

bool FileSystem::HeldOpen(uint64_t ino) {
  auto st = FindState(ino);
  if (st == nullptr) return false;
  std::lock_guard<std::mutex> lock(st->mu);
  return st->open_handles > 0;
}

std::optional<DirListings::Hit> FileSystem::ListedLookup(uint64_t parent, const std::string& name) {
  std::optional<DirListings::Hit> hit = meta_->ListedLookup(parent, name);
  if (!hit) return std::nullopt;
  if (auto st = FindState(hit->attr.ino())) {
    std::lock_guard<std::mutex> lock(st->mu);
    if (st->open_handles > 0 || NowMonoMs() < st->entry_valid_until_mono_ms) return std::nullopt;
  }
  return hit;  // ReplyEntry lays the local size over it
}

std::optional<DirListings::Hit> FileSystem::ListedAttr(uint64_t ino) {
  if (HeldOpen(ino)) return std::nullopt;
  std::optional<DirListings::Hit> hit = meta_->ListedAttr(ino);
  // A listing is used only while this mount changed nothing since its
  // fetch (a flush's commit is a change): as fresh as a reply now.
  if (hit) OverlayLocalSize(&hit->attr, StampBeforeCall());
  return hit;
}

void FileSystem::DropCachedData(InodeState& st) {
  for (const auto& [index, loc] : st.locations) {
    if (loc.chunk_id() != 0) cache_.DropChunk(loc.chunk_id());
  }
  st.locations.clear();
}

Result<pb::Attr> FileSystem::SetAttr(const Caller& c, const pb::SetAttrRequest& request) {
  auto st = State(request.ino());
  FreshenForCarry(c, request.ino(), *st);
  if (std::optional<pb::Attr> answered = CarriableSetAttr(c, request, *st)) {
    meta_->CarrySetAttr(c, request, *answered);
    return *answered;
  }
  // Buffered writes go first: a local filesystem applies them before a later
  // truncate or utimens, and their commit must not overwrite the new mtime.
  std::lock_guard<std::mutex> io_lock(st->io_mu);
  // The reply is the inode as meta left it, if no other mutation of this
  // client was sent alongside (see GetAttr).
  const uint64_t mutations_before = meta_->mutation_count();
  const uint64_t remote_before = meta_->remote_changes().Now();
  const uint64_t name_changes = meta_->name_change_count();
  Result<pb::Attr> set = common::UnavailableError("not sent");
  if (!meta_->Supports(pb::FEATURE_SET_ATTR_COMMIT)) {
    RETURN_IF_ERROR(FlushLocked(request.ino(), *st));
    set = meta_->SetAttr(c, request);
  } else {
    Result<std::optional<PendingCommit>> written = WriteOutLocked(request.ino(), *st);
    if (!written.ok() && written.status().code() == common::StatusCode::kFailedPrecondition) {
      RETURN_IF_ERROR(FlushLocked(request.ino(), *st));  // the chunk moved: see FlushLocked
      written = std::optional<PendingCommit>();
    }
    ASSIGN_OR_RETURN(std::optional<PendingCommit> pending, std::move(written));
    if (!pending) {
      set = meta_->SetAttr(c, request);
    } else {
      pb::SetAttrRequest combined = request;
      *combined.mutable_commit() = pending->request;
      set = meta_->SetAttr(c, combined);
      if (set.ok()) {
        RETURN_IF_ERROR(FinishFlushLocked(request.ino(), *st, *pending, set));
      } else {
        // Refused (EPERM...) or not reached: none of it applied. Commit the
        // data alone, as a flush would, then answer the setattr alone.
        Status alone = FinishFlushLocked(request.ino(), *st, *pending, meta_->CommitWrite(pending->request));
        if (alone.code() == common::StatusCode::kFailedPrecondition) alone = FlushLocked(request.ino(), *st);
        RETURN_IF_ERROR(alone);
        set = meta_->SetAttr(c, request);
      }
    }
  }
  ASSIGN_OR_RETURN(pb::Attr attr, std::move(set));
  if (request.valid() & pb::SET_SIZE) {
    st->leases.clear();  // meta may have cut or re-versioned chunks
    std::lock_guard<std::mutex> lock(st->mu);
    st->buffer.Truncate(attr.size());
    DropCachedData(*st);
  }
  std::lock_guard<std::mutex> lock(st->mu);
  // Its own reply, data as of now: the call ran under io_mu (no flush of
  // the file meanwhile but its own), and the kernel holds the inode's lock
  // across a setattr and any write(2) (mapped pages written back meanwhile
  // are buffered: LearnAttr keeps the larger size then).
  LearnAttr(*st, attr, AttrStamp{.name_changes = name_changes, .data_changes = data_changes_.load()});
  if (request.valid() & pb::SET_SIZE) NoteDataChange(*st);
  if (meta_->mutation_count() == mutations_before + 1) {
    st->attr_known_mono_ms = NowMonoMs();
    st->attr_known_mutations = mutations_before + 1;
    st->attr_known_remote = remote_before;
  }
  attr.set_size(st->size);
  return attr;
}

FileSystem::Opened FileSystem::NewHandle(uint64_t ino, uint64_t handle_id, uint32_t flags, const pb::Attr& attr,
                                         std::shared_ptr<InodeState>& st) {
  Opened opened;
  opened.handle = std::make_unique<FileHandle>();
  opened.handle->ino = ino;
  opened.handle->handle_id = handle_id;
  opened.handle->flags = flags;
  opened.attr = attr;
  opened.direct_io = (flags & O_APPEND) != 0;
  st = State(ino);
  if (handle_id != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    handles_[handle_id] = opened.handle.get();
  }
  return opened;
}

bool FileSystem::RecoverSession() {
  std::lock_guard<std::mutex> resume_lock(resume_mu_);
  Result<bool> alive = meta_->KeepAliveOnce();  // another caller may have resumed it
  if (!alive.ok()) return false;
  if (*alive) return true;
  std::vector<pb::ResumedHandle> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [handle_id, handle] : handles_) {
      pb::ResumedHandle& r = open.emplace_back();
      r.set_handle_id(handle_id);
      r.set_ino(handle->ino);
      r.set_flags(handle->flags);
    }
  }
  Result<std::vector<uint64_t>> lost = meta_->ResumeSession(open);
  if (!lost.ok()) {
    spdlog::error("meta ended this mount's session and it could not be resumed: {}", lost.status().ToString());
    return false;
  }
  size_t locks_lost = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t handle_id : *lost) {
      if (auto it = handles_.find(handle_id); it != handles_.end()) it->second->lost = true;
    }
    for (auto& [ino, st] : inodes_) {
      std::lock_guard<std::mutex> st_lock(st->mu);
      for (const auto& [handle, kind, owner] : st->lock_holders) handle->lost = true;
      locks_lost += st->lock_holders.size();
      st->lock_holders.clear();
    }
  }
  spdlog::warn("meta had ended this mount's session (no keep-alive within its lease); resumed it: {} open "
               "handles, {} of them lost (their file is gone), {} file locks lost (I/O through the descriptors "
               "that held them fails with EIO)",
               open.size(), lost->size(), locks_lost);
  return true;
}

bool FileSystem::HandleLost(uint64_t handle_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = handles_.find(handle_id);
  return it != handles_.end() && it->second->lost;
}

Status FileSystem::DropLostWrites(uint64_t ino, InodeState& st) {
  uint64_t writer;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.buffer.empty()) return Status::Ok();
    writer = st.writer_handle_id;
  }
  if (!HandleLost(writer)) return Status::Ok();
  std::lock_guard<std::mutex> lock(st.mu);
  spdlog::error("inode {}: {} buffered bytes dropped: written through a handle that lost its file locks or its "
                "file when meta ended this mount's session",
                ino, st.buffer.buffered_bytes());
  st.buffer.Clear();
  if (st.attr) st.size = st.attr->size();
  NoteDataChange(st);
  return LostHandleError();
}

Result<FileSystem::Opened> FileSystem::Open(const Caller& c, uint64_t ino, uint32_t flags) {
  const AttrStamp before = StampBeforeCall();
  ASSIGN_OR_RETURN(pb::OpenReply reply, WithSession([&] { return meta_->Open(c, ino, flags); }));
  if (reply.attr().nlink() == 0 && S_ISREG(reply.attr().mode()) && !HeldOpen(ino)) {
    // A file with no name that this mount does not hold open can only be
    // reached through a name the kernel cached before another mount
    // removed it: opening it would write into a file nobody sees (SQLite's
    // next journal, on its way to be deleted by another mount's commit).
    // Stale: the kernel looks the name up again. (This mount's own unlinked
    // files stay open-able, through /proc/PID/fd.)
    (void)meta_->Release(ino, reply.handle_id(), {});
    meta_->DropListingsOf(ino);  // or the kernel's second lookup would find it there again
    return common::Status(common::StatusCode::kStale, "the name this inode was opened by is gone");
  }
  std::shared_ptr<InodeState> st;
  Opened opened = NewHandle(ino, reply.handle_id(), flags, reply.attr(), st);
  std::lock_guard<std::mutex> lock(st->mu);
  ++st->open_handles;
  ++st->unclosed_handles;
  // A reply meta made before a flush of this mount's ended (another handle
  // of the file) says nothing new: the flush's own reply said more.
  const bool fresh = LearnAttr(*st, opened.attr, before);
  if (flags & O_TRUNC) NoteDataChange(*st);
  // Close-to-open: another mount may have changed the file since we last
  // looked, so forget where its chunks were; keep the kernel's page cache
  // only if size and mtime are what they were at our last open.
  bool dirty = !st->buffer.empty() || !st->in_flight.empty();
  opened.keep_cache = !dirty && fresh && st->opened_mtime_ns == opened.attr.mtime_ns() &&
                      st->opened_size == opened.attr.size();
  st->attr_known_mono_ms = NowMonoMs();  // see GetAttr
  st->attr_known_mutations = meta_->mutation_count();
  st->attr_known_remote = before.remote_changes;
  if (!dirty && fresh) {
    st->locations.clear();
    // Where chunk 0 is, as of this open (a small file's reader then asks
    // meta nothing more).
    if (reply.has_first_chunk() && reply.first_chunk().status().code() == 0 && reply.attr().size() > 0) {
      LearnLocations(*st, 0, 0, reply.first_chunk());
    }
  }
  if (fresh) {
    st->opened_mtime_ns = opened.attr.mtime_ns();
    st->opened_size = opened.attr.size();
  }
  // Whether or not the reply is fresh: a commit by another mount before it
  // changed the ctime it carries.
  st->cache_stamp = static_cast<uint64_t>(opened.attr.ctime_ns());
  opened.attr.set_size(st->size);
  return opened;
}

Result<FileSystem::Opened> FileSystem::Create(const Caller& c, uint64_t parent, const std::string& name,
                                              uint32_t mode, uint32_t flags, uint32_t umask) {
  const AttrStamp before = StampBeforeCall();
  ASSIGN_OR_RETURN(pb::CreateReply reply, WithSession([&] {
                     return meta_->Create(c, parent, name, mode, flags, umask, /*lease_first_chunk=*/Writable(flags));
                   }));
  std::shared_ptr<InodeState> st;
  Opened opened = NewHandle(reply.attr().ino(), reply.handle_id(), flags, reply.attr(), st);
  std::lock_guard<std::mutex> io_lock(st->io_mu);
  if (reply.lease().chunk_id() != 0) {
    LeaseState ls = NewLeaseState(reply.lease(), reply.handle_id());
    ls.unwritten = true;
    st->leases[0] = std::move(ls);
  }
  std::lock_guard<std::mutex> lock(st->mu);
  ++st->open_handles;
  ++st->unclosed_handles;
  const bool fresh = LearnAttr(*st, opened.attr, before);
  if (flags & O_TRUNC) NoteDataChange(*st);
  st->locations.clear();
  if ((flags & O_EXCL) || reply.has_lease()) {
    // The call made this inode (O_EXCL succeeded, or meta leased the chunk
    // of a new file): it has no xattrs but what it inherited from the
    // directory's default ACL, so the kernel's capability check before the
    // first write needs no round trip.
    st->no_stored_acl = !reply.inherited_acl();
    st->capability_checked_mono_ms = NowMonoMs();
    st->capability_status = common::Status(common::StatusCode::kNoAttribute, "no such attribute");
    st->capability_value.clear();
  }
  if (fresh) {
    st->opened_mtime_ns = opened.attr.mtime_ns();
    st->opened_size = opened.attr.size();
  }
  st->cache_stamp = static_cast<uint64_t>(opened.attr.ctime_ns());  // as Open does
  opened.attr.set_size(st->size);  // as Open does
  return opened;
}

Status FileSystem::Release(std::unique_ptr<FileHandle> handle) {
  uint64_t ino = handle->ino;
  if (handle->handle_id != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    handles_.erase(handle->handle_id);
  }
  Status flushed;
  std::vector<uint64_t> unwritten;
  if (Writable(handle->flags)) {
    flushed = Flush(ino);
    if (auto st = FindState(ino)) {
      std::lock_guard<std::mutex> io_lock(st->io_mu);
      for (const auto& [index, ls] : st->leases) {
        if (ls.unwritten && ls.handle_id == handle->handle_id) unwritten.push_back(ls.lease.chunk_id());
      }
    }
  }
  // Locks taken through the handle that close(2) did not end (OFD and
  // flock locks; fcntl locks of a process that still holds them) end with it.
  if (Status ended = EndHandleLocks(*handle); flushed.ok()) flushed = ended;
  Status released = meta_->Release(ino, handle->handle_id, unwritten);
  if (!released.ok()) spdlog::warn("release of inode {} handle {}: {}", ino, handle->handle_id, released.ToString());
  if (auto st = FindState(ino)) {
    if (Writable(handle->flags)) {
      std::lock_guard<std::mutex> io_lock(st->io_mu);
      st->leases.clear();  // leases were granted to this handle
    }
    std::lock_guard<std::mutex> lock(st->mu);
    --st->open_handles;
    if (!handle->closed.exchange(true)) --st->unclosed_handles;
    // The bytes of a small file meta keeps came with its location: with no
    // handle left to read them, they would only hold memory for as long as
    // the kernel remembers the inode (the next open fetches them anew).
    if (st->open_handles == 0) std::erase_if(st->locations, [](const auto& kv) { return kv.second.inlined(); });
  }
  MaybeDropState(ino);
  return flushed;
}

void FileSystem::Closed(FileHandle& handle) {
  if (handle.closed.exchange(true)) return;
  if (auto st = FindState(handle.ino)) {
    std::lock_guard<std::mutex> lock(st->mu);
    --st->unclosed_handles;
  }
}

bool FileSystem::MayLoseSuidSgid(uint64_t ino) {
  auto st = State(ino);
  std::lock_guard<std::mutex> lock(st->mu);
  return !st->attr || (S_ISREG(st->attr->mode()) && (st->attr->mode() & (S_ISUID | S_ISGID)) != 0);
}

Status FileSystem::DropSuidSgidForWrite(const Caller& c, FileHandle& handle) {
  if (handle.lost) return LostHandleError();
  pb::SetAttrRequest request;
  request.set_ino(handle.ino);
  request.set_valid(pb::SET_KILL_SUIDGID);
  request.set_handle_id(handle.handle_id);
  return SetAttr(c, request).status();
}

Status FileSystem::Write(FileHandle& handle, uint64_t offset, std::string_view data) {
  return WriteAt(handle, offset, data, /*append=*/(handle.flags & O_APPEND) != 0);
}

// Where an O_APPEND write goes (see Opened::direct_io): the end of file this
// mount knows, or, while a run of appends waits to be flushed, the end of
// that run: the flush moves the run whole to where the file really ends
// (PlaceAppends). The size this mount knows may have grown past the run
// meanwhile (another mount's commit, learned from an attribute reply); an
// append put there would leave the run and land, unmoved, on bytes ours or
// theirs.
uint64_t FileSystem::AppendOffset(const InodeState& st) {
  if (st.buffer.appends_only()) return st.buffer.end_offset();
  if (st.buffer.empty() && st.in_flight.appends_only()) return st.in_flight.end_offset();
  return st.size;
}

Status FileSystem::WriteAt(FileHandle& handle, uint64_t offset, std::string_view data, bool append) {
  if (handle.lost) return LostHandleError();
  auto st = State(handle.ino);
  std::unique_lock<std::mutex> lock(st->mu);
  // Backpressure: with max_dirty_bytes pending, wait for the running flush.
  // With none running, the last one failed (chunkservers out of reach) and
  // kept its data: flush here, so the writer waits and gets the error
  // rather than buffering without bound.
  while (st->buffer.buffered_bytes() + st->in_flight.buffered_bytes() >= options_.max_dirty_bytes) {
    if (st->background_flush) {
      st->flushed_cv.wait(lock);
      continue;
    }
    lock.unlock();
    RETURN_IF_ERROR(Flush(handle.ino));
    lock.lock();
  }
  if (append) offset = AppendOffset(*st);
  if (offset + data.size() > common::kMaxFileSizeBytes) {
    return common::OutOfRangeError("write past the largest file size");
  }
  if (options_.flush_after_ms > 0 && st->dirty_since_mono_ms < 0) {
    st->dirty_since_mono_ms = NowMonoMs();
    std::lock_guard<std::mutex> dirty_lock(dirty_mu_);
    dirty_[handle.ino] = st;  // replaces a state of the inode that was freed
  }
  st->buffer.Write(offset, data, append);
  st->writer_handle_id = handle.handle_id;
  st->size = std::max(st->size, offset + data.size());
  NoteDataChange(*st);
  if (st->buffer.buffered_bytes() >= options_.flush_threshold_bytes) StartBackgroundFlush(handle.ino, st);
  return Status::Ok();
}

void FileSystem::RunInBackground(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    ++background_tasks_;
  }
  std::thread([this, task = std::move(task)] {
    task();
    std::lock_guard<std::mutex> lock(tasks_mu_);
    --background_tasks_;
    background_done_cv_.notify_all();
  }).detach();
}

void FileSystem::StartBackgroundFlush(uint64_t ino, const std::shared_ptr<InodeState>& st) {
  if (st->background_flush) return;
  st->background_flush = true;
  RunInBackground([this, ino, st] {
    {
      std::lock_guard<std::mutex> io_lock(st->io_mu);
      // A failure keeps the data buffered; fsync/close retry and report it.
      (void)FlushLocked(ino, *st);
    }
    {
      std::lock_guard<std::mutex> lock(st->mu);
      st->background_flush = false;
    }
    st->flushed_cv.notify_all();
  });
}

void FileSystem::FlushAgedLoop() {
  const auto tick = std::chrono::milliseconds(std::clamp<int64_t>(options_.flush_after_ms / 2, 20, 1'000));
  std::unique_lock<std::mutex> lock(dirty_mu_);
  while (!dirty_cv_.wait_for(lock, tick, [this] { return stopping_; })) {
    const std::vector<std::pair<uint64_t, std::weak_ptr<InodeState>>> files(dirty_.begin(), dirty_.end());
    lock.unlock();  // InodeState::mu comes first
    const int64_t now = NowMonoMs();
    for (const auto& [ino, weak] : files) {
      std::shared_ptr<InodeState> st = weak.lock();
      if (st == nullptr) {  // freed; a new state of the inode may have taken the slot since
        std::lock_guard<std::mutex> dirty_lock(dirty_mu_);
        if (auto it = dirty_.find(ino); it != dirty_.end() && it->second.expired()) dirty_.erase(it);
        continue;
      }
      std::lock_guard<std::mutex> st_lock(st->mu);
      if (st->buffer.empty() && st->in_flight.empty() && !st->background_flush) {
        st->dirty_since_mono_ms = -1;  // the next write puts it back
        std::lock_guard<std::mutex> dirty_lock(dirty_mu_);
        if (auto it = dirty_.find(ino); it != dirty_.end() && it->second.lock() == st) dirty_.erase(it);
      } else if (!st->buffer.empty() && now - st->dirty_since_mono_ms >= options_.flush_after_ms) {
        // Counted anew from now: a flush that fails (its data stays
        // buffered, fsync and close report it) is tried again a period on.
        st->dirty_since_mono_ms = now;
        StartBackgroundFlush(ino, st);
      }
    }
    lock.lock();
  }
}

void FileSystem::StartPrefetch(uint64_t ino, const std::shared_ptr<InodeState>& st, uint64_t from, uint64_t to) {
  st->prefetching.emplace_back(from, to);
  RunInBackground([this, ino, st, from, to] {
    auto fetch = [&] {
      if (!EnsureLocations(ino, *st, from, to - from).ok()) return;
      std::string scratch;
      for (const common::ChunkSlice& slice : common::SplitByChunk(from, to - from)) {
        pb::ChunkLocation loc;
        uint64_t stamp;
        {
          std::lock_guard<std::mutex> lock(st->mu);
          loc = st->locations[slice.chunk_index];
          stamp = st->cache_stamp;
        }
        if (loc.chunk_id() == 0) continue;
        scratch.assign(slice.length, '\0');
        // Errors are the foreground reader's to meet and report.
        const Status read = ReadChunkRange(loc, stamp, slice.offset_in_chunk, slice.length, /*fetch_to=*/0,
                                           /*exact=*/false, scratch.data());
        if (!read.ok()) return;
      }
    };
    fetch();
    std::lock_guard<std::mutex> lock(st->mu);
    std::erase(st->prefetching, std::make_pair(from, to));
    st->prefetch_cv.notify_all();
  });
}

void FileSystem::AwaitPrefetch(InodeState& st, uint64_t from, uint64_t to) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.io_timeout_ms);
  std::unique_lock<std::mutex> lock(st.mu);
  st.prefetch_cv.wait_until(lock, deadline, [&] {
    return std::none_of(st.prefetching.begin(), st.prefetching.end(),
                        [&](const auto& r) { return r.first < to && from < r.second; });
  });
}

Status FileSystem::Flush(uint64_t ino) {
  auto st = FindState(ino);
  if (st == nullptr) return Status::Ok();
  std::lock_guard<std::mutex> io_lock(st->io_mu);
  return FlushLocked(ino, *st);
}

Status FileSystem::Fsync(uint64_t ino) {
  RETURN_IF_ERROR(Flush(ino));
  return meta_->SettleCarried(ino);
}

FileSystem::LeaseState FileSystem::NewLeaseState(pb::ChunkLease lease, uint64_t handle_id) {
  LeaseState state;
  state.lease = std::move(lease);
  state.length = state.lease.length();
  state.expires_mono_ms = NowMonoMs() + (state.lease.lease_expires_unix_ms() - NowUnixMs());
  state.handle_id = handle_id;
  if (state.lease.has_file_size()) state.file_size = state.lease.file_size();
  if (state.lease.base_inlined()) {
    state.in_meta = state.lease.base_data();
  } else if (state.lease.base_version() == 0) {
    state.in_meta = std::string();  // a new chunk
  }
  return state;
}

Result<FileSystem::LeaseState*> FileSystem::LeaseFor(uint64_t ino, uint64_t handle_id, uint64_t chunk_index,
                                                     InodeState& st) {
  auto it = st.leases.find(chunk_index);
  if (it != st.leases.end() && it->second.expires_mono_ms - NowMonoMs() > kLeaseMarginMs) return &it->second;
  Result<pb::ChunkLease> lease = meta_->LeaseChunk(ino, handle_id, chunk_index);
  for (int64_t waited = 0, pause = 5; !lease.ok() && lease.status().code() == common::StatusCode::kAborted &&
                                      waited < kLeaseBusyWaitMs;
       waited += pause, pause = std::min(pause * 2, kLeaseBusyPauseMs)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
    lease = meta_->LeaseChunk(ino, handle_id, chunk_index);
  }
  if (!lease.ok()) return lease.status();
  LeaseState state = NewLeaseState(std::move(lease).value(), handle_id);
  if (it != st.leases.end() && it->second.lease.version() == state.lease.version()) {
    // A renewal of the version we write: what we sent under it stands.
    state.in_meta = it->second.in_meta;
  }
  if (state.lease.base_version() != 0) {
    // Meta records a truncate inside a chunk as a shorter length only; the
    // stored base may hold older bytes past it. Build the new version cut to
    // the recorded length first, so a later write past the end leaves zeros
    // in the gap, not those bytes.
    ASSIGN_OR_RETURN(ChunkClient::Written cut, chunks_.Write(state.lease, {}, /*durable=*/false, state.length));
    const std::vector<uint64_t>& acked = cut.acked;
    auto* replicas = state.lease.mutable_replicas();
    replicas->erase(std::remove_if(replicas->begin(), replicas->end(),
                                   [&](const pb::ReplicaLocation& r) {
                                     return std::find(acked.begin(), acked.end(), r.node_id()) == acked.end();
                                   }),
                    replicas->end());
  }
  st.leases[chunk_index] = std::move(state);
  return &st.leases[chunk_index];
}

Result<std::optional<FileSystem::PendingCommit>> FileSystem::WriteOutLocked(uint64_t ino, InodeState& st) {
  PendingCommit pending;
  uint64_t handle_id;
  bool appends;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.buffer.empty()) return std::optional<PendingCommit>();
    handle_id = st.writer_handle_id;
    std::swap(st.buffer, st.in_flight);  // in_flight is empty: only one flush runs (io_mu)
    pending.request.set_new_size(st.size);
    appends = st.in_flight.appends_only();
  }
  if (appends) {
    if (Status placed = PlaceAppends(ino, handle_id, st, pending); !placed.ok()) {
      RETURN_IF_ERROR(FinishFlushLocked(ino, st, pending, placed));
    }
  }

  // Group the buffered ranges by chunk: one stream per replica per chunk,
  // made durable once, however scattered the writes were.
  std::map<uint64_t, std::vector<ChunkClient::Range>> by_chunk;
  // in_flight changes only under io_mu, which we hold: reading it unlocked is safe.
  for (const auto& [offset, bytes] : st.in_flight.extents()) {
    for (const common::ChunkSlice& slice : common::SplitByChunk(offset, bytes.size())) {
      by_chunk[slice.chunk_index].push_back(
          {slice.offset_in_chunk, std::string_view(bytes.data() + (slice.file_offset - offset), slice.length)});
    }
  }

  std::map<uint64_t, pb::ChunkCommit> commits;
  Status status;
  for (const auto& [chunk_index, ranges] : by_chunk) {
    auto lease = LeaseFor(ino, handle_id, chunk_index, st);
    if (!lease.ok()) {
      status = lease.status();
      break;
    }
    LeaseState& ls = **lease;
    ls.file_size.reset();  // our commit moves the end: what meta said at the grant is past
    if (std::optional<pb::ChunkCommit> kept = InlineCommit(chunk_index, ranges, pending.request.new_size(), ls)) {
      commits[chunk_index] = *kept;
      pb::ChunkLocation& loc = pending.new_locations[chunk_index];
      loc.set_chunk_index(chunk_index);
      loc.set_chunk_id(kept->chunk_id());
      loc.set_version(kept->version());
      loc.set_length(kept->length());
      loc.set_inlined(true);
      loc.set_data(kept->data());
      continue;
    }
    // Bytes meta kept go to the chunkservers with the new ones (first: the
    // new ones overwrite them; where they overlap they are the same).
    std::string base;
    std::vector<ChunkClient::Range> with_base;
    if (ls.in_meta && !ls.in_meta->empty()) {
      base = std::move(*ls.in_meta);
      for (const ChunkClient::Range& r : ranges) {
        if (r.offset_in_chunk < base.size()) {
          const size_t n = std::min<size_t>(r.data.size(), base.size() - r.offset_in_chunk);
          std::memcpy(base.data() + r.offset_in_chunk, r.data.data(), n);
        }
      }
      with_base.push_back({0, base});
      with_base.insert(with_base.end(), ranges.begin(), ranges.end());
      ls.length = std::max<uint64_t>(ls.length, base.size());
    }
    ls.in_meta.reset();
    ls.unwritten = false;  // from here a chunkserver may hold bytes of this version
    auto written = chunks_.Write(ls.lease, with_base.empty() ? ranges : with_base, /*durable=*/true);
    if (!written.ok()) {
      status = written.status();
      st.leases.erase(chunk_index);
      break;
    }
    const std::vector<uint64_t>& acked = written->acked;
    for (const ChunkClient::Range& r : ranges) ls.length = std::max(ls.length, r.offset_in_chunk + r.data.size());
    // A replica that missed a write under this lease must not get later
    // writes of the same version: it would hold a version with a gap.
    auto* replicas = ls.lease.mutable_replicas();
    replicas->erase(std::remove_if(replicas->begin(), replicas->end(),
                                   [&](const pb::ReplicaLocation& r) {
                                     return std::find(acked.begin(), acked.end(), r.node_id()) == acked.end();
                                   }),
                    replicas->end());
    cache_.DropChunk(ls.lease.chunk_id());

    pb::ChunkCommit& commit = commits[chunk_index];
    commit.set_chunk_index(chunk_index);
    commit.set_chunk_id(ls.lease.chunk_id());
    commit.set_version(ls.lease.version());
    commit.set_length(ls.length);
    for (uint64_t node : acked) commit.add_replica_node_ids(node);
    // For the file's blocks (`du`): a sparse chunk takes less than its length.
    if (written->stored_bytes) commit.set_stored_bytes(*written->stored_bytes);

    pb::ChunkLocation& loc = pending.new_locations[chunk_index];
    loc.set_chunk_index(chunk_index);
    loc.set_chunk_id(ls.lease.chunk_id());
    loc.set_version(ls.lease.version());
    loc.set_length(ls.length);
    *loc.mutable_replicas() = ls.lease.replicas();
  }
  if (!status.ok()) {
    RETURN_IF_ERROR(FinishFlushLocked(ino, st, pending, status));
  }
  pending.request.set_ino(ino);
  pending.request.set_handle_id(handle_id);
  for (auto& [index, commit] : commits) *pending.request.add_chunks() = commit;
  return std::optional<PendingCommit>(std::move(pending));
}

// O_APPEND writes from several mounts must not land on each other: each
// mount puts an append where it takes the end of file to be (meta's size at
// open, or at its last flush, plus its own appends), which another mount's
// appends may have passed since. So a flush that holds nothing but appends
// asks where the file ends, with the lease of the chunk it ends in: meta
// grants a chunk to one writer at a time and says the file's size then
// (ChunkLease.file_size), and refuses the commit should another writer take
// the chunk before it (FlushLocked then writes again under a new lease, and
// comes back here).
// A lease this mount still holds from an earlier flush needs no asking:
// nobody wrote the chunk since. The cost: none, unless the file's end moved
// to another chunk (a lease more) or the lease was new anyway.
Status FileSystem::PlaceAppends(uint64_t ino, uint64_t handle_id, InodeState& st, PendingCommit& pending) {
  uint64_t from;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    from = st.in_flight.extents().begin()->first;
  }
  for (int tries = 0; tries < kPlaceAppendTries; ++tries) {
    const uint64_t chunk = common::ChunkIndexOf(from);
    ASSIGN_OR_RETURN(LeaseState * ls, LeaseFor(ino, handle_id, chunk, st));
    if (!ls->file_size) return Status::Ok();
    const uint64_t end = *std::exchange(ls->file_size, std::nullopt);
    if (end != from) {
      std::lock_guard<std::mutex> lock(st.mu);
      const uint64_t bytes = st.in_flight.buffered_bytes();
      // Appends made while this flush runs follow the run it moves.
      if (st.buffer.appends_only() && st.buffer.extents().begin()->first == from + bytes) {
        st.buffer.MoveTo(end + bytes);
      }
      st.in_flight.MoveTo(end);
      st.size = std::max(st.in_flight.end_offset(), st.buffer.end_offset());
      pending.request.set_new_size(end + bytes);
      NoteDataChange(st);
      spdlog::debug("inode {}: {} appended bytes moved from offset {} to the end of file, {}", ino, bytes, from, end);
      appends_moved_.fetch_add(1, std::memory_order_relaxed);
      from = end;
    }
    if (common::ChunkIndexOf(end) == chunk) return Status::Ok();
  }
  // The end kept moving to other chunks: placed where it was last seen, the
  // run could land on appends made since. FlushLocked tries again.
  return common::Status(common::StatusCode::kFailedPrecondition, "the end of file kept moving between chunks");
}

std::optional<pb::ChunkCommit> FileSystem::InlineCommit(uint64_t chunk_index,
                                                        const std::vector<ChunkClient::Range>& ranges,
                                                        uint64_t file_size, LeaseState& ls) {
  const uint64_t limit = meta_->inline_max_bytes();
  if (chunk_index != 0 || !ls.in_meta || file_size > limit) return std::nullopt;
  std::string content = *ls.in_meta;
  for (const ChunkClient::Range& r : ranges) {
    if (r.offset_in_chunk + r.data.size() > limit) return std::nullopt;
    if (content.size() < r.offset_in_chunk + r.data.size()) content.resize(r.offset_in_chunk + r.data.size());
    std::memcpy(content.data() + r.offset_in_chunk, r.data.data(), r.data.size());
  }
  pb::ChunkCommit commit;
  commit.set_chunk_index(0);
  commit.set_chunk_id(ls.lease.chunk_id());
  commit.set_version(ls.lease.version());
  commit.set_length(content.size());
  commit.set_inlined(true);
  commit.set_data(content);
  ls.length = content.size();
  ls.in_meta = std::move(content);
  return commit;
}

Status FileSystem::FinishFlushLocked(uint64_t ino, InodeState& st, const PendingCommit& pending,
                                     const Result<pb::Attr>& committed) {
  std::lock_guard<std::mutex> lock(st.mu);
  NoteDataChange(st);
  if (!committed.ok()) {
    // Keep the data: put it back under anything written since, so a retry
    // (the next flush, fsync or close) sends it again.
    WriteBuffer merged = std::move(st.in_flight);
    const bool appends = st.buffer.appends_only();  // then they stay one run with the run put back
    for (const auto& [offset, bytes] : st.buffer.extents()) merged.Write(offset, bytes, appends);
    st.buffer = std::move(merged);
    st.in_flight.Clear();
    // A chunk was re-leased to another writer (ours expired, or meta ended
    // it for another mount's lock holder): the next try needs new leases.
    if (committed.status().code() == common::StatusCode::kFailedPrecondition) {
      st.leases.clear();
      spdlog::info("flush of inode {}: {}; its chunks moved, writing again under new leases", ino,
                   committed.status().ToString());
    } else {
      spdlog::error("flush of inode {} failed: {}", ino, committed.status().ToString());
    }
    return committed.status();
  }
  const pb::Attr& attr = *committed;
  st.in_flight.Clear();
  for (const auto& [index, loc] : pending.new_locations) st.locations[index] = loc;
  st.size = std::max(st.size, attr.size());
  st.opened_mtime_ns = attr.mtime_ns();  // our own change: the kernel's cache of it is valid
  st.opened_size = attr.size();
  return Status::Ok();
}

Status FileSystem::FlushLocked(uint64_t ino, InodeState& st) {
  // A lease this mount cached may have gone to another mount meanwhile (a
  // lock holder there took it, or the file was cut): the chunkservers refuse
  // the old version, or meta the commit, with FAILED_PRECONDITION. The data
  // is still buffered and the leases forgotten, so write it again under new
  // ones; a few tries, since another writer may keep taking the chunk.
  // Meta refuses them so too when it ended this mount's session, handles
  // and all: a KeepAlive tells, and RecoverSession takes it back first.
  Status status;
  for (int attempt = 0; attempt < kFlushAttempts; ++attempt) {
    if (attempt > 0) (void)RecoverSession();
    RETURN_IF_ERROR(DropLostWrites(ino, st));
    Result<std::optional<PendingCommit>> pending = WriteOutLocked(ino, st);
    if (pending.ok() && !*pending) return Status::Ok();
    status = pending.ok() ? FinishFlushLocked(ino, st, **pending, meta_->CommitWrite((*pending)->request))
                          : pending.status();
    if (status.code() != common::StatusCode::kFailedPrecondition) return status;
  }
  spdlog::error("flush of inode {} failed {} times: {}", ino, kFlushAttempts, status.ToString());
  return status;
}

Status FileSystem::EnsureLocations(uint64_t ino, InodeState& st, uint64_t offset, uint64_t length) {
  uint64_t first = common::ChunkIndexOf(offset);
  uint64_t last = common::ChunkIndexOf(offset + std::max<uint64_t>(length, 1) - 1);
  {
    std::lock_guard<std::mutex> lock(st.mu);
    bool all = true;
    for (uint64_t i = first; i <= last && all; ++i) all = st.locations.contains(i);
    if (all) return Status::Ok();
  }
  uint64_t fetch = std::max(length, options_.readahead_bytes);
  ASSIGN_OR_RETURN(pb::GetChunkLocationsReply reply, meta_->GetChunkLocations(ino, offset, fetch));
  std::lock_guard<std::mutex> lock(st.mu);
  LearnLocations(st, first, common::ChunkIndexOf(offset + fetch - 1), reply);
  return Status::Ok();
}

void FileSystem::LearnLocations(InodeState& st, uint64_t first, uint64_t last,
                                const pb::GetChunkLocationsReply& reply) {
  for (uint64_t i = first; i <= last; ++i) {
    if (!st.locations.contains(i)) {
      pb::ChunkLocation hole;  // chunk_id 0: reads as zeros unless meta names it below
      hole.set_chunk_index(i);
      st.locations[i] = hole;
    }
  }
  for (const pb::ChunkLocation& loc : reply.chunks()) st.locations[loc.chunk_index()] = loc;
}

Status FileSystem::ReadChunkRange(const pb::ChunkLocation& loc, uint64_t stamp, uint64_t offset_in_chunk,
                                  uint64_t length, uint64_t fetch_to, bool exact, char* out) {
  uint64_t stored_end = std::min(loc.length(), offset_in_chunk + length);
  if (offset_in_chunk >= stored_end) return Status::Ok();  // past the stored bytes: zeros
  if (loc.inlined()) {  // meta sent the bytes with the location
    stored_end = std::min<uint64_t>(stored_end, loc.data().size());
    if (offset_in_chunk < stored_end) {
      std::memcpy(out, loc.data().data() + offset_in_chunk, stored_end - offset_in_chunk);
    }
    return Status::Ok();
  }
  common::BlockRange need = common::BlocksTouched(offset_in_chunk, stored_end - offset_in_chunk);
  uint64_t block_limit = common::BlockCount(loc.length());
  uint64_t ahead_limit = std::min(block_limit, common::BlockCount(std::min(fetch_to, loc.length())));

  auto copy_block = [&](uint64_t index, const std::string& block) {
    uint64_t b_start = index * common::kBlockSizeBytes;
    uint64_t from = std::max(b_start, offset_in_chunk);
    uint64_t to = std::min(b_start + block.size(), stored_end);
    if (from < to) std::memcpy(out + (from - offset_in_chunk), block.data() + (from - b_start), to - from);
  };

  uint64_t b = need.first;
  uint64_t need_end = need.first + need.count;
  while (b < need_end) {
    if (Block cached = cache_.Get({loc.chunk_id(), loc.version(), b, stamp})) {
      copy_block(b, *cached);
      ++b;
      continue;
    }
    // A run of missing blocks; when it reaches the end of what was asked,
    // extend it by the readahead window.
    uint64_t run_end = b + 1;
    while (run_end < need_end && !cache_.Get({loc.chunk_id(), loc.version(), run_end, stamp})) ++run_end;
    if (exact) {
      // Only the bytes asked for, straight to the reader: nothing cached.
      const uint64_t from = std::max(b * common::kBlockSizeBytes, offset_in_chunk);
      const uint64_t to = std::min(run_end * common::kBlockSizeBytes, stored_end);
      ASSIGN_OR_RETURN(std::string bytes, chunks_.ReadRange(loc, from, to - from));
      if (bytes.size() != to - from) {
        return common::DataLossError("chunk " + std::to_string(loc.chunk_id()) + " is shorter than meta says");
      }
      std::memcpy(out + (from - offset_in_chunk), bytes.data(), bytes.size());
      b = run_end;
      continue;
    }
    if (run_end == need_end) run_end = std::max(run_end, ahead_limit);
    ASSIGN_OR_RETURN(std::vector<std::string> blocks, chunks_.ReadBlocks(loc, b, run_end - b));
    if (blocks.size() < std::min(need_end, block_limit) - b && blocks.size() < run_end - b) {
      return common::DataLossError("chunk " + std::to_string(loc.chunk_id()) + " is shorter than meta says");
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto block = std::make_shared<const std::string>(std::move(blocks[i]));
      if (b + i < need_end) copy_block(b + i, *block);
      cache_.Put({loc.chunk_id(), loc.version(), b + i, stamp}, std::move(block));
    }
    b = std::max(b + blocks.size(), b + 1);
  }
  return Status::Ok();
}

Status FileSystem::Read(FileHandle& handle, uint64_t offset, uint64_t size, std::string* out) {
  if (handle.lost) return LostHandleError();
  auto st = State(handle.ino);
  uint64_t file_size;
  bool known;
  {
    std::lock_guard<std::mutex> lock(st->mu);
    file_size = st->size;
    known = st->size_known;
  }
  if (!known) {
    ASSIGN_OR_RETURN(pb::Attr attr, GetAttr(Caller{}, handle.ino));
    file_size = attr.size();
  }
  out->clear();
  if (offset >= file_size || size == 0) return Status::Ok();
  uint64_t end = std::min(offset + size, file_size);
  out->assign(end - offset, '\0');
  const uint64_t previous_end = handle.next_sequential_offset;
  bool sequential = offset == previous_end && offset != 0;
  // A reader jumping about a file larger than the cache gets the bytes it
  // asked for, not their whole 64 KiB blocks: in a file that size a block
  // rarely serves a second read before it is evicted, and the kernel keeps
  // the pages it got. A miss then sends ~4 KiB instead of 64 (README,
  // "Measured"). A read near the last one (a backward scan, strides, a
  // B-tree's neighbouring pages) still fetches and caches whole blocks,
  // which serve the reads after it.
  const uint64_t distance = offset > previous_end ? offset - previous_end : previous_end - offset;
  const bool exact = !sequential && file_size > cache_.capacity_bytes() && distance > 2 * common::kBlockSizeBytes;
  // What readahead is fetching now lands in the cache: fetching it here too
  // would read it twice (a third of a cold sequential read did).
  if (sequential) AwaitPrefetch(*st, offset, end);

  for (int attempt = 0; attempt < 2; ++attempt) {
    RETURN_IF_ERROR(EnsureLocations(handle.ino, *st, offset, end - offset));
    Status status;
    for (const common::ChunkSlice& slice : common::SplitByChunk(offset, end - offset)) {
      pb::ChunkLocation loc;
      uint64_t stamp;
      {
        std::lock_guard<std::mutex> lock(st->mu);
        loc = st->locations[slice.chunk_index];
        stamp = st->cache_stamp;
      }
      if (loc.chunk_id() == 0) continue;  // a hole
      uint64_t fetch_to = slice.offset_in_chunk + slice.length + (sequential ? options_.readahead_bytes : 0);
      status = ReadChunkRange(loc, stamp, slice.offset_in_chunk, slice.length, fetch_to, exact,
                              out->data() + (slice.file_offset - offset));
      if (!status.ok()) break;
    }
    if (status.ok()) break;
    // A version we were told about may be gone (another mount wrote the file):
    // ask meta again once before failing. A chunkserver's "no such chunk" or
    // "stale version" is then EIO for the reader, not ENOENT or EINVAL.
    const bool moved = status.code() == common::StatusCode::kNotFound ||
                       status.code() == common::StatusCode::kFailedPrecondition;
    if (moved && attempt == 1) return common::Status(common::StatusCode::kInternal, status.message());
    if (!moved) return status;
    std::lock_guard<std::mutex> lock(st->mu);
    st->locations.clear();
  }
  {
    std::lock_guard<std::mutex> lock(st->mu);
    st->in_flight.Overlay(offset, *out);
    st->buffer.Overlay(offset, *out);
  }
  handle.next_sequential_offset = end;
  if (sequential) {
    // Keep one window ahead of a sequential reader: what this read fetched
    // covers [end, end + readahead); fetch the window after it now, in
    // pieces of at least half a window (one thread and one stream each;
    // a piece per kernel read, ~3 blocks, cost more than the data).
    uint64_t ahead_from = end + options_.readahead_bytes;
    uint64_t ahead_to = std::min(ahead_from + options_.readahead_bytes, file_size);
    std::lock_guard<std::mutex> lock(st->mu);
    const bool worth_it = ahead_to >= st->prefetched_until + options_.readahead_bytes / 2 || ahead_to == file_size;
    if (ahead_from < ahead_to && st->prefetched_until < ahead_to && worth_it) {
      StartPrefetch(handle.ino, st, std::max(ahead_from, st->prefetched_until), ahead_to);
      st->prefetched_until = ahead_to;
    }
  }
  return Status::Ok();
}

Result<uint64_t> FileSystem::SeekDataOrHole(FileHandle& handle, uint64_t offset, bool data) {
  RETURN_IF_ERROR(Flush(handle.ino));
  ASSIGN_OR_RETURN(pb::Attr attr, GetAttr(Caller{}, handle.ino));
  uint64_t size = attr.size();
  if (offset >= size) return common::NotFoundError("offset at or past the end of the file");  // ENXIO
  ASSIGN_OR_RETURN(pb::GetChunkLocationsReply reply, meta_->GetChunkLocations(handle.ino, 0, size));
  std::map<uint64_t, pb::ChunkLocation> chunks;
  for (const auto& loc : reply.chunks()) chunks[loc.chunk_index()] = loc;
  auto stored = [&](uint64_t pos) {  // is the byte at pos stored (data) rather than a hole?
    auto it = chunks.find(common::ChunkIndexOf(pos));
    return it != chunks.end() && it->second.chunk_id() != 0 && common::OffsetInChunk(pos) < it->second.length();
  };
  uint64_t pos = offset;
  while (pos < size) {
    if (stored(pos) == data) return pos;
    // Jump to the next boundary where the answer can change.
    auto it = chunks.find(common::ChunkIndexOf(pos));
    uint64_t chunk_start = common::ChunkStartOffset(common::ChunkIndexOf(pos));
    uint64_t next = chunk_start + common::kChunkSizeBytes;
    if (it != chunks.end() && it->second.chunk_id() != 0 && common::OffsetInChunk(pos) < it->second.length()) {
      next = chunk_start + it->second.length();
    }
    pos = std::max(next, pos + 1);
  }
  if (data) return common::NotFoundError("no data after the offset");  // ENXIO
  return size;  // the end of the file counts as a hole
}

Status FileSystem::DropCapabilityForWrite(const Caller& c, uint64_t ino) {
  Result<std::string> caps = GetXattr(c, ino, common::kCapabilityXattr);
  if (!caps.ok()) return caps.status().code() == common::StatusCode::kNoAttribute ? Status::Ok() : caps.status();
  Status s = RemoveXattr(c, ino, common::kCapabilityXattr);
  return s.code() == common::StatusCode::kNoAttribute ? Status::Ok() : s;
}

Result<std::string> FileSystem::GetXattr(const Caller& c, uint64_t ino, const std::string& name) {
  if (name != common::kCapabilityXattr) return meta_->GetXattr(c, ino, name);
  auto st = State(ino);
  {
    std::lock_guard<std::mutex> lock(st->mu);
    if (st->capability_checked_mono_ms >= 0 &&
        NowMonoMs() - st->capability_checked_mono_ms < options_.capability_cache_ms) {
      if (!st->capability_status.ok()) return st->capability_status;
      return st->capability_value;
    }
  }
  auto value = meta_->GetXattr(c, ino, name);
  std::lock_guard<std::mutex> lock(st->mu);
  // Cache definite answers only (present, or no such attribute), not failures.
  if (value.ok() || value.status().code() == common::StatusCode::kNoAttribute) {
    st->capability_checked_mono_ms = NowMonoMs();
    st->capability_status = value.ok() ? Status::Ok() : value.status();
    st->capability_value = value.ok() ? *value : "";
  }
  return value;
}

Status FileSystem::SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                            uint32_t flags) {
  if (name == common::kAccessAclXattr) {
    auto st = State(ino);
    if (CarryAccessAcl(c, ino, value, *st)) return Status::Ok();
    {
      std::lock_guard<std::mutex> lock(st->mu);
      st->no_stored_acl = false;  // meta may keep this one
    }
  }
  Status s = meta_->SetXattr(c, ino, name, value, flags);
  if (name == common::kCapabilityXattr) {
    auto st = State(ino);
    std::lock_guard<std::mutex> lock(st->mu);
    st->capability_checked_mono_ms = -1;
  }
  return s;
}

bool FileSystem::CarryAccessAcl(const Caller& c, uint64_t ino, const std::string& value, InodeState& st) {
  common::Result<std::vector<common::AclEntry>> entries = common::ParseAcl(value);
  if (!entries.ok() || entries->empty()) return false;
  const common::AclMode acl = common::ModeOfAcl(*entries);
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (!acl.equivalent || !st.no_stored_acl) return false;
  }
  // An ACL that says no more than the mode bits is a chmod of them to meta
  // (meta/state_machine/ops/xattr.cc: root keeps setgid, nothing is stored).
  pb::SetAttrRequest request;
  request.set_ino(ino);
  request.set_valid(pb::SET_MODE);
  request.set_mode(acl.perm_bits);
  FreshenForCarry(c, ino, st);
  std::optional<pb::Attr> answered = CarriableSetAttr(c, request, st, /*perm_bits_only=*/true);
  if (!answered) return false;
  request.set_mode(answered->mode() & 07777);  // meta's chmod sets all 07777 bits
  meta_->CarrySetAttr(c, request, *answered);
  return true;
}

Status FileSystem::RemoveXattr(const Caller& c, uint64_t ino, const std::string& name) {
  Status s = meta_->RemoveXattr(c, ino, name);
  if (name == common::kCapabilityXattr) {
    auto st = State(ino);
    std::lock_guard<std::mutex> lock(st->mu);
    st->capability_checked_mono_ms = -1;
  }
  return s;
}

Result<pb::Attr> FileSystem::Fallocate(const Caller& c, FileHandle& handle, uint32_t mode, uint64_t offset,
                                       uint64_t length) {
  if (handle.lost) return LostHandleError();
  auto st = State(handle.ino);
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    // Meta turns whole chunks into holes; the partial chunks at either end
    // are zeroed through the ordinary write path (they read as zeros, as a
    // punched range must, but keep their space) - only where the chunk
    // holds bytes. Past a chunk's stored length, and in a chunk never
    // written, the file reads as zeros already, and zeros written there
    // would take the space the caller meant to free: cp --sparse=always
    // punches the tail of each copy it makes, and its copies came out
    // dense. The flush first makes the stored lengths say where bytes are.
    {
      std::lock_guard<std::mutex> io_lock(st->io_mu);
      RETURN_IF_ERROR(FlushLocked(handle.ino, *st));
    }
    uint64_t size;
    {
      std::lock_guard<std::mutex> lock(st->mu);
      size = st->size;
    }
    uint64_t end = std::min(offset + length, size);
    uint64_t inner_start = std::min(end, (offset + common::kChunkSizeBytes - 1) / common::kChunkSizeBytes *
                                             common::kChunkSizeBytes);
    uint64_t inner_end = std::max(inner_start, end / common::kChunkSizeBytes * common::kChunkSizeBytes);
    for (auto [from, to] : {std::pair{offset, inner_start}, std::pair{inner_end, end}}) {
      if (from >= to) continue;
      // One partial chunk: clip the piece to the bytes it stores.
      RETURN_IF_ERROR(EnsureLocations(handle.ino, *st, from, to - from));
      {
        std::lock_guard<std::mutex> lock(st->mu);
        const pb::ChunkLocation& loc = st->locations[common::ChunkIndexOf(from)];
        const uint64_t chunk_start = common::ChunkStartOffset(common::ChunkIndexOf(from));
        to = std::min(to, chunk_start + (loc.chunk_id() != 0 || loc.inlined() ? loc.length() : 0));
      }
      for (uint64_t pos = from; pos < to;) {
        uint64_t n = std::min<uint64_t>(to - pos, 8 << 20);
        // At `pos` even on an O_APPEND handle: these zeros replace bytes
        // inside the file (appended, they grew it by the punched length).
        RETURN_IF_ERROR(WriteAt(handle, pos, std::string(n, '\0'), /*append=*/false));
        pos += n;
      }
    }
    std::lock_guard<std::mutex> io_lock(st->io_mu);
    RETURN_IF_ERROR(FlushLocked(handle.ino, *st));
    if (inner_start >= inner_end) return GetAttr(c, handle.ino);
    offset = inner_start;
    length = inner_end - inner_start;
  }
  std::lock_guard<std::mutex> io_lock(st->io_mu);
  RETURN_IF_ERROR(FlushLocked(handle.ino, *st));
  const uint64_t name_changes = meta_->name_change_count();
  ASSIGN_OR_RETURN(pb::Attr attr, WithHandle(handle, [&] {
                     return meta_->Fallocate(c, handle.ino, handle.handle_id, mode, offset, length);
                   }));
  st->leases.clear();
  std::lock_guard<std::mutex> lock(st->mu);
  DropCachedData(*st);
  // Its own reply, as SetAttr's: data as of now.
  LearnAttr(*st, attr, AttrStamp{.name_changes = name_changes, .data_changes = data_changes_.load()});
  NoteDataChange(*st);
  attr.set_size(st->size);
  return attr;
}

}  // namespace dfs::fuse
