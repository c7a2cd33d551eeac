// MetaClient: the FUSE client's view of the metadata service.
//
// Owns the mount's session (OpenSession at Connect, KeepAlive from a
// background thread, CloseSession at shutdown) and a LeaderChannel that rides
// through leader changes. Every mutation carries (client_id, request_id);
// the request object is reused across retries so meta applies it once.
//
// Results: a filesystem outcome (ENOENT ...) comes back as a non-OK Status
// with that code; a call that could not be completed within the retry time
// comes back as Unavailable / DeadlineExceeded (EIO at the FUSE edge).
// Generated proto types appear here because this is a client edge; the
// FUSE adapter converts them to struct stat.
//
// Thread-safety: every method may be called concurrently. Calls block.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/leader_channel.h"
#include "common/result.h"
#include "common/stub_cache.h"
#include "fuse/client/acl_hints.h"
#include "fuse/client/dir_attr_cache.h"
#include "fuse/client/dir_listings.h"
#include "fuse/client/read_pin_set.h"
#include "fuse/client/remote_changes.h"
#include "fuse/client/attr_overlay.h"
#include "fuse/client/call_streams.h"
#include "fuse/client/caller.h"
#include "fuse/client/dir_prefetch.h"
#include "fuse/client/carry_queue.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::fuse {

class MetaClient {
 public:
  struct Options {
    std::string source;                 // host:port[,host:port...]
    int64_t retry_timeout_ms = 60'000;  // give up (EIO) after this long without a leader
    int64_t attempt_timeout_ms = 10'000;
    std::string mount_point;
    // How long a directory's attributes from our own mutation's reply may
    // answer a getattr (DirAttrCache); the kernel's attr_timeout. 0: off.
    int64_t dir_attr_ttl_ms = 0;
    // How long a fetched directory listing may answer lookups and getattrs
    // (DirListings): the smaller of the kernel's attr and entry timeouts. 0: off.
    int64_t listing_ttl_ms = 0;
    // How long a release waits for a mutation to carry it before it is sent
    // alone (CarryQueue); also that of a carried chmod/chown.
    int64_t release_delay_ms = 20;
    // Namespace and chunk map calls on CallStreams when meta has them;
    // false: unary calls (mount option meta_streams=off).
    bool call_streams = true;
  };

  // Connects and opens a session. Unavailable with a clear message if no
  // member answers within `connect_timeout_ms`.
  static common::Result<std::unique_ptr<MetaClient>> Connect(const Options& options, int64_t connect_timeout_ms);
  ~MetaClient();  // closes the session (best effort)
  MetaClient(const MetaClient&) = delete;
  MetaClient& operator=(const MetaClient&) = delete;

  uint64_t client_id() const { return client_id_; }

  // Meta ends a session it heard no keep-alive from within its lease (a
  // partition, a paused VM or process): its handles, file locks and write
  // leases go. The mount then asks for it back (FEATURE_RESUME_SESSION).
  //
  // One KeepAlive: false when meta says the session is gone.
  common::Result<bool> KeepAliveOnce();
  // Asks for the same client id again with the handles still open here;
  // returns the handles meta could not restore (their file is gone).
  // FailedPrecondition when meta cannot resume sessions.
  common::Result<std::vector<uint64_t>> ResumeSession(const std::vector<pb::ResumedHandle>& handles);
  // Called from the keep-alive thread when meta says the session is gone
  // (FileSystem resumes it). Cleared (nullptr) before its owner goes; a
  // call in progress finishes first.
  void SetSessionLostHandler(std::function<void()> handler);
  // Grows with every mutation this client sends (its request ids): equal
  // values mean this client changed nothing in between.
  uint64_t mutation_count() const { return next_request_id_.load(); }
  // Other clients' changes heard so far, by directory and inode: a stamp
  // taken before a call (Now) says later whether a notice of an inode came
  // since (Current).
  const RemoteChanges& remote_changes() const { return remote_; }
  // Another client changed these (ChangeWatcher): this mount's listings
  // and held pages of the named directories, and their entries of the named
  // inodes, fetched before answer nothing more (RemoteChanges), nor do its
  // directory attributes and ACL answers of those inodes.
  void NoteRemoteChanges(const pb::ChangeNotices& notices);
  // Grows when this client starts and again when it ends an unlink, rename
  // or link: the calls that change a file's link count through another of
  // its names. Attributes learned while it stayed equal have the count.
  uint64_t name_change_count() const { return name_changes_.load(); }
  uint64_t root_ino() const { return root_ino_; }
  // Whether the meta this client opened its session with understands `f`
  // (pb::MetaFeature); metas are upgraded before clients.
  bool Supports(pb::MetaFeature f) const { return (features_ & f) != 0; }
  // The largest file meta keeps the bytes of in its database (FileSystem's
  // inline commits); 0: none.
  uint64_t inline_max_bytes() const { return Supports(pb::FEATURE_INLINE_DATA) ? inline_max_bytes_ : 0; }
  // Directories as our own mutations left them; every namespace mutation
  // below keeps it right (refreshes or drops what it changed).
  const DirAttrCache& dir_attrs() const { return dir_attrs_; }
  // Inodes meta said have no access ACL: GetXattr answers the kernel's ACL
  // fetch for them without asking (acl_hints.h).
  const AclHints& acl_hints() const { return acl_hints_; }

  common::Result<pb::Attr> Lookup(const Caller& c, uint64_t parent, const std::string& name);
  common::Result<pb::Attr> GetAttr(const Caller& c, uint64_t ino);
  // Lookups and getattrs answered from a listing of a directory this mount
  // looks names up in one by one (dir_listings.h); nullopt: ask meta.
  std::optional<DirListings::Hit> ListedLookup(uint64_t parent, const std::string& name);
  std::optional<DirListings::Hit> ListedAttr(uint64_t ino);
  // `ino` has no name left: no listing may answer for it.
  void DropListingsOf(uint64_t ino) {
    listings_.DropListingsOf(ino);
    prefetch_->DropPagesNaming(ino);
  }
  // After Lookup found a name in `parent`: fetches the directory's listing
  // when enough lookups there went to meta (DirListings::NoteLookup). Blocks
  // for the fetch (a few ReadDirPlus calls): call it after replying.
  void MaybeFetchListing(const Caller& c, uint64_t parent);
  common::Result<pb::Attr> SetAttr(const Caller& c, pb::SetAttrRequest request);
  common::Result<pb::Attr> Mknod(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                 uint64_t rdev, uint32_t umask);
  common::Result<pb::Attr> Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                 uint32_t umask);
  // With `lease_first_chunk`, a file this call creates for writing comes
  // with the write lease of chunk 0 in the reply (CreateReply.lease).
  common::Result<pb::CreateReply> Create(const Caller& c, uint64_t parent, const std::string& name,
                                         uint32_t mode, uint32_t flags, uint32_t umask,
                                         bool lease_first_chunk = false);
  common::Status Unlink(const Caller& c, uint64_t parent, const std::string& name);
  common::Status Rmdir(const Caller& c, uint64_t parent, const std::string& name);
  common::Result<pb::Attr> Symlink(const Caller& c, uint64_t parent, const std::string& name,
                                   const std::string& target);
  common::Result<std::string> Readlink(const Caller& c, uint64_t ino);
  common::Result<pb::Attr> Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name);
  common::Status Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                        const std::string& new_name, uint32_t flags);
  // A page of `ino`'s listing from `cookie`, at most `max_entries`, from meta.
  common::Result<pb::ReadDirReply> ReadDir(const Caller& c, uint64_t ino, uint64_t cookie, uint32_t max_entries,
                                           bool plus);
  // The same for the kernel's buffer of about `want` entries, answered from
  // a page held by DirPrefetch when one may be used: then `*valid_s` is set
  // to how long the kernel may keep its entries (else left alone). A plus
  // page from meta asks for more than `want`, and the rest is held for the
  // next call. May hold more entries than `want`.
  common::Result<pb::ReadDirReply> ReadDirForKernel(const Caller& c, uint64_t ino, uint64_t cookie, uint32_t want,
                                                    bool plus, double* valid_s);
  // A page of `dir`'s listing went to the kernel (DirPrefetch::Listed).
  void NoteListed(const Caller& c, uint64_t dir, const pb::ReadDirReply& page);
  DirPrefetch::Stats prefetch_stats() const;
  DirListings::Stats listing_stats() const { return listings_.stats(); }
  // A read-only open (no O_TRUNC) of a meta with FEATURE_LAZY_READ_OPEN is
  // pinned here instead of in meta's log: the reply's handle_id is then 0,
  // and its Release only drops the pin.
  common::Result<pb::OpenReply> Open(const Caller& c, uint64_t ino, uint32_t flags);
  // `unwritten_chunk_ids`: chunks leased to this handle that no chunkserver
  // got a byte of (meta forgets them; see ReleaseRequest). Queued when meta
  // takes releases in other requests (FEATURE_RELEASES_IN_CONTEXT): then it
  // returns OK at once, and the release reaches meta with this client's next
  // mutation, or on its own after Options.release_delay_ms.
  common::Status Release(uint64_t ino, uint64_t handle_id, const std::vector<uint64_t>& unwritten_chunk_ids = {});
  // Whether a chmod/chown can be answered now and carried to meta later
  // (CarryQueue): meta understands FEATURE_SET_ATTRS_IN_CONTEXT, the queue
  // has room, and the client is not stopping. The caller checks the rest
  // (FileSystem::SetAttr: root, an open file).
  bool CanCarrySetAttr() const;
  // Queues `request` (mode/uid/gid/ctime bits only) for meta, and lays
  // `answered` (what the caller answered) over this client's reads of the
  // inode until meta has applied it (AttrOverlay).
  void CarrySetAttr(const Caller& c, pb::SetAttrRequest request, const pb::Attr& answered);
  // Returns once meta has applied every carried change of `ino`, sending
  // them now if they are still queued: before an fsync answers, and before
  // a call that reads or changes what they changed.
  common::Status SettleCarried(uint64_t ino);
  common::Result<pb::StatfsReply> Statfs(const Caller& c);
  common::Status SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                          uint32_t flags);
  common::Result<std::string> GetXattr(const Caller& c, uint64_t ino, const std::string& name);
  common::Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino);
  common::Status RemoveXattr(const Caller& c, uint64_t ino, const std::string& name);
  common::Status Access(const Caller& c, uint64_t ino, uint32_t mask);
  common::Result<pb::Attr> Fallocate(const Caller& c, uint64_t ino, uint64_t handle_id, uint32_t mode,
                                     uint64_t offset, uint64_t length);
  // File locks (meta.proto SetLockRequest; only with FEATURE_FILE_LOCKS).
  // SetLock: Aborted (EAGAIN) while another owner's lock is in the way;
  // a granted lock answers the file's attributes, an unlock nothing.
  common::Result<std::optional<pb::Attr>> SetLock(pb::SetLockRequest request);
  common::Result<pb::GetLockReply> GetLock(pb::GetLockRequest request);

  common::Result<pb::GetChunkLocationsReply> GetChunkLocations(uint64_t ino, uint64_t offset, uint64_t length);
  common::Result<pb::ChunkLease> LeaseChunk(uint64_t ino, uint64_t handle_id, uint64_t chunk_index);
  common::Result<pb::Attr> CommitWrite(pb::CommitWriteRequest request);
  void ReportBadReplica(uint64_t chunk_id, uint64_t version, uint64_t node_id, const std::string& reason);

 private:
  static constexpr int64_t kQuickCallMs = 3'000;
  MetaClient(std::unique_ptr<common::LeaderChannel> channel, Options options);

  // What a request is to meta and to this mount's cached answers.
  enum class Kind {
    kRead,    // no request id
    kChange,  // a mutation a later read may show (names, attributes)
    // A mutation no read shows differently: releases, a carrier (what it
    // carries AttrOverlay shows already), a lazy open.
    kQuiet,
  };
  // Fills ctx with the session, a fresh request id (mutations), the caller,
  // and (mutations, unless `carry` is false) the queued releases and
  // attribute changes it can carry. `carry` false: meta may answer the
  // request from its state without applying it (a lazy open), so it must
  // carry nothing.
  void FillContext(pb::RequestContext* ctx, const Caller* caller, Kind kind, bool carry = true);

  // Runs `method` through the leader channel, on a call stream when the
  // request is one a stream carries (CallStreamed) and meta has them.
  // Returns the call's failure (Unavailable...) or OK; the reply's FsStatus
  // is checked by the caller.
  template <typename Request, typename Reply>
  using Method = grpc::Status (pb::MetaService::Stub::*)(grpc::ClientContext*, const Request&, Reply*);
  template <typename Request, typename Reply>
  common::Status Invoke(Method<Request, Reply> method, const Request& request, Reply* reply);
  // `method`'s request as a message of a CallStreams stream through the
  // leader channel (its retries and leader hints as for unary calls), or as
  // the unary call when meta has no streams, refuses one, or does not know
  // the request.
  template <typename Request, typename Reply>
  grpc::Status CallStreamed(Method<Request, Reply> method, const Request& request, Reply* reply);
  // Runs `method` through `channel` (channel_ or quick_channel_) with its
  // retries; the reply is cleared before each attempt.
  template <typename Request, typename Reply>
  grpc::Status CallOn(common::LeaderChannel& channel, Method<Request, Reply> method, const Request& request,
                      Reply* reply);

  // Meta's newer word on an inode, for what holds older ones.
  void Refreshed(const pb::Attr& attr);
  // A listing page from meta: this mount's changes since `epoch` laid over
  // its attributes, which the caches then learn.
  void LearnListed(pb::ReadDirReply* reply, uint64_t epoch);
  // DirPrefetch's fetch: the first page of `dir`, through quick_channel_.
  std::optional<DirPrefetch::Fetched> PrefetchPage(const Caller& c, uint64_t dir);
  void KeepAliveLoop();
  // Sends what nobody carried in time (CarryQueue::WaitOverdue).
  void CarryLoop();
  common::Status SendRelease(pb::ReleaseRequest request);
  // Sends what is queued, in a SetAttr of `ino` that sets nothing itself.
  common::Status SendCarrier(uint64_t ino);
  // Carried changes meta has applied: no longer laid over reads.
  void AckCarried(const pb::RequestContext& ctx);
  // After a mutation in directory `ino`: its attributes as the reply gives
  // them (nullptr: unknown, forget what we had).
  void LearnDir(uint64_t ino, const pb::Attr* attr);
  uint64_t ChangesStarted();
  // ChangesStarted() while none is in flight; else nullopt.
  std::optional<uint64_t> QuietStamp();

  std::unique_ptr<common::LeaderChannel> channel_;
  // For calls that must not wait out retry_timeout: statfs (df and umount(8)
  // ask it of every mount; a dead cluster must not hang them) and the
  // CloseSession at unmount. kQuickCallMs over all attempts.
  std::unique_ptr<common::LeaderChannel> quick_channel_;
  common::StubCache<pb::MetaService> stubs_;  // of both channels' members
  CallStreams streams_;                       // channel_'s, for CallStreamed
  std::mutex statfs_mu_;
  std::optional<pb::StatfsReply> last_statfs_;  // guarded by statfs_mu_
  const Options options_;
  uint64_t client_id_ = 0;
  uint64_t root_ino_ = 1;
  uint32_t features_ = 0;
  uint64_t inline_max_bytes_ = 0;
  DirAttrCache dir_attrs_;
  AclHints acl_hints_;
  uint32_t lease_ms_ = 30'000;
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> name_changes_{0};  // name_change_count()
  // Counts one name change for its lifetime: on construction and again on
  // destruction, so attributes learned while it runs count as older.
  struct NameChange {
    explicit NameChange(std::atomic<uint64_t>& n) : n_(n) { n_.fetch_add(1); }
    ~NameChange() { n_.fetch_add(1); }
    NameChange(const NameChange&) = delete;
    NameChange& operator=(const NameChange&) = delete;
    std::atomic<uint64_t>& n_;
  };
  // Changes this mount started (Kind::kChange), and the request
  // ids of those whose call has not returned: a listing is fetched only
  // while none is, and used while the count has not moved since.
  std::mutex changes_mu_;
  uint64_t changes_started_ GUARDED_BY(changes_mu_) = 0;
  std::unordered_set<uint64_t> changes_in_flight_ GUARDED_BY(changes_mu_);
  RemoteChanges remote_;  // before listings_ and prefetch_, which hold it
  DirListings listings_;
  // Targets of the symlinks meta's attributes named (Attr.symlink_target).
  // A symlink never changes, so readlink answers from here, with no round
  // trip in which another mount could replace the link and meta free it
  // (ESTALE after a deploy's symlink flip). At most kMaxTargetBytes; full,
  // it starts over.
  static constexpr size_t kMaxTargetBytes = 4 << 20;
  std::mutex targets_mu_;
  std::unordered_map<uint64_t, std::string> targets_ GUARDED_BY(targets_mu_);
  size_t target_bytes_ GUARDED_BY(targets_mu_) = 0;

  std::mutex mu_;  // guards stopping_; used with stop_cv_
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread keepalive_thread_;  // renews the session lease, reports read_pins_
  std::mutex lost_handler_mu_;  // held while the handler runs
  std::function<void()> lost_handler_ GUARDED_BY(lost_handler_mu_);
  ReadPinSet read_pins_;
  std::atomic<uint64_t> pin_epoch_{0};  // of the newest KeepAliveReply
  CarryQueue carried_;
  AttrOverlay overlay_;
  std::thread carry_thread_;  // CarryLoop
  // Made once quick_channel_ exists (its fetches use it: a prefetch must
  // not wait out retry_timeout); reset first in the destructor.
  std::unique_ptr<DirPrefetch> prefetch_;
};

}  // namespace dfs::fuse
