// FileSystem: the FUSE-free core of the dfs client. The FUSE adapter
// (fuse/fuse_ops.cc) turns kernel requests into calls on this class and its
// MetaClient; everything here is testable without a kernel mount.
//
// What it adds on top of the metadata calls:
//  - Kernel lookup counts per inode, honoured exactly (AddLookup / Forget).
//  - Per-inode file state shared by all open handles of the mount: the
//    write buffer (writes are buffered and flushed in large pieces), data
//    being flushed, the size this mount knows (>= meta's while it has
//    unflushed writes), chunk locations and write leases. Reads overlay the
//    buffered bytes, so a mount always reads its own writes.
//  - Write-behind: once a file has flush_threshold_bytes buffered, a
//    background flush sends them while the application keeps writing into a
//    fresh buffer; a writer waits only when max_dirty_bytes are pending. A
//    background flush that fails keeps its data buffered and the next flush
//    (fsync, close, or the next background one) retries it.
//  - Flush: per chunk, a write lease from meta (new version; a file this
//    mount creates for writing gets chunk 0's lease with Create), the data to all
//    replicas in parallel (ChunkClient; W must acknowledge), then one
//    CommitWrite with each chunk's new version, length and acknowledging
//    replicas, and the file size. Every flush is durable (fdatasync on the
//    replicas), so fsync/close return only when data and length are safe.
//    A small file (at most MetaClient::inline_max_bytes, all in chunk 0,
//    no byte of it on a chunkserver) skips the chunkservers: its whole
//    content rides in the commit (ChunkCommit.inlined), and meta keeps it,
//    durable with the commit's Raft entry. Once it grows past that, the
//    next flush writes the kept bytes and the new ones to the chunkservers.
//  - Reads: chunk locations from meta (cached per inode until the next open,
//    i.e. close-to-open), blocks from the PageCache or the replicas,
//    sequential readahead.
//
// Locking: each InodeState has `io_mu` (serializes flushes of that inode;
// held across network calls, never taken while holding anything else) and
// `mu` (guards the fields; never held across a network call). Lock order:
// io_mu before mu; FileSystem::mu_ (the inode table) may be held while
// taking an InodeState's mu, never the other way round; tasks_mu_ and
// dirty_mu_ are leaves.
// resume_mu_ (RecoverSession, which a flush may call) comes after io_mu and
// before mu_.
//
// Thread-safety: every public method may be called concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

#include "common/result.h"
#include "common/thread_annotations.h"
#include "fuse/client/chunk_client.h"
#include "fuse/client/meta_client.h"
#include "fuse/client/page_cache.h"
#include "fuse/client/write_buffer.h"

namespace dfs::fuse {

struct FileSystemOptions {
  uint64_t cache_bytes = 256ull << 20;          // page cache size (cache_size=)
  uint64_t flush_threshold_bytes = 16ull << 20;  // start a background flush beyond this
  uint64_t max_dirty_bytes = 64ull << 20;        // writers wait beyond this per file
  uint64_t readahead_bytes = 8ull << 20;         // fetched ahead on sequential reads
  int64_t io_timeout_ms = 30'000;                // one chunk I/O attempt
  int64_t retry_timeout_ms = 60'000;             // chunk I/O no replica answers: retried this long
  int64_t capability_cache_ms = 1'000;           // see GetXattr (= attr_timeout)
  int64_t open_attr_ms = 1'000;                  // see GetAttr (= attr_timeout; 0: off)
  // Buffered writes this old are flushed in the background (flush_after=;
  // 0: only past flush_threshold_bytes, at fsync and at close). Why: a file
  // held open and written slowly (a log) showed nothing to other mounts,
  // and held its data only in this process, for as long as it stayed open.
  int64_t flush_after_ms = 1'000;
};

// An open file, owned by the FUSE adapter (fi->fh points to it).
struct FileHandle {
  uint64_t ino = 0;
  uint64_t handle_id = 0;    // meta's handle (0 for a read-only open meta did not log)
  uint32_t flags = 0;
  std::atomic<uint64_t> next_sequential_offset{0};  // for readahead detection
  std::atomic<bool> closed{false};  // a close(2) of it was seen (FLUSH); see Closed
  // Meta ended the mount's session and, resuming it, could not restore this
  // handle (its file is gone), or file locks taken through it were lost
  // with the session: reads, writes, flushes and new locks through it fail
  // with EIO (see FileSystem::RecoverSession). Set through lock_holders'
  // const pointers too.
  mutable std::atomic<bool> lost{false};
};

// What I/O through a lost FileHandle answers (EIO at the FUSE edge).
common::Status LostHandleError();

class FileSystem {
 public:
  FileSystem(std::unique_ptr<MetaClient> meta, FileSystemOptions options);
  ~FileSystem();
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  MetaClient& meta() { return *meta_; }

  // Kernel references. AddLookup after every reply that hands the kernel an
  // entry, with the entry timeout it was given; Forget when the kernel drops
  // `n` of them. State of an inode with no references and no open handles
  // is freed.
  void AddLookup(uint64_t ino, double entry_timeout_s);
  void Forget(uint64_t ino, uint64_t n);
  uint64_t TEST_LookupCount(uint64_t ino);
  // Whether the kernel holds a reference to `ino` (a cached entry or inode).
  bool KernelKnows(uint64_t ino);
  // Another client changed these (ChangeWatcher): nothing this mount holds
  // of them answers a call any more (attributes from an open, capability
  // answers, listings). The kernel's own caches are the caller's to drop.
  void NoteRemoteChanges(const pb::ChangeNotices& notices);

  // Attributes with this mount's view of the size (unflushed writes).
  // Within open_attr_ms of an open or a sync SetAttr, while this client
  // has sent no other mutation since (MetaClient::mutation_count) and has
  // heard of no other client's change since it asked, a getattr
  // is answered with the attributes that call got from meta. The kernel asks
  // then because the open made it forget them (close-to-open, see the
  // adapter's open) or a read invalidated atime (which meta does not keep):
  // tar, cp and most readers fstat() right after open and again after
  // reading. (Before FUSE_HANDLE_KILLPRIV_V2 the kernel also asked before
  // every chown, which tar x and cp -a send right after their utimens.)
  // Meta's answer
  // could only be newer by other mounts' changes, which the kernel's
  // attr_timeout lets it miss as long anyway; any change by this mount
  // (unlink of another link, chmod, a commit...) ends the window.
  common::Result<pb::Attr> GetAttr(const Caller& c, uint64_t ino);
  // Lookups and getattrs answered from a directory listing
  // (MetaClient::ListedLookup/ListedAttr), for inodes no handle of this
  // mount has open (their size and times are this mount's to say);
  // nullopt: ask meta.
  // Not for an inode whose entry the kernel holds within its timeout: the
  // kernel asks again then only to check the name before a change that
  // must see meta's truth (an O_EXCL create or mkdir, a rename target), and
  // a listing may not yet have heard that another client removed it.
  std::optional<DirListings::Hit> ListedLookup(uint64_t parent, const std::string& name);
  std::optional<DirListings::Hit> ListedAttr(uint64_t ino);
  // SetAttr; a size change first flushes buffered writes and then drops
  // cached data of the file.
  //
  // Root's chmod/chown of a regular file this mount holds open (a handle
  // no close(2) was seen for: see Closed) is answered here, at once, and
  // carried to meta by the client's next mutation, or on its own within
  // Options.release_delay_ms (MetaClient::CarrySetAttr): its
  // outcome is certain (root may; the open file exists) and tar and cp -a do
  // two of them per file, each a Raft entry otherwise. This mount sees the
  // change at once; others within that delay (plus their attr_timeout);
  // anything this client sends later reaches meta after it; fsync waits
  // for it. A crash of this client before then loses it, as a crash loses
  // an unsynced chmod on a local disk.
  common::Result<pb::Attr> SetAttr(const Caller& c, const pb::SetAttrRequest& request);
  // What a meta reply's attributes are weighed against: this mount's name
  // changes and its own changes of file data, counted before the call that
  // returned them was sent (see LearnAttr).
  struct AttrStamp {
    uint64_t name_changes = 0;
    uint64_t data_changes = 0;
    uint64_t remote_changes = 0;  // MetaClient::remote_changes().Now()
  };
  AttrStamp StampBeforeCall() const;
  // Learns `attr` (from a call sent after `before` was taken) and fixes it
  // up with the local size (entry replies, listings).
  void OverlayLocalSize(pb::Attr* attr, const AttrStamp& before);

  // Opens `ino` (meta records the handle). keep_cache tells the kernel
  // whether its page cache of the file is still valid (size and mtime
  // unchanged since this mount last opened it).
  struct Opened {
    std::unique_ptr<FileHandle> handle;
    pb::Attr attr;
    bool keep_cache = false;
    // O_APPEND: the kernel would place each write at the end of file it
    // cached, which may predate another mount's appends (close-to-open), and
    // cache the bytes there. Write() puts them at the end this client knows
    // (meta's size at open plus its own writes), and the flush moves them
    // to where the file ends at meta then (PlaceAppends); direct I/O keeps
    // the kernel's page cache out of it (every write was a request anyway).
    // The price: a MAP_SHARED mmap of an O_APPEND descriptor fails with
    // ENODEV (checked) until libfuse offers FUSE_CAP_DIRECT_IO_ALLOW_MMAP
    // (3.16; Debian 12 has 3.14).
    bool direct_io = false;
  };
  common::Result<Opened> Open(const Caller& c, uint64_t ino, uint32_t flags);
  common::Result<Opened> Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                uint32_t flags, uint32_t umask);
  // Flushes (if this handle wrote) and tells meta the handle is gone.
  common::Status Release(std::unique_ptr<FileHandle> handle);
  // A close(2) of the handle (FUSE FLUSH; RELEASE comes later, after the
  // application moved on): from now on it does not count as holding the
  // file open for SetAttr's answered chmod/chown. A dup of it still open
  // only loses that shortcut.
  void Closed(FileHandle& handle);

  // The block cache (for its hit counts and size).
  PageCache& cache() { return cache_; }
  // Runs of O_APPEND writes moved at flush because the file's end at meta
  // was not where this mount had put them (another mount appended or cut
  // the file; PlaceAppends).
  uint64_t appends_moved() const { return appends_moved_.load(std::memory_order_relaxed); }

  // Reads up to `size` bytes at `offset` into `out` (short at end of file).
  common::Status Read(FileHandle& handle, uint64_t offset, uint64_t size, std::string* out);
  // Buffers a write; may flush when the buffer is large. On an O_APPEND
  // handle the bytes go at the end of file, whatever `offset` says.
  common::Status Write(FileHandle& handle, uint64_t offset, std::string_view data);
  // Write, at the end of file when `append`, else at `offset` (the kernel
  // writing back a mapping's pages names their offset, whatever handle).
  common::Status WriteAt(FileHandle& handle, uint64_t offset, std::string_view data, bool append);
  // A write by a caller without CAP_FSETID drops setuid and setgid (the
  // kernel leaves that to us with FUSE_HANDLE_KILLPRIV_V2). MayLoseSuidSgid
  // is false when the mode this mount knows has neither bit, as for every
  // write but the first to such a file; DropSuidSgidForWrite asks meta to
  // drop them as that write would (SET_KILL_SUIDGID; `c` with its groups).
  bool MayLoseSuidSgid(uint64_t ino);
  common::Status DropSuidSgidForWrite(const Caller& c, FileHandle& handle);
  // A write also drops file capabilities (security.capability). The kernel
  // does that itself before a write through its page cache (it asks for the
  // attribute, then removes it) but not before direct I/O, which an
  // O_APPEND handle's writes are: OpWrite calls this for those. Answered
  // from the capability cache (see GetXattr) most of the time.
  common::Status DropCapabilityForWrite(const Caller& c, uint64_t ino);
  // Makes every buffered write of the inode durable and committed. The
  // leases and the commit use the handle that wrote (meta grants writes to
  // writable handles), whichever handle asks for the flush.
  common::Status Flush(uint64_t ino);
  // Flush, and returns once meta has applied the attribute changes of the
  // inode this mount answered itself (see SetAttr).
  common::Status Fsync(uint64_t ino);

  // SEEK_DATA / SEEK_HOLE over the chunk map (holes are unallocated chunks
  // and the space past a chunk's stored length).
  common::Result<uint64_t> SeekDataOrHole(FileHandle& handle, uint64_t offset, bool data);

  // Extended attributes. The kernel asks for "security.capability" before
  // a write (to drop file capabilities) until it has seen a file has none,
  // and again after it re-learns the file's attributes; the answer is cached
  // per inode for capability_cache_ms, like attributes, so those asks do not
  // pay a metadata round trip each. Set/Remove through this mount update the
  // cache.
  common::Result<std::string> GetXattr(const Caller& c, uint64_t ino, const std::string& name);
  common::Status SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                          uint32_t flags);
  common::Status RemoveXattr(const Caller& c, uint64_t ino, const std::string& name);

  // fallocate: flushes, then asks meta.
  common::Result<pb::Attr> Fallocate(const Caller& c, FileHandle& handle, uint32_t mode, uint64_t offset,
                                     uint64_t length);

  // File locks: fcntl record locks (process and OFD) and flock, kept by
  // meta so processes on every mount see each other's (meta.proto
  // SetLockRequest; file_locks.cc). `owner` is the kernel's lock owner.
  struct LockSpec {
    uint64_t owner = 0;
    pb::LockKind kind = pb::LOCK_KIND_POSIX;
    pb::LockType type = pb::LOCK_TYPE_UNLOCK;
    uint64_t start = 0;
    uint64_t end = 0;  // inclusive; kLockToEnd: to the end of the file
    uint32_t pid = 0;  // the locking process, for F_GETLK on this mount
  };
  static constexpr uint64_t kLockToEnd = INT64_MAX;
  // Sets, changes or removes a lock taken through `handle`. Aborted (EAGAIN)
  // while another owner's lock is in the way. An unlock first makes this
  // mount's writes to the file durable: the next holder, on any mount, must
  // read them. A granted lock whose file changed since this mount last
  // looked (another mount's holder wrote it) drops this mount's cached data
  // of it and returns true: the caller drops the kernel's page cache too.
  common::Result<bool> Lock(FileHandle& handle, const LockSpec& spec);
  // F_GETLK.
  common::Result<pb::GetLockReply> TestLock(uint64_t ino, const LockSpec& spec);
  // close(2) by `owner` (FUSE flush, after Flush): its fcntl locks on the
  // file go, as POSIX says. No call to meta unless it may hold one.
  common::Status UnlockOnClose(uint64_t ino, uint64_t owner);

  // Meta ended this mount's session (no keep-alive within its lease: a
  // partition, a paused VM): takes it back with the handles still open
  // (MetaClient::ResumeSession), so applications keep their open files.
  // Handles whose file is gone meanwhile, and those file locks were taken
  // through (another mount may have locked and written since), are marked
  // lost (FileHandle::lost); their buffered writes are dropped at the next
  // flush, which fails with EIO, as NFS does with lost locks. Write leases
  // are taken anew by the next flush (FlushLocked). Returns whether the
  // session is live now; a no-op when meta still knows it. Called by the
  // keep-alive thread, and after a call meta refused for want of a session.
  bool RecoverSession();

 private:
  struct LeaseState {
    pb::ChunkLease lease;
    uint64_t length = 0;         // chunk length after our writes
    int64_t expires_mono_ms = 0;
    uint64_t handle_id = 0;      // the handle meta granted it to
    bool unwritten = false;      // granted by Create, no byte sent under it yet
    // The chunk's bytes while no chunkserver may hold any of this version:
    // a new chunk (empty), or one meta keeps (ChunkLease.base_data, then
    // what this mount committed inline). nullopt once a byte of the version
    // went to a chunkserver, or when the base is on chunkservers.
    std::optional<std::string> in_meta;
    // The file's size at meta when the lease was granted, until a flush
    // wrote under it (this mount's own commits move the end after that).
    std::optional<uint64_t> file_size;
  };
  struct InodeState {
    std::mutex io_mu;  // serializes flushes; taken before mu
    std::mutex mu;     // guards the fields below
    uint64_t lookups GUARDED_BY(mu) = 0;
    int64_t entry_valid_until_mono_ms GUARDED_BY(mu) = -1;  // of the last entry handed to the kernel
    int open_handles GUARDED_BY(mu) = 0;
    int unclosed_handles GUARDED_BY(mu) = 0;  // open_handles no close(2) was seen for
    uint64_t size GUARDED_BY(mu) = 0;          // this mount's view
    bool size_known GUARDED_BY(mu) = false;
    std::optional<pb::Attr> attr GUARDED_BY(mu);  // the last meta gave (or SetAttr answered)
    WriteBuffer buffer GUARDED_BY(mu);         // not yet flushed
    WriteBuffer in_flight GUARDED_BY(mu);      // being flushed now
    std::map<uint64_t, pb::ChunkLocation> locations GUARDED_BY(mu);  // by chunk index
    uint64_t locations_size GUARDED_BY(mu) = 0;  // file size when locations were fetched
    std::map<uint64_t, LeaseState> leases GUARDED_BY(io_mu);
    int64_t opened_mtime_ns GUARDED_BY(mu) = -1;  // at this mount's last open
    // The file's ctime at this mount's last open: the stamp its reads cache
    // blocks under (page_cache.h), so an open after another mount's commit
    // does not read what was cached before it.
    uint64_t cache_stamp GUARDED_BY(mu) = 0;
    uint64_t opened_size GUARDED_BY(mu) = 0;
    uint64_t prefetched_until GUARDED_BY(mu) = 0;  // readahead issued up to this file offset
    // Readahead ranges [from, to) being fetched now; a reader that needs
    // one waits for it (prefetch_cv) rather than fetching it twice.
    std::vector<std::pair<uint64_t, uint64_t>> prefetching GUARDED_BY(mu);
    std::condition_variable prefetch_cv;  // with mu
    bool background_flush GUARDED_BY(mu) = false;  // a write-behind flush is running
    // When the buffer last went from empty to holding data, or an aged
    // flush last started (-1: not in dirty_, see FlushAgedLoop).
    int64_t dirty_since_mono_ms GUARDED_BY(mu) = -1;
    std::condition_variable flushed_cv;            // signalled when it ends (with mu)
    uint64_t writer_handle_id GUARDED_BY(mu) = 0;  // the handle whose writes are buffered (flushes use it)
    int64_t attr_known_mono_ms GUARDED_BY(mu) = -1;  // when Open or SetAttr learned `attr` (-1: none)
    uint64_t attr_known_mutations GUARDED_BY(mu) = 0;  // MetaClient::mutation_count() then
    // MetaClient::remote_changes().Now() before the call that returned
    // `attr`: a notice of this inode heard since (another client changed it)
    // ends its use.
    uint64_t attr_known_remote GUARDED_BY(mu) = 0;
    uint64_t attr_name_changes GUARDED_BY(mu) = 0;  // MetaClient::name_change_count() when `attr` was learned
    // data_changes_ at this mount's last own change of the file's data or
    // size (a buffered write, the end of a flush, a truncate...).
    uint64_t data_changed_at GUARDED_BY(mu) = 0;
    int64_t capability_checked_mono_ms GUARDED_BY(mu) = -1;  // -1: not cached
    // This mount made the inode (Create) and set no access ACL since, so
    // meta holds none for it (see SetXattr).
    bool no_stored_acl GUARDED_BY(mu) = false;
    common::Status capability_status GUARDED_BY(mu);
    std::string capability_value GUARDED_BY(mu);
    // (handle, kind, owner) of the locks this mount may hold on the file,
    // by the handle they were taken through: its release ends those the
    // kernel does not end at close(2) (OFD and flock locks).
    std::set<std::tuple<const FileHandle*, int, uint64_t>> lock_holders GUARDED_BY(mu);
  };

  std::shared_ptr<InodeState> State(uint64_t ino);
  // Runs `call` (a meta call that needs the session: an open, a create, a
  // lock) again once RecoverSession brought the session back, when meta
  // refused it as ESTALE.
  template <typename Call>
  auto WithSession(Call call) -> decltype(call());
  // Runs `call` (a meta call naming `handle`'s meta handle) again once
  // RecoverSession brought the session back, when meta did not know the
  // handle (FAILED_PRECONDITION); a handle the resume lost answers
  // LostHandleError.
  template <typename Call>
  auto WithHandle(const FileHandle& handle, Call call) -> decltype(call());
  // Whether `handle_id` (a handle of this mount) is lost (FileHandle::lost).
  bool HandleLost(uint64_t handle_id);
  // The buffered writes of a lost writer handle: dropped, EIO. OK otherwise.
  common::Status DropLostWrites(uint64_t ino, InodeState& st) REQUIRES(st.io_mu);
  // Removes (kind, owner)'s locks on the file at meta, and forgets them.
  common::Status EndLocks(uint64_t ino, InodeState& st, int kind, uint64_t owner);
  // Release: ends the locks taken through `handle`.
  common::Status EndHandleLocks(const FileHandle& handle);
  // A handle for `ino`; sets `st` to the inode's state.
  Opened NewHandle(uint64_t ino, uint64_t handle_id, uint32_t flags, const pb::Attr& attr,
                   std::shared_ptr<InodeState>& st);
  std::shared_ptr<InodeState> FindState(uint64_t ino);
  bool HeldOpen(uint64_t ino);  // a handle of this mount has it open
  void MaybeDropState(uint64_t ino);
  // `attr` as a meta call returned it; `before`: StampBeforeCall() taken
  // before that call. A name change that overlapped the call may be missing
  // from its link count; and meta may have made it before one of this
  // mount's own writes or flushes of the file ended, so its size is taken
  // only when none ended since `before` (else it may be older than ours: a
  // lock's reply once cut the size of SQLite's -shm file to what it was
  // before this mount's own flush, and mappings of it died of SIGBUS).
  // Returns false when the size was not taken for that reason.
  bool LearnAttr(InodeState& st, const pb::Attr& attr, const AttrStamp& before) REQUIRES(st.mu);
  // This mount changed the data or size of the file (see LearnAttr).
  void NoteDataChange(InodeState& st) REQUIRES(st.mu) { st.data_changed_at = ++data_changes_; }
  // The attributes to answer for a chmod/chown this mount may answer itself
  // (see SetAttr), or nullopt when it must ask meta.
  // `perm_bits_only`: SET_MODE sets the 0777 bits only, keeping the rest.
  // Root's setxattr of an access ACL equal to mode bits on an open file this
  // mount made (cp -a keeps modes that way), answered as the chmod it is
  // and carried; false when it must go to meta.
  bool CarryAccessAcl(const Caller& c, uint64_t ino, const std::string& value, InodeState& st);
  std::optional<pb::Attr> CarriableSetAttr(const Caller& c, const pb::SetAttrRequest& request, InodeState& st,
                                           bool perm_bits_only = false);
  // Before a carried answer: reads the attributes from meta when this mount
  // changed a name since `st` learned them (root, the file open only).
  void FreshenForCarry(const Caller& c, uint64_t ino, InodeState& st);
  // Buffered data written to W replicas, waiting for meta to commit it.
  struct PendingCommit {
    pb::CommitWriteRequest request;
    std::map<uint64_t, pb::ChunkLocation> new_locations;  // by chunk index
  };
  // Writes out and commits the buffered data (a no-op when there is none).
  common::Status FlushLocked(uint64_t ino, InodeState& st) REQUIRES(st.io_mu);
  // The first half of a flush: the buffered data to the chunkservers. Nothing
  // buffered: nullopt. On failure the data is back in the buffer.
  common::Result<std::optional<PendingCommit>> WriteOutLocked(uint64_t ino, InodeState& st) REQUIRES(st.io_mu);
  // Moves st.in_flight, a run of O_APPEND writes, to the end of the file as
  // meta has it, and the run of appends buffered after it along: another
  // mount may have appended since this one learned the size. See the .cc.
  common::Status PlaceAppends(uint64_t ino, uint64_t handle_id, InodeState& st, PendingCommit& pending)
      REQUIRES(st.io_mu);
  // The offset an O_APPEND write goes at.
  static uint64_t AppendOffset(const InodeState& st) REQUIRES(st.mu);
  // The second half: records meta's answer to the commit (`committed`); a
  // failure puts the data back in the buffer for the next flush.
  common::Status FinishFlushLocked(uint64_t ino, InodeState& st, const PendingCommit& pending,
                                   const common::Result<pb::Attr>& committed) REQUIRES(st.io_mu);
  // The commit of chunk `chunk_index` as bytes meta keeps, when it may be
  // (see the header comment): `ranges` over ls.in_meta, which it updates.
  // nullopt: the chunk goes to the chunkservers.
  std::optional<pb::ChunkCommit> InlineCommit(uint64_t chunk_index, const std::vector<ChunkClient::Range>& ranges,
                                              uint64_t file_size, LeaseState& ls);
  // A LeaseState for `lease`, just granted to `handle_id`.
  static LeaseState NewLeaseState(pb::ChunkLease lease, uint64_t handle_id);
  common::Result<LeaseState*> LeaseFor(uint64_t ino, uint64_t handle_id, uint64_t chunk_index, InodeState& st)
      REQUIRES(st.io_mu);
  // Records meta's locations of chunks [first, last]: those it does not
  // name are holes (chunk_id 0, read as zeros).
  void LearnLocations(InodeState& st, uint64_t first, uint64_t last, const pb::GetChunkLocationsReply& reply)
      REQUIRES(st.mu);
  common::Status EnsureLocations(uint64_t ino, InodeState& st, uint64_t offset, uint64_t length);
  // Bytes of `loc` into `out`, through the page cache under `stamp`
  // (InodeState::cache_stamp, taken before the read began). Blocks the
  // cache lacks are fetched whole, up to `fetch_to`, and cached; with
  // `exact`, only the bytes asked for are fetched, and not cached.
  common::Status ReadChunkRange(const pb::ChunkLocation& loc, uint64_t stamp, uint64_t offset_in_chunk,
                                uint64_t length, uint64_t fetch_to, bool exact, char* out);
  void DropCachedData(InodeState& st);

  std::unique_ptr<MetaClient> meta_;
  const FileSystemOptions options_;
  PageCache cache_;
  ChunkClient chunks_;
  // Grows at each of this mount's own changes of any file's data or size
  // (InodeState::data_changed_at, AttrStamp).
  std::atomic<uint64_t> data_changes_{0};
  std::atomic<uint64_t> appends_moved_{0};

  // Fetches file bytes [from, to) into the page cache in the background
  // (sequential readahead one window ahead of the reader). Requires st->mu held.
  void StartPrefetch(uint64_t ino, const std::shared_ptr<InodeState>& st, uint64_t from, uint64_t to);
  // Waits (up to io_timeout) until no readahead of [from, to) is in flight.
  void AwaitPrefetch(InodeState& st, uint64_t from, uint64_t to);
  // Runs `task` on a detached thread the destructor waits for.
  void RunInBackground(std::function<void()> task);
  // Starts a write-behind flush of `st` unless one runs. Requires st.mu held.
  void StartBackgroundFlush(uint64_t ino, const std::shared_ptr<InodeState>& st) REQUIRES(st->mu);
  // Every flush_after_ms / 2: starts a background flush of each file whose
  // buffer has held data for flush_after_ms, and forgets clean ones.
  void FlushAgedLoop();

  std::mutex mu_;  // guards inodes_ and handles_; before any InodeState::mu
  std::unordered_map<uint64_t, std::shared_ptr<InodeState>> inodes_ GUARDED_BY(mu_);
  // Open handles meta logged (handle_id != 0), for RecoverSession.
  std::unordered_map<uint64_t, FileHandle*> handles_ GUARDED_BY(mu_);
  std::mutex resume_mu_;  // one RecoverSession at a time; before mu_
  std::mutex dirty_mu_;  // guards dirty_ and stopping_; a leaf lock (taken under InodeState::mu)
  std::condition_variable dirty_cv_;  // with dirty_mu_: wakes FlushAgedLoop to stop
  std::unordered_map<uint64_t, std::weak_ptr<InodeState>> dirty_ GUARDED_BY(dirty_mu_);  // buffers holding data
  bool stopping_ GUARDED_BY(dirty_mu_) = false;
  std::thread aged_flusher_;
  std::mutex tasks_mu_;  // guards background_tasks_; a leaf lock (taken under InodeState::mu)
  int background_tasks_ GUARDED_BY(tasks_mu_) = 0;  // running write-behind and readahead threads
  std::condition_variable background_done_cv_;  // with tasks_mu_: the destructor waits for them
};

template <typename Call>
auto FileSystem::WithSession(Call call) -> decltype(call()) {
  auto result = call();
  if (result.status().code() == common::StatusCode::kStale && RecoverSession()) result = call();
  return result;
}

template <typename Call>
auto FileSystem::WithHandle(const FileHandle& handle, Call call) -> decltype(call()) {
  auto result = call();
  if (result.status().code() != common::StatusCode::kFailedPrecondition || !RecoverSession()) return result;
  if (handle.lost) return LostHandleError();
  return call();
}

}  // namespace dfs::fuse
