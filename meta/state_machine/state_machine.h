// StateMachine: the metadata of one dfs cluster (namespace, chunk map,
// chunkservers, sessions) in one SQLite database, changed only by Apply.
//
// Apply takes one serialized pb::Entry (meta_entry.proto) - the unit a Raft
// log entry will carry - and applies its Ops in order inside one SQLite
// transaction: one commit (one WAL fsync) per Entry, which is what makes group
// commit pay. It is deterministic: the result depends only on the previous
// database content and the Entry bytes (times and placement are stamped in
// the Ops; ids come from counters in the database). meta-raft calls it as the
// libraft FSM apply, on its loop thread.
//
// Exactly once: an Op with a non-zero (client_id, request_id) whose pair is in
// the `requests` table is not applied again; its remembered OpResult is
// returned. Each client keeps its newest kRequestWindow results (up to 63
// more between trims); a retry older than that is applied again, and a
// session's results go when it closes or expires.
//
// Durability: journal_mode=WAL with synchronous=FULL: every Apply's COMMIT
// fsyncs the WAL before Apply returns, so an acknowledged mutation survives
// power loss. (NORMAL would only lose the last transactions on power loss, not
// on a process crash; FULL costs one fsync per Entry, which group commit
// amortizes - see meta_bench.) The WAL is copied back into the database file
// by a thread of its own (WalCheckpointer), never inside Apply.
//
// Reads (Lookup, GetAttr, ReadDir ...) run on a pool of read-only connections
// concurrently with Apply; each read sees the state after some committed Apply
// (WAL snapshot isolation), never a partial one.
//
// Thread-safety: Apply from one thread at a time (the applier or the Raft loop
// thread); read methods from any number of threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "meta/state_machine/db.h"
#include "meta/state_machine/wal_checkpointer.h"
#include "proto/meta.pb.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

class StateMachine {
 public:
  struct Options {
    const char* synchronous = "FULL";  // "FULL" or "NORMAL" (tests and benchmarks only)
    size_t read_connections = 16;      // pool size; more concurrent readers wait
  };

  // Opens or creates the database file `path`. Unavailable if it cannot be
  // opened; FailedPrecondition if its schema is newer than this binary.
  static common::Result<std::unique_ptr<StateMachine>> Open(const std::string& path, const Options& options);
  static common::Result<std::unique_ptr<StateMachine>> Open(const std::string& path) {
    return Open(path, Options());
  }
  ~StateMachine();
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // Applies one serialized Entry; returns one OpResult per Op, in order.
  // InvalidArgument (and no change) if the bytes are not an Entry of a known
  // format. An Op of an unknown kind answers UNIMPLEMENTED. Blocks for the
  // commit (fsync).
  common::Result<std::vector<pb::OpResult>> Apply(std::string_view entry_bytes);
  // The same for an already parsed Entry; a non-zero `index` is recorded as
  // the applied Raft log index in the same transaction.
  std::vector<pb::OpResult> ApplyEntry(const pb::Entry& entry, uint64_t index = 0);

  // ---- Raft (meta/raft): the FSM's view of the log and its snapshots.
  // Applies the Entry at Raft log index `index` (> 0). An index at or below
  // AppliedIndex() was applied before a restart (Raft replays the log after
  // its last snapshot): nothing changes and the result is empty, since nobody
  // waits for it. Bytes that do not parse consume the index too (so every
  // replica moves past them alike) and answer InvalidArgument.
  common::Result<std::vector<pb::OpResult>> ApplyAt(std::string_view entry_bytes, uint64_t index);
  // The Raft index of the last Entry applied by ApplyAt (kept in the
  // database, so it survives restarts and travels inside snapshots).
  uint64_t AppliedIndex() const { return applied_index_; }
  // A consistent image of the whole database file (sqlite3_serialize: the
  // database is copied into memory, ~0.3 s per 250 MB here), in two steps so
  // that the copy need not stop the applier: PinImage, on the applier's
  // thread between two entries, opens a read transaction on a connection of
  // its own that sees exactly what is applied at that moment; Take, on any
  // thread, copies that state however many entries were applied since.
  struct ImageDeleter {
    void operator()(unsigned char* p) const;
  };
  struct Image {
    std::unique_ptr<unsigned char, ImageDeleter> bytes;
    size_t size = 0;
  };
  class ImagePin {
   public:
    // The applied index recorded in the pinned state (and so in the image).
    uint64_t applied_index() const { return applied_index_; }
    // The image; ends the pin (call once).
    common::Result<Image> Take();

   private:
    friend class StateMachine;  // PinImage opens the read transaction a pin holds
    ImagePin(std::unique_ptr<Db> db, uint64_t applied_index) : db_(std::move(db)), applied_index_(applied_index) {}
    std::unique_ptr<Db> db_;
    uint64_t applied_index_;
  };
  common::Result<ImagePin> PinImage();
  // PinImage and Take at once.
  common::Result<Image> Serialize();
  // Makes the database equal to `image` (a Serialize() result, possibly from
  // another replica), unless this database has already applied at least as
  // far as the image: Raft restores its newest snapshot on every start, and a
  // database that is newer must not be rolled back. InvalidArgument if the
  // image is not a dfs metadata database. Call on the applier's thread.
  common::Status Restore(std::string_view image);
  // Every table's rows in primary-key order as text: equal dumps mean equal
  // metadata (tests compare replicas with it).
  std::string CanonicalDump();
  // The same for the database file at `path`, opened read-only (it may be in
  // use by a running dfs-meta: the dump is one consistent read transaction),
  // with the applied Raft index of that same state in *applied_index.
  static common::Result<std::string> DumpFile(const std::string& path, uint64_t* applied_index);

  struct MemberRow {
    uint64_t raft_id = 0;
    std::string raft_address;
    std::string rpc_address;
  };
  std::vector<MemberRow> Members();

  // ---- Reads: filesystem outcomes go into the reply's status.
  void Lookup(const pb::LookupRequest& req, pb::EntryReply* reply);
  void GetAttr(const pb::GetAttrRequest& req, pb::AttrReply* reply);
  void Readlink(const pb::ReadlinkRequest& req, pb::ReadlinkReply* reply);
  // Entries after `req.cookie` in cookie order, at most max_entries (0 = 1024,
  // capped at 4096). `plus` adds each entry's attributes.
  void ReadDir(const pb::ReadDirRequest& req, bool plus, pb::ReadDirReply* reply);
  void Access(const pb::AccessRequest& req, pb::StatusReply* reply);
  void GetXattr(const pb::GetXattrRequest& req, pb::GetXattrReply* reply);
  void ListXattr(const pb::ListXattrRequest& req, pb::ListXattrReply* reply);
  void GetChunkLocations(const pb::GetChunkLocationsRequest& req, pb::GetChunkLocationsReply* reply);
  // Read-only open (no handle): the permission check only.
  void CheckOpen(const pb::OpenRequest& req, pb::OpenReply* reply);
  // F_GETLK: the first lock of another owner that conflicts (type UNLOCK
  // in the reply when none does).
  void GetLock(const pb::GetLockRequest& req, pb::GetLockReply* reply);
  // Whether SetLock `req` of session `client_id` would be refused by a
  // lock held now (the leader answers it without a log entry), or why the
  // request is bad. Ok: it may be granted, as far as this read sees.
  common::Status TestLock(const pb::SetLockRequest& req, uint64_t client_id);
  // Whether request (client_id, request_id) was applied and its result is
  // still remembered (a retry of it answers that result, changing nothing).
  bool Answered(uint64_t client_id, uint64_t request_id);

  // ---- Reads for the service's housekeeping and administration.
  struct NodeRow {
    uint64_t node_id = 0;
    std::string address;
    std::string state;
    double weight = 1.0;
    uint64_t capacity_bytes = 0;
    uint64_t used_bytes = 0;
  };
  std::vector<NodeRow> Nodes();
  // Up to `limit` garbage chunk versions queued for `node_id`, oldest first.
  // `seq` is the row's number (a Delete command's id; SQLite reuses it once
  // the row is gone).
  struct GarbageRow {
    uint64_t seq = 0;
    pb::ChunkRef ref;
  };
  std::vector<GarbageRow> Garbage(uint64_t node_id, size_t limit);
  struct SessionRow {
    uint64_t client_id = 0;
    bool reports_read_pins = false;  // it may hold files by lazy read opens
    bool operator==(const SessionRow&) const = default;
  };
  // Every open session, by client id.
  std::vector<SessionRow> Sessions();
  // Up to `limit` orphans (schema.h) that no handle holds, lowest first.
  std::vector<uint64_t> Orphans(size_t limit);
  // Re-replication: chunks whose committed version has fewer replicas on
  // `live` nodes (those whose copies count) than their file's replication
  // factor. Scans at most `scan`
  // chunks in id order after `after` (a cursor, so each pass costs a bounded
  // amount however many chunks there are); *next is where the next pass
  // starts (0 once the scan wrapped). Chunks under an unexpired write lease
  // are skipped: their version is about to change.
  struct RepairCandidate {
    uint64_t chunk_id = 0;
    uint64_t version = 0;
    uint32_t want = 0;                  // the file's replication factor
    uint64_t ino = 0, index = 0;        // the file and the chunk's place in it
    uint64_t place_key = 0;             // ring key it was placed by (0: unknown; see schema.h)
    std::vector<uint64_t> live_holders;  // nodes in `live` with the committed version
    std::vector<uint64_t> other_holders;  // the rest with it (dead, or not counted)
    // Nodes with a copy of this chunk queued for deletion: not a target
    // until the delete is confirmed, or the delete could remove the new copy.
    std::vector<uint64_t> deleting;
  };
  std::vector<RepairCandidate> UnderReplicated(const std::vector<uint64_t>& live, uint64_t after, size_t scan,
                                               int64_t now_unix_ms, uint64_t* next);
  // The same scan, every chunk not under a write lease: the leader also
  // moves misplaced copies and trims surplus ones (service/placement_plan.h).
  std::vector<RepairCandidate> ScanReplicas(const std::vector<uint64_t>& live, uint64_t after, size_t scan,
                                            int64_t now_unix_ms, uint64_t* next);
  // How many chunks are under-replicated now (a full scan: for status).
  uint64_t CountUnderReplicated(const std::vector<uint64_t>& live, int64_t now_unix_ms);
  struct Counts {
    uint64_t inodes = 0;
    uint64_t files = 0;
    uint64_t chunks = 0;
    uint64_t inline_chunks = 0;  // of `chunks`, kept in meta (chunk_data)
    uint64_t inline_bytes = 0;
  };
  Counts CountAll();

 private:
  // A pooled read connection, returned to the pool by the destructor. It
  // holds one read transaction from construction to destruction: every
  // statement of a read sees the same committed state. (Without it each
  // statement took its own snapshot: a Lookup found the name, then not the
  // inode a rename over it had just freed, and answered "no such entry" for
  // a name that always existed.)
  class ReadConnection {
   public:
    ReadConnection(StateMachine* owner, std::unique_ptr<Db> db);
    ~ReadConnection();
    ReadConnection(ReadConnection&&) = default;
    ReadConnection& operator=(ReadConnection&&) = delete;
    Db& operator*() { return *db_; }

   private:
    StateMachine* owner_;
    std::unique_ptr<Db> db_;
  };
  StateMachine(std::unique_ptr<Db> writer, std::unique_ptr<WalCheckpointer> checkpointer, std::string path,
               Options options);
  // Borrows a read connection (blocks while all are in use).
  ReadConnection Borrow();

  std::unique_ptr<Db> writer_;  // owned by whoever calls Apply
  std::unique_ptr<WalCheckpointer> checkpointer_;  // hooks writer_, so is destroyed before it
  uint64_t applied_index_ = 0;  // mirrors counters.applied_index; applier only
  const std::string path_;
  const Options options_;
  std::mutex pool_mu_;  // guards pool_ and opened_; leaf lock
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Db>> pool_;
  size_t opened_ = 0;
};

}  // namespace dfs::meta
