#include "fuse/fuse_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/dir_page.h"
#include "common/posix_acl.h"
#include "fuse/session_io.h"

namespace dfs::fuse {
namespace {

using common::Status;

Adapter& A(fuse_req_t req) { return *static_cast<Adapter*>(fuse_req_userdata(req)); }
FileSystem& Fs(fuse_req_t req) { return *A(req).fs; }
FileHandle& Handle(fuse_file_info* fi) { return *reinterpret_cast<FileHandle*>(fi->fh); }

// The mount root's inode is FUSE_ROOT_ID to the kernel and options.root_ino
// to meta (1, or the directory of a SOURCE:/subdir mount). In() maps what
// the kernel sends, Out() what it receives; the cluster's own root (outside a
// subdir mount) goes out as the mount root, so ".." never leads above it.
uint64_t In(fuse_req_t req, fuse_ino_t ino) { return ino == FUSE_ROOT_ID ? A(req).options.root_ino : ino; }
fuse_ino_t Out(fuse_req_t req, uint64_t ino) {
  return ino == A(req).options.root_ino || ino == FUSE_ROOT_ID ? FUSE_ROOT_ID : ino;
}

Caller CallerOf(fuse_req_t req, bool with_groups) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller c{ctx->uid, ctx->gid, static_cast<uint32_t>(ctx->pid), {}};
  if (A(req).options.root_squash && c.uid == 0) {
    // -o root_squash: root on this machine is nobody to the cluster (meta
    // checks permissions with these ids).
    c.uid = kNobody;
    c.gid = kNobody;
    return c;
  }
  if (with_groups) {
    // Supplementary groups matter for chown/chmod rules and setgid clearing.
    gid_t groups[64];
    int n = fuse_req_getgroups(req, 64, groups);
    for (int i = 0; i < std::min(n, 64); ++i) c.groups.push_back(groups[i]);
  }
  return c;
}

// For a call on an inode the kernel reached by a name (open, getattr,
// readlink, setattr, access, the xattr calls): an inode that is gone means
// the kernel's cached name is stale - another mount removed or replaced it
// within entry_timeout. ESTALE makes the kernel look the path up again and
// retry (LOOKUP_REVAL) instead of failing: a symlink flipped by rename on
// another mount (`ln -sfn` deploys) read as ENOENT mid-path before.
Status StaleIfGone(const Status& s) {
  if (s.code() != common::StatusCode::kNotFound) return s;
  return Status(common::StatusCode::kStale, s.message());
}

void ReplyStatus(fuse_req_t req, const Status& s) {
  if (s.code() == common::StatusCode::kUnavailable || s.code() == common::StatusCode::kDataLoss ||
      s.code() == common::StatusCode::kInternal || s.code() == common::StatusCode::kUnknown) {
    spdlog::error("{}", s.ToString());  // EIO reaches the application: say why, once
  } else if (s.code() == common::StatusCode::kResourceExhausted) {
    // ENOSPC while df may show room (meta's disk nearly full, or the
    // chunkservers'): say whose, at most every 10 s.
    static std::atomic<int64_t> last_said_s{INT64_MIN / 2};
    const int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    int64_t last = last_said_s.load();
    if (now_s - last >= 10 && last_said_s.compare_exchange_strong(last, now_s)) spdlog::warn("{}", s.ToString());
  }
  fuse_reply_err(req, s.ToErrno());
}

// read, write, fsync and close answer as a local file's would: a full disk,
// a file too large, an interrupted wait or a stale file as such; anything
// else (a chunkserver that did not answer within io_timeout, a refusal
// that outlived the retries) as EIO, said in the log. A timeout is not
// ETIMEDOUT, nor a refusal EINVAL: programs do not expect those there.
void ReplyIoStatus(fuse_req_t req, const Status& s) {
  switch (s.code()) {
    case common::StatusCode::kResourceExhausted:
    case common::StatusCode::kOutOfRange:
    case common::StatusCode::kCancelled:
    case common::StatusCode::kStale:
      return ReplyStatus(req, s);
    default:
      spdlog::error("{}", s.ToString());
      fuse_reply_err(req, EIO);
  }
}

struct stat ToStat(fuse_req_t req, const pb::Attr& a) {
  struct stat st{};
  st.st_ino = Out(req, a.ino());
  st.st_mode = a.mode();
  st.st_nlink = a.nlink();
  st.st_uid = a.uid();
  st.st_gid = a.gid();
  st.st_size = static_cast<off_t>(a.size());
  st.st_rdev = a.rdev();
  st.st_blksize = 64 * 1024;
  st.st_blocks = a.blocks() != 0 ? static_cast<blkcnt_t>(a.blocks())
                                 : static_cast<blkcnt_t>((a.size() + 511) / 512);
  st.st_atim = {a.atime_ns() / 1'000'000'000, a.atime_ns() % 1'000'000'000};
  st.st_mtim = {a.mtime_ns() / 1'000'000'000, a.mtime_ns() % 1'000'000'000};
  st.st_ctim = {a.ctime_ns() / 1'000'000'000, a.ctime_ns() % 1'000'000'000};
  return st;
}

// `valid_s`: how long the answer may be kept at most (what is left of a
// cached one's timeout); negative: the mount's timeouts.
fuse_entry_param ToEntry(fuse_req_t req, const pb::Attr& a, double valid_s = -1) {
  fuse_entry_param e{};
  e.ino = Out(req, a.ino());
  e.generation = a.generation();
  e.attr = ToStat(req, a);
  e.attr_timeout = A(req).options.attr_timeout_s;
  e.entry_timeout = A(req).options.entry_timeout_s;
  if (valid_s >= 0) {
    e.attr_timeout = std::min(e.attr_timeout, valid_s);
    e.entry_timeout = std::min(e.entry_timeout, valid_s);
  }
  return e;
}

// Replies with an entry and counts the kernel's new reference; `before`:
// taken before the call that returned `attr` (FileSystem::LearnAttr).
void ReplyEntry(fuse_req_t req, pb::Attr attr, const FileSystem::AttrStamp& before, double valid_s = -1) {
  Fs(req).OverlayLocalSize(&attr, before);
  fuse_entry_param e = ToEntry(req, attr, valid_s);
  Fs(req).AddLookup(e.ino, e.entry_timeout);
  if (fuse_reply_entry(req, &e) != 0) Fs(req).Forget(e.ino, 1);  // the kernel never got it
}

// Whether meta keeps this mount's file locks: -o locks=cluster (the default)
// and a meta that can. Otherwise OpInit leaves them to the kernel.
bool ClusterLocks(const Adapter& adapter) {
  return adapter.options.cluster_locks && adapter.fs->meta().Supports(pb::FEATURE_FILE_LOCKS);
}

// The kernel asks for `ino`'s attributes again, after a change that it
// keeps an older copy of (a mode meta changed). Attributes only (offset
// -1), so no page lock is involved.
void ForgetAttrs(fuse_req_t req, uint64_t ino) {
  if (A(req).session != nullptr) fuse_lowlevel_notify_inval_inode(A(req).session, Out(req, ino), -1, 0);
}

bool RefuseIfReadOnly(fuse_req_t req) {
  if (!A(req).options.read_only) return false;
  fuse_reply_err(req, EROFS);
  return true;
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  const AdapterOptions& options = static_cast<Adapter*>(userdata)->options;
  // The kernel sends setattr(size=0) before open(O_TRUNC) without this, which
  // goes through our flush-then-truncate path; with it, open would have to truncate.
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // A symlink never changes: the kernel may keep its target (and readlink
  // of one it has not kept is answered from what meta sent with its attributes).
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  // With POSIX_ACL the kernel judges access by ACLs too (it asks for
  // system.posix_acl_access); with DONT_MASK it leaves the umask to meta,
  // which must skip it under a directory's default ACL (ops/make_node.cc).
  const uint32_t acl_caps = FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  if (options.posix_acl && (conn->capable & acl_caps) == acl_caps) conn->want |= acl_caps;
  conn->max_readahead = std::max<unsigned>(conn->max_readahead, 1u << 20);
  // File locks go to meta (FileSystem::Lock) unless locks=local or meta
  // cannot keep them: then the kernel keeps them, for this mount only.
  // (libfuse asks for both because the lock operations exist.)
  if (!ClusterLocks(*static_cast<Adapter*>(userdata))) conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  parent = In(req, parent);
  if (parent == A(req).options.root_ino && std::strcmp(name, "..") == 0) {
    // Export support may ask for ".."; the mount root is its own parent,
    // as "/" is, so a subdir mount never leads above its root.
    const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
    auto root = Fs(req).GetAttr(CallerOf(req, false), parent);
    if (!root.ok()) return ReplyStatus(req, root.status());
    return ReplyEntry(req, *root, before);
  }
  MetaClient& meta = Fs(req).meta();
  // A listing is used only while this mount changed nothing since its fetch.
  if (auto hit = Fs(req).ListedLookup(parent, name)) {
    return ReplyEntry(req, std::move(hit->attr), Fs(req).StampBeforeCall(), hit->valid_s);
  }
  const Caller caller = CallerOf(req, false);  // req is gone after the reply
  const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
  auto attr = meta.Lookup(caller, parent, name);
  if (!attr.ok()) {
    if (attr.status().code() == common::StatusCode::kNotFound) {
      // A negative entry the kernel may cache for entry_timeout.
      fuse_entry_param e{};
      e.entry_timeout = A(req).options.entry_timeout_s;
      fuse_reply_entry(req, &e);
      return;
    }
    return ReplyStatus(req, attr.status());
  }
  ReplyEntry(req, *attr, before);
  meta.MaybeFetchListing(caller, parent);  // one by one in a directory: list it (dir_listings.h)
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req).Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Fs(req).Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ino = In(req, ino);
  // A directory we just changed: its attributes came with that change's reply.
  if (auto fresh = Fs(req).meta().dir_attrs().Get(ino)) {
    struct stat st = ToStat(req, fresh->attr);
    fuse_reply_attr(req, &st, fresh->valid_s);
    return;
  }
  if (auto hit = Fs(req).ListedAttr(ino)) {
    struct stat st = ToStat(req, hit->attr);
    fuse_reply_attr(req, &st, std::min(A(req).options.attr_timeout_s, hit->valid_s));
    return;
  }
  auto attr = Fs(req).GetAttr(CallerOf(req, false), ino);
  if (!attr.ok()) return ReplyStatus(req, StaleIfGone(attr.status()));
  struct stat st = ToStat(req, *attr);
  fuse_reply_attr(req, &st, A(req).options.attr_timeout_s);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  ino = In(req, ino);
  if (RefuseIfReadOnly(req)) return;
  pb::SetAttrRequest r;
  r.set_ino(ino);
  uint32_t valid = 0;
  if (to_set & FUSE_SET_ATTR_MODE) { valid |= pb::SET_MODE; r.set_mode(attr->st_mode); }
  if (to_set & FUSE_SET_ATTR_UID) { valid |= pb::SET_UID; r.set_uid(attr->st_uid); }
  if (to_set & FUSE_SET_ATTR_GID) { valid |= pb::SET_GID; r.set_gid(attr->st_gid); }
  if (to_set & FUSE_SET_ATTR_SIZE) { valid |= pb::SET_SIZE; r.set_size(static_cast<uint64_t>(attr->st_size)); }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    valid |= pb::SET_ATIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    valid |= pb::SET_ATIME;
    r.set_atime_ns(attr->st_atim.tv_sec * 1'000'000'000 + attr->st_atim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    valid |= pb::SET_MTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    valid |= pb::SET_MTIME;
    r.set_mtime_ns(attr->st_mtim.tv_sec * 1'000'000'000 + attr->st_mtim.tv_nsec);
  }
  if (to_set & FUSE_SET_ATTR_CTIME) valid |= pb::SET_CTIME;
  r.set_valid(valid);
  if (fi != nullptr) r.set_handle_id(Handle(fi).handle_id);
  auto result = Fs(req).SetAttr(CallerOf(req, true), r);
  if (!result.ok()) return ReplyStatus(req, StaleIfGone(result.status()));
  struct stat st = ToStat(req, *result);
  fuse_reply_attr(req, &st, A(req).options.attr_timeout_s);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  ino = In(req, ino);
  auto target = Fs(req).meta().Readlink(CallerOf(req, false), ino);
  if (!target.ok()) return ReplyStatus(req, StaleIfGone(target.status()));
  fuse_reply_readlink(req, target->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
  auto attr = Fs(req).meta().Mknod(CallerOf(req, true), parent, name, mode, rdev, ctx->umask);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  ReplyEntry(req, *attr, before);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
  auto attr = Fs(req).meta().Mkdir(CallerOf(req, true), parent, name, mode, ctx->umask);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  ReplyEntry(req, *attr, before);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  fuse_reply_err(req, Fs(req).meta().Unlink(CallerOf(req, false), parent, name).ToErrno());
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  fuse_reply_err(req, Fs(req).meta().Rmdir(CallerOf(req, false), parent, name).ToErrno());
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
  auto attr = Fs(req).meta().Symlink(CallerOf(req, true), parent, name, link);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  ReplyEntry(req, *attr, before);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  parent = In(req, parent);
  newparent = In(req, newparent);
  if (RefuseIfReadOnly(req)) return;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
  Status s = Fs(req).meta().Rename(CallerOf(req, false), parent, name, newparent, newname, flags);
  fuse_reply_err(req, s.ToErrno());
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  ino = In(req, ino);
  newparent = In(req, newparent);
  if (RefuseIfReadOnly(req)) return;
  const FileSystem::AttrStamp before = Fs(req).StampBeforeCall();
  auto attr = Fs(req).meta().Link(CallerOf(req, false), ino, newparent, newname);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  ReplyEntry(req, *attr, before);
}

void ReplyOpened(fuse_req_t req, fuse_file_info* fi, FileSystem::Opened opened, bool create) {
  fi->keep_cache = opened.keep_cache ? 1 : 0;
  fi->direct_io = opened.direct_io ? 1 : 0;
  fi->fh = reinterpret_cast<uint64_t>(opened.handle.get());
  FileHandle* raw = opened.handle.release();
  if (create) {
    fuse_entry_param e = ToEntry(req, opened.attr);
    Fs(req).AddLookup(e.ino, e.entry_timeout);
    if (fuse_reply_create(req, &e, fi) != 0) {
      Fs(req).Forget(e.ino, 1);
      (void)Fs(req).Release(std::unique_ptr<FileHandle>(raw));  // the open was interrupted
    }
    return;
  }
  if (fuse_reply_open(req, fi) != 0) (void)Fs(req).Release(std::unique_ptr<FileHandle>(raw));
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ino = In(req, ino);
  if ((fi->flags & O_ACCMODE) != O_RDONLY && A(req).options.read_only) return (void)fuse_reply_err(req, EROFS);
  auto opened = Fs(req).Open(CallerOf(req, false), ino, static_cast<uint32_t>(fi->flags));
  if (!opened.ok()) return ReplyStatus(req, StaleIfGone(opened.status()));
  if (!opened->keep_cache && A(req).session != nullptr) {
    // Close-to-open: the kernel may still hold attributes (the size) from
    // before another mount changed the file; make it ask again, or reads
    // would stop at the old size.
    fuse_lowlevel_notify_inval_inode(A(req).session, ino, 0, 0);
  }
  ReplyOpened(req, fi, std::move(*opened), false);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  parent = In(req, parent);
  if (RefuseIfReadOnly(req)) return;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto opened = Fs(req).Create(CallerOf(req, true), parent, name, mode, static_cast<uint32_t>(fi->flags),
                               ctx->umask);
  if (!opened.ok()) return ReplyStatus(req, opened.status());
  ReplyOpened(req, fi, std::move(*opened), true);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  std::string data;
  Status s = Fs(req).Read(Handle(fi), static_cast<uint64_t>(off), size, &data);
  if (!s.ok()) return ReplyIoStatus(req, s);
  if (A(req).metrics != nullptr) A(req).metrics->RecordRead(data.size());
  fuse_reply_buf(req, data.data(), data.size());
}

// Before a write or a copy into the file: what file_remove_privs would do
// to its mode, which the kernel leaves to us (FUSE_HANDLE_KILLPRIV_V2).
Status DropSuidSgid(fuse_req_t req, FileHandle& handle) {
  if (!Fs(req).MayLoseSuidSgid(handle.ino)) return Status::Ok();
  Status s = Fs(req).DropSuidSgidForWrite(CallerOf(req, true), handle);
  if (s.ok()) ForgetAttrs(req, handle.ino);
  return s;
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  uint64_t offset = static_cast<uint64_t>(off);
  FileHandle& handle = Handle(fi);
  // The kernel says whether the writer lacks CAP_FSETID.
  if (WriteKillsSuidSgid()) {
    if (Status s = DropSuidSgid(req, handle); !s.ok()) return ReplyIoStatus(req, s);
  }
  if (handle.flags & O_APPEND) {  // direct I/O (see Open)
    if (Status s = Fs(req).DropCapabilityForWrite(CallerOf(req, false), handle.ino); !s.ok()) {
      return ReplyIoStatus(req, s);
    }
  }
  // The kernel writing back a shared mapping's pages (writepage) names
  // their offset, even through an O_APPEND handle: it may use any handle
  // open for writing that was mapped.
  const bool append = (handle.flags & O_APPEND) != 0 && !fi->writepage;
  Status s = Fs(req).WriteAt(handle, offset, std::string_view(buf, size), append);
  if (!s.ok()) return ReplyIoStatus(req, s);
  if (A(req).metrics != nullptr) A(req).metrics->RecordWrite(size);
  fuse_reply_write(req, size);
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ino = In(req, ino);
  Fs(req).Closed(Handle(fi));
  // close(2): the data must be durable and its length committed (close-to-open).
  Status s = Fs(req).Flush(ino);
  if (!s.ok()) return ReplyIoStatus(req, s);
  // ...and the closing process's fcntl locks on the file go (the kernel
  // leaves that to us: it sends no unlock at close).
  s = Fs(req).UnlockOnClose(ino, fi->lock_owner);
  if (!s.ok()) return ReplyStatus(req, s);
  fuse_reply_err(req, 0);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Status s = Fs(req).Release(std::unique_ptr<FileHandle>(&Handle(fi)));
  fuse_reply_err(req, s.ToErrno());
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  ino = In(req, ino);
  Status s = Fs(req).Fsync(ino);
  if (!s.ok()) return ReplyIoStatus(req, s);
  fuse_reply_err(req, 0);
}

// Directory listing. Offsets handed to the kernel: 1 and 2 for "." and "..",
// then meta's cookie + 2 (meta's cookies stay valid while the directory
// changes, so an offset from an earlier call resumes correctly).
constexpr uint64_t kCookieBias = 2;

// An open directory (fuse_file_info.fh).
struct DirHandle {
  // The offset right after the last entry of a listing that reached the end
  // of the directory: the kernel asks once more from there, and an entry
  // made since then may or may not be listed (POSIX), so that call is
  // answered empty without asking meta. Calls on one handle are serialized
  // by the kernel; atomic all the same.
  std::atomic<uint64_t> end_offset{UINT64_MAX};
};

DirHandle* DirOf(fuse_file_info* fi) { return fi != nullptr ? reinterpret_cast<DirHandle*>(fi->fh) : nullptr; }

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  ino = In(req, ino);
  uint64_t offset = static_cast<uint64_t>(off);
  DirHandle* dir = DirOf(fi);
  if (dir != nullptr && offset != 0 && offset == dir->end_offset.load()) return (void)fuse_reply_buf(req, nullptr, 0);
  std::vector<char> buf(size);
  size_t used = 0;
  uint64_t next_offset = offset;  // after the last entry added
  double valid_s = -1;  // a page fetched ahead: what is left of its timeout
  FileSystem::AttrStamp before;  // taken before the page being added was asked for
  auto add = [&](const char* name, const pb::Attr* attr, uint64_t entry_ino, uint32_t type, uint64_t next) {
    size_t need;
    if (plus && attr != nullptr) {
      pb::Attr a = *attr;
      Fs(req).OverlayLocalSize(&a, before);
      fuse_entry_param e = ToEntry(req, a, valid_s);
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, static_cast<off_t>(next));
      if (need <= size - used) Fs(req).AddLookup(e.ino, e.entry_timeout);
    } else if (plus) {
      fuse_entry_param e{};  // "." and "..": no lookup reference is taken for these
      e.attr.st_ino = Out(req, entry_ino);
      e.attr.st_mode = type;
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, static_cast<off_t>(next));
    } else {
      struct stat st{};
      st.st_ino = Out(req, entry_ino);
      st.st_mode = type;
      need = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, static_cast<off_t>(next));
    }
    if (need > size - used) return false;
    used += need;
    next_offset = next;
    return true;
  };
  if (offset == 0 && !add(".", nullptr, ino, S_IFDIR, 1)) return (void)fuse_reply_buf(req, buf.data(), used);
  if (offset <= 1 && !add("..", nullptr, 1, S_IFDIR, 2)) return (void)fuse_reply_buf(req, buf.data(), used);
  uint64_t cookie = offset > kCookieBias ? offset - kCookieBias : 0;
  // About 32 bytes of kernel buffer per plain entry, ~150 with attributes.
  uint32_t want = static_cast<uint32_t>(std::max<size_t>(8, size / (plus ? 160 : 40)));
  const Caller caller = CallerOf(req, false);
  while (true) {
    // (A page held from earlier serves only while this mount changed
    // nothing since its fetch: as fresh as one asked now.)
    before = Fs(req).StampBeforeCall();
    auto page = Fs(req).meta().ReadDirForKernel(caller, ino, cookie, want, plus, &valid_s);
    if (!page.ok()) {
      if (used > 0) break;  // return what we have; the error repeats on the next call
      return ReplyStatus(req, page.status());
    }
    bool full = false;
    std::string name;  // NUL-terminated for libfuse
    common::Status read = common::ForEachDirEntry(*page, [&](const common::DirPageEntry& entry) {
      if (entry.name == "." || entry.name == "..") {
        cookie = entry.cookie;
        return true;
      }
      name.assign(entry.name);
      if (!add(name.c_str(), plus ? (entry.attr != nullptr ? entry.attr : &pb::Attr::default_instance()) : nullptr,
               entry.ino, entry.type, entry.cookie + kCookieBias)) {
        full = true;
        return false;
      }
      cookie = entry.cookie;
      return true;
    });
    if (!read.ok()) {
      if (used > 0) break;
      return ReplyStatus(req, common::InternalError(read.message()));  // EIO
    }
    Fs(req).meta().NoteListed(caller, ino, *page);  // a walk going down fetches ahead
    if (full || page->eof() || common::DirPageSize(*page) == 0) {
      if (!full && dir != nullptr) dir->end_offset.store(next_offset);
      break;
    }
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDir(req, ino, size, off, fi, false);  // ReadDir maps the inode (In)
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDir(req, ino, size, off, fi, true);  // ReadDir maps the inode (In)
}

// Asks meta nothing: the kernel sends OPENDIR only for an inode it knows as
// a directory, after its own permission check (default_permissions), and a
// directory removed meanwhile by another mount fails at the first READDIR.
void OpOpendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fi->fh = reinterpret_cast<uint64_t>(new DirHandle);
  if (fuse_reply_open(req, fi) != 0) delete DirOf(fi);  // the kernel never got it
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete DirOf(fi);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  // Every namespace change is committed (durably) before its reply. (Root's
  // chmod/chown of an open file may not be: fsync of that file waits for it.)
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto s = Fs(req).meta().Statfs(CallerOf(req, false));
  if (!s.ok()) return ReplyStatus(req, s.status());
  struct statvfs st{};
  uint64_t bsize = s->block_size() != 0 ? s->block_size() : 4096;
  st.f_bsize = bsize;
  st.f_frsize = bsize;
  st.f_blocks = s->total_bytes() / bsize;
  st.f_bfree = s->free_bytes() / bsize;
  st.f_bavail = s->avail_bytes() / bsize;
  st.f_files = s->total_inodes();
  st.f_ffree = s->free_inodes();
  st.f_favail = s->free_inodes();
  st.f_namemax = s->max_name_length() != 0 ? s->max_name_length() : 255;
  fuse_reply_statfs(req, &st);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  ino = In(req, ino);
  if (RefuseIfReadOnly(req)) return;
  Status s = Fs(req).SetXattr(CallerOf(req, false), ino, name, std::string(value, size),
                                     static_cast<uint32_t>(flags));
  // The ACL set the mode bits, which the kernel keeps cached (without
  // FUSE_POSIX_ACL it drops only ctime).
  if (s.ok() && std::string_view(name) == common::kAccessAclXattr) ForgetAttrs(req, ino);
  fuse_reply_err(req, StaleIfGone(s).ToErrno());
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  ino = In(req, ino);
  auto value = Fs(req).GetXattr(CallerOf(req, false), ino, name);
  if (!value.ok()) return (void)fuse_reply_err(req, StaleIfGone(value.status()).ToErrno());
  if (size == 0) return (void)fuse_reply_xattr(req, value->size());
  if (value->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, value->data(), value->size());
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ino = In(req, ino);
  auto names = Fs(req).meta().ListXattr(CallerOf(req, false), ino);
  if (!names.ok()) return ReplyStatus(req, StaleIfGone(names.status()));
  std::string packed;
  for (const std::string& n : *names) {
    packed += n;
    packed.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, packed.size());
  if (packed.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, packed.data(), packed.size());
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ino = In(req, ino);
  if (RefuseIfReadOnly(req)) return;
  fuse_reply_err(req, StaleIfGone(Fs(req).RemoveXattr(CallerOf(req, false), ino, name)).ToErrno());
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  ino = In(req, ino);
  if (A(req).options.read_only && (mask & W_OK)) return (void)fuse_reply_err(req, EROFS);
  fuse_reply_err(req,
                 StaleIfGone(Fs(req).meta().Access(CallerOf(req, true), ino, static_cast<uint32_t>(mask))).ToErrno());
}

void OpFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  if (RefuseIfReadOnly(req)) return;
  constexpr int kSupported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
  if (mode & ~kSupported) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  // Meta drops setuid/setgid as for a write (the kernel leaves it to us,
  // FUSE_HANDLE_KILLPRIV_V2) and the kernel must learn the new mode.
  Caller caller = CallerOf(req, false);
  const bool mode_may_change = caller.uid != 0 && Fs(req).MayLoseSuidSgid(Handle(fi).ino);
  if (mode_may_change) caller = CallerOf(req, true);  // groups: meta may drop setgid
  auto attr = Fs(req).Fallocate(caller, Handle(fi), static_cast<uint32_t>(mode), static_cast<uint64_t>(offset),
                                static_cast<uint64_t>(length));
  if (attr.ok() && mode_may_change) ForgetAttrs(req, Handle(fi).ino);
  fuse_reply_err(req, attr.ok() ? 0 : attr.status().ToErrno());
}

void OpLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  auto pos = Fs(req).SeekDataOrHole(Handle(fi), static_cast<uint64_t>(off), whence == SEEK_DATA);
  if (!pos.ok()) {
    return (void)fuse_reply_err(req, pos.status().code() == common::StatusCode::kNotFound ? ENXIO
                                                                                     : pos.status().ToErrno());
  }
  fuse_reply_lseek(req, static_cast<off_t>(*pos));
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t, off_t off_out,
                     fuse_file_info* fi_out, size_t len, int flags) {
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  // No kill flag comes with a copy: judged as meta judges a truncate.
  if (CallerOf(req, false).uid != 0) {
    if (Status s = DropSuidSgid(req, Handle(fi_out)); !s.ok()) return ReplyIoStatus(req, s);
  }
  // Server-side copy is a later optimisation; the bytes go through this
  // client, in 8 MiB pieces, with the same checks as read and write.
  constexpr size_t kPiece = 8 << 20;
  size_t copied = 0;
  std::string data;
  while (copied < len) {
    size_t n = std::min(kPiece, len - copied);
    Status s = Fs(req).Read(Handle(fi_in), static_cast<uint64_t>(off_in) + copied, n, &data);
    if (!s.ok()) return copied > 0 ? (void)fuse_reply_write(req, copied) : ReplyIoStatus(req, s);
    if (data.empty()) break;
    s = Fs(req).Write(Handle(fi_out), static_cast<uint64_t>(off_out) + copied, data);
    if (!s.ok()) return copied > 0 ? (void)fuse_reply_write(req, copied) : ReplyIoStatus(req, s);
    copied += data.size();
    if (data.size() < n) break;
  }
  fuse_reply_write(req, copied);
}

// Wraps an operation to count it and time it until it returns (every
// operation replies before returning). The adapter is read first: the
// request is gone once replied to.
template <auto Fn, FuseOp kOp>
struct Timed;
template <typename... Args, void (*Fn)(fuse_req_t, Args...), FuseOp kOp>
struct Timed<Fn, kOp> {
  static void Call(fuse_req_t req, Args... args) {
    ClientMetrics* metrics = A(req).metrics;
    if (metrics == nullptr) return Fn(req, args...);
    const auto start = std::chrono::steady_clock::now();
    Fn(req, args...);
    metrics->RecordOp(kOp, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
};

// ---- File locks (FileSystem::Lock): fcntl record locks and flock.

// OpInit asked the kernel to keep locks itself when this is false; a call
// then still arriving gets ENOLCK.
bool LocksSupported(fuse_req_t req) {
  if (ClusterLocks(A(req))) return true;
  fuse_reply_err(req, ENOLCK);
  return false;
}

FileSystem::LockSpec SpecOf(const struct flock* lock, uint64_t owner) {
  FileSystem::LockSpec spec;
  spec.owner = owner;
  spec.kind = pb::LOCK_KIND_POSIX;
  spec.type = lock->l_type == F_RDLCK   ? pb::LOCK_TYPE_READ
              : lock->l_type == F_WRLCK ? pb::LOCK_TYPE_WRITE
                                        : pb::LOCK_TYPE_UNLOCK;
  // libfuse hands the kernel's [start, end] over as l_start and l_len
  // (0: to the end of the file).
  spec.start = static_cast<uint64_t>(std::max<off_t>(lock->l_start, 0));
  spec.end = lock->l_len <= 0 ? FileSystem::kLockToEnd : spec.start + static_cast<uint64_t>(lock->l_len) - 1;
  spec.pid = static_cast<uint32_t>(std::max<pid_t>(lock->l_pid, 0));
  return spec;
}

// Tries the lock once; with `sleep`, a lock in the way makes the call wait
// (LockWaiters) instead of failing with EAGAIN.
void SetLockOrWait(fuse_req_t req, fuse_ino_t kernel_ino, fuse_file_info* fi, const FileSystem::LockSpec& spec,
                   bool sleep) {
  FileSystem& fs = Fs(req);
  FileHandle* handle = &Handle(fi);
  fuse_session* session = A(req).session;
  // The handle outlives the call: the kernel holds the file while the
  // process waits in it.
  auto attempt = [&fs, handle, spec, session, kernel_ino]() -> Status {
    common::Result<bool> changed = fs.Lock(*handle, spec);
    if (!changed.ok()) return changed.status();
    // Another mount changed the file under its lock: the kernel's pages
    // and size of it go before the caller reads under ours.
    if (*changed && session != nullptr) fuse_lowlevel_notify_inval_inode(session, kernel_ino, 0, 0);
    return Status::Ok();
  };
  Status first = attempt();
  if (!sleep || first.code() != common::StatusCode::kAborted || A(req).lock_waiters == nullptr) {
    return ReplyStatus(req, first);
  }
  A(req).lock_waiters->Add({attempt, [req] { return fuse_req_interrupted(req) != 0; },
                            [req](const Status& s) { ReplyStatus(req, s); }});
}

void OpGetlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  if (!LocksSupported(req)) return;
  auto held = Fs(req).TestLock(In(req, ino), SpecOf(lock, fi->lock_owner));
  if (!held.ok()) return ReplyStatus(req, held.status());
  struct flock out = *lock;
  if (held->type() == pb::LOCK_TYPE_UNLOCK) {
    out.l_type = F_UNLCK;
  } else {
    out.l_type = held->type() == pb::LOCK_TYPE_READ ? F_RDLCK : F_WRLCK;
    out.l_start = static_cast<off_t>(held->start());
    out.l_len = held->end() >= FileSystem::kLockToEnd ? 0 : static_cast<off_t>(held->end() - held->start() + 1);
    out.l_pid = static_cast<pid_t>(held->pid());  // 0: a process on another mount
  }
  fuse_reply_lock(req, &out);
}

void OpSetlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep) {
  if (!LocksSupported(req)) return;
  SetLockOrWait(req, ino, fi, SpecOf(lock, fi->lock_owner), sleep != 0);
}

void OpFlock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  if (!LocksSupported(req)) return;
  FileSystem::LockSpec spec;
  spec.owner = fi->lock_owner;
  spec.kind = pb::LOCK_KIND_FLOCK;
  spec.type = (op & LOCK_EX) ? pb::LOCK_TYPE_WRITE : (op & LOCK_SH) ? pb::LOCK_TYPE_READ : pb::LOCK_TYPE_UNLOCK;
  spec.end = FileSystem::kLockToEnd;
  spec.pid = static_cast<uint32_t>(fuse_req_ctx(req)->pid);
  SetLockOrWait(req, ino, fi, spec, (op & LOCK_NB) == 0);
}

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = Timed<OpLookup, FuseOp::kLookup>::Call;
  ops.forget = Timed<OpForget, FuseOp::kForget>::Call;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = Timed<OpGetattr, FuseOp::kGetattr>::Call;
  ops.setattr = Timed<OpSetattr, FuseOp::kSetattr>::Call;
  ops.readlink = Timed<OpReadlink, FuseOp::kReadlink>::Call;
  ops.mknod = Timed<OpMknod, FuseOp::kMknod>::Call;
  ops.mkdir = Timed<OpMkdir, FuseOp::kMkdir>::Call;
  ops.unlink = Timed<OpUnlink, FuseOp::kUnlink>::Call;
  ops.rmdir = Timed<OpRmdir, FuseOp::kRmdir>::Call;
  ops.symlink = Timed<OpSymlink, FuseOp::kSymlink>::Call;
  ops.rename = Timed<OpRename, FuseOp::kRename>::Call;
  ops.link = Timed<OpLink, FuseOp::kLink>::Call;
  ops.open = Timed<OpOpen, FuseOp::kOpen>::Call;
  ops.create = Timed<OpCreate, FuseOp::kCreate>::Call;
  ops.read = Timed<OpRead, FuseOp::kRead>::Call;
  ops.write = Timed<OpWrite, FuseOp::kWrite>::Call;
  ops.flush = Timed<OpFlush, FuseOp::kFlush>::Call;
  ops.release = Timed<OpRelease, FuseOp::kRelease>::Call;
  ops.fsync = Timed<OpFsync, FuseOp::kFsync>::Call;
  ops.opendir = Timed<OpOpendir, FuseOp::kOpendir>::Call;
  ops.readdir = Timed<OpReaddir, FuseOp::kReaddir>::Call;
  ops.readdirplus = Timed<OpReaddirplus, FuseOp::kReaddirplus>::Call;
  ops.releasedir = Timed<OpReleasedir, FuseOp::kReleasedir>::Call;
  ops.fsyncdir = Timed<OpFsyncdir, FuseOp::kFsyncdir>::Call;
  ops.statfs = Timed<OpStatfs, FuseOp::kStatfs>::Call;
  ops.setxattr = Timed<OpSetxattr, FuseOp::kSetxattr>::Call;
  ops.getxattr = Timed<OpGetxattr, FuseOp::kGetxattr>::Call;
  ops.listxattr = Timed<OpListxattr, FuseOp::kListxattr>::Call;
  ops.removexattr = Timed<OpRemovexattr, FuseOp::kRemovexattr>::Call;
  ops.access = Timed<OpAccess, FuseOp::kAccess>::Call;
  ops.fallocate = Timed<OpFallocate, FuseOp::kFallocate>::Call;
  ops.lseek = Timed<OpLseek, FuseOp::kLseek>::Call;
  ops.copy_file_range = Timed<OpCopyFileRange, FuseOp::kCopyFileRange>::Call;
  // Not timed: a blocking lock's call is answered later, from LockWaiters.
  ops.getlk = OpGetlk;
  ops.setlk = OpSetlk;
  ops.flock = OpFlock;
  return ops;
}

}  // namespace

void ForgetChanged(Adapter& adapter, const pb::ChangeNotices& notices) {
  FileSystem& fs = *adapter.fs;
  fs.NoteRemoteChanges(notices);
  if (adapter.metrics != nullptr) {
    adapter.metrics->RecordNotices(notices.names_size(), notices.inodes_size(), notices.missed());
  }
  fuse_session* se = adapter.session;
  if (se == nullptr) return;
  const auto out = [&](uint64_t ino) -> fuse_ino_t {
    return ino == adapter.options.root_ino || ino == FUSE_ROOT_ID ? FUSE_ROOT_ID : ino;
  };
  // Only what the kernel holds: a notice of anything else is a wasted
  // write to /dev/fuse. The kernel takes the directory's lock, so a lookup
  // of the name in flight ends first and its answer is dropped too.
  const auto known = [&](uint64_t ino) { return out(ino) == FUSE_ROOT_ID || fs.KernelKnows(ino); };
  for (const pb::ChangedName& n : notices.names()) {
    if (!known(n.parent())) continue;
    fuse_lowlevel_notify_inval_entry(se, out(n.parent()), n.name().data(), n.name().size());
  }
  for (uint64_t ino : notices.inodes()) {
    // Attributes only (offset -1): the page cache is judged at the next
    // open (close-to-open), and no page lock is taken here.
    if (known(ino)) fuse_lowlevel_notify_inval_inode(se, out(ino), -1, 0);
  }
}

const fuse_lowlevel_ops& Operations() {
  static const fuse_lowlevel_ops ops = MakeOperations();
  return ops;
}

}  // namespace dfs::fuse
