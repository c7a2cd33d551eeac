// The chunk map: write leases (one writer per chunk, version bump), commits,
// truncation and fallocate. Garbage (chunk versions no file references) is
// queued per replica in `garbage` for heartbeat Delete commands.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {

// A live write lease its holder has not been granted, renewed or committed
// under for this long may go to another client (GrantLease). Part of the
// replicated rules: every member must agree on it.
constexpr int64_t kLeaseIdleMs = 2'000;

struct ChunkRow {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  uint64_t length = 0;
  std::optional<std::string> data;  // kept in meta (chunk_data), not on chunkservers
};

std::optional<ChunkRow> LoadChunk(Db& db, uint64_t ino, uint64_t idx) {
  Stmt stmt = db.Prepare(
      "SELECT c.chunk_id, c.version, c.length, d.data FROM chunks c LEFT JOIN chunk_data d ON d.chunk_id=c.chunk_id "
      "WHERE c.ino=? AND c.idx=?");
  stmt.BindU(1, ino).BindU(2, idx);
  if (!stmt.Step()) return std::nullopt;
  ChunkRow row{stmt.UInt(0), stmt.UInt(1), stmt.UInt(2), std::nullopt};
  if (!stmt.IsNull(3)) row.data = stmt.Blob(3);
  return row;
}

// Chunkservers `placement` suggests for a chunk of `inode` that none holds.
void PlaceReplicas(OpContext& ctx, const Inode& inode, uint64_t chunk_id) {
  size_t r = std::max<size_t>(1, inode.replicas);
  for (int i = 0; i < ctx.op.placement_size() && static_cast<size_t>(i) < r; ++i) {
    Stmt ins = ctx.db.Prepare("INSERT OR IGNORE INTO replicas(chunk_id, node_id, version) VALUES(?,?,0)");
    ins.BindU(1, chunk_id).BindU(2, ctx.op.placement(i));
    ins.Run();
  }
}

// The handle must be this client's, on this inode, open for writing.
Status CheckWriteHandle(OpContext& ctx, uint64_t handle_id, uint64_t ino) {
  Stmt stmt = ctx.db.Prepare("SELECT flags FROM handles WHERE handle_id=? AND client_id=? AND ino=?");
  stmt.BindU(1, handle_id).BindU(2, ctx.op.client_id()).BindU(3, ino);
  if (!stmt.Step()) return Status(StatusCode::kFailedPrecondition, "no such open handle");
  if (!(OpenAccessMask(static_cast<uint32_t>(stmt.Int(0))) & kMayWrite)) {
    return Status(StatusCode::kPermissionDenied, "handle not open for writing");
  }
  return Status::Ok();
}

}  // namespace

Status LeaseChunk(OpContext& ctx, const pb::LeaseChunkOp& op, pb::OpResult* result) {
  const pb::LeaseChunkRequest& req = op.request();
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (inode->IsDir()) return Status(StatusCode::kIsADirectory, "is a directory");
  if (!inode->IsReg()) return Status(StatusCode::kInvalidArgument, "not a regular file");
  if (req.chunk_index() >= common::kMaxFileSizeBytes / common::kChunkSizeBytes) {  // no overflow
    return Status(StatusCode::kOutOfRange, "chunk index beyond the maximum file size");
  }
  RETURN_IF_ERROR(CheckWriteHandle(ctx, req.handle_id(), inode->ino));
  return GrantLease(ctx, *inode, req.handle_id(), req.chunk_index(), op.lease_expires_unix_ms(),
                    result->mutable_lease());
}

Status GrantLease(OpContext& ctx, const Inode& inode, uint64_t handle_id, uint64_t chunk_index, int64_t expires_ms,
                  pb::ChunkLease* lease) {
  const int64_t now_ms = ctx.now_ns / 1'000'000;
  std::optional<ChunkRow> chunk = LoadChunk(ctx.db, inode.ino, chunk_index);
  if (!chunk) {
    if (ctx.op.placement().empty()) return Status(StatusCode::kResourceExhausted, "no live chunkservers");
    ChunkRow row;
    row.chunk_id = TakeCounter(ctx.db, "next_chunk_id");
    Stmt stmt = ctx.db.Prepare("INSERT INTO chunks(ino, idx, chunk_id, version, length) VALUES(?,?,?,0,0)");
    stmt.BindU(1, inode.ino).BindU(2, chunk_index).BindU(3, row.chunk_id);
    stmt.Run();
    AddToCounter(ctx.db, "live_chunks", 1);
    if (ctx.op.placement_key() != 0) {
      Stmt key = ctx.db.Prepare("INSERT OR REPLACE INTO chunk_keys(chunk_id, place_key) VALUES(?,?)");
      key.BindU(1, row.chunk_id).BindU(2, ctx.op.placement_key());
      key.Run();
    }
    PlaceReplicas(ctx, inode, row.chunk_id);
    chunk = row;
  } else if (chunk->data) {
    // Kept in meta: no chunkserver holds it. Should the writer outgrow
    // what meta keeps, it writes a new chunk with these bytes first, to the
    // chunkservers placement suggests (the rows of an inline commit go).
    PlaceReplicas(ctx, inode, chunk->chunk_id);
  }
  uint64_t lease_id = 0, version = 0;
  {
    Stmt stmt = ctx.db.Prepare("SELECT lease_id, client_id, handle_id, version, expires_ms FROM leases WHERE chunk_id=?");
    stmt.BindU(1, chunk->chunk_id);
    if (stmt.Step()) {
      const bool live = stmt.Int(4) > now_ms;
      // Idle: not granted, renewed or committed under (which extends it to
      // a full lease again) for kLeaseIdleMs. Another mount's writer may take
      // it: the holder's next flush finds its version refused and writes
      // again under a new lease (fuse FileSystem::FlushLocked).
      const bool idle = live && ctx.op.movable_leases() && expires_ms - now_ms > kLeaseIdleMs &&
                        stmt.Int(4) - now_ms < expires_ms - now_ms - kLeaseIdleMs;
      // A lease is its client's, whichever handle took it: a mount keeps one
      // write buffer per file and flushes it one at a time, through whichever
      // of its writable handles wrote last. (Another mount, even of the same
      // machine, has its own client id and waits.) The row moves to
      // `handle_id` below, so that handle's release ends it.
      const bool mine = stmt.UInt(1) == ctx.op.client_id();
      if (live && !mine && !idle) return Status(StatusCode::kAborted, "chunk is leased by another writer");
      if (live && mine && stmt.UInt(3) > chunk->version) {
        lease_id = stmt.UInt(0);  // renewal: same version, later expiry
        version = stmt.UInt(3);
      } else {
        version = std::max(chunk->version, stmt.UInt(3)) + 1;  // never reuse a version a writer may have begun
      }
    } else {
      version = chunk->version + 1;
    }
  }
  if (lease_id == 0) lease_id = TakeCounter(ctx.db, "next_lease");
  {
    Stmt stmt = ctx.db.Prepare(
        "INSERT OR REPLACE INTO leases(chunk_id, lease_id, client_id, handle_id, version, base_version, expires_ms) "
        "VALUES(?,?,?,?,?,?,?)");
    stmt.BindU(1, chunk->chunk_id).BindU(2, lease_id).BindU(3, ctx.op.client_id()).BindU(4, handle_id);
    stmt.BindU(5, version).BindU(6, chunk->version).Bind(7, expires_ms);
    stmt.Run();
  }
  lease->set_chunk_index(chunk_index);
  lease->set_chunk_id(chunk->chunk_id);
  lease->set_version(version);
  lease->set_base_version(chunk->data ? 0 : chunk->version);
  lease->set_length(chunk->length);
  lease->set_file_size(inode.size);
  if (chunk->data) {
    lease->set_base_inlined(true);
    lease->set_base_data(*chunk->data);
  }
  lease->set_lease_id(lease_id);
  lease->set_lease_expires_unix_ms(expires_ms);
  {
    Stmt stmt = ctx.db.Prepare(
        "SELECT r.node_id, COALESCE(n.address, '') FROM replicas r LEFT JOIN nodes n ON n.node_id = r.node_id "
        "WHERE r.chunk_id=? ORDER BY r.node_id");
    stmt.BindU(1, chunk->chunk_id);
    while (stmt.Step()) {
      pb::ReplicaLocation* loc = lease->add_replicas();
      loc->set_node_id(stmt.UInt(0));
      loc->set_address(stmt.Blob(1));
    }
  }
  lease->set_write_quorum(static_cast<uint32_t>(lease->replicas_size() / 2 + 1));
  return Status::Ok();
}

void ForgetUnwrittenChunk(OpContext& ctx, uint64_t ino, uint64_t handle_id, uint64_t chunk_id) {
  {
    Stmt stmt = ctx.db.Prepare(
        "SELECT 1 FROM chunks c JOIN leases l ON l.chunk_id=c.chunk_id "
        "WHERE c.chunk_id=? AND c.ino=? AND c.version=0 AND l.client_id=? AND l.handle_id=?");
    stmt.BindU(1, chunk_id).BindU(2, ino).BindU(3, ctx.op.client_id()).BindU(4, handle_id);
    if (!stmt.Step()) return;
  }
  for (const char* sql : {"DELETE FROM replicas WHERE chunk_id=?", "DELETE FROM leases WHERE chunk_id=?",
                          "DELETE FROM chunk_keys WHERE chunk_id=?", "DELETE FROM chunks WHERE chunk_id=?"}) {
    Stmt stmt = ctx.db.Prepare(sql);
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  AddToCounter(ctx.db, "live_chunks", -1);
}

Status CommitWrite(OpContext& ctx, const pb::CommitWriteRequest& req, pb::OpResult* result) {
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (!inode->IsReg()) return Status(StatusCode::kInvalidArgument, "not a regular file");
  RETURN_IF_ERROR(CheckWriteHandle(ctx, req.handle_id(), inode->ino));
  if (req.new_size() > common::kMaxFileSizeBytes) return Status(StatusCode::kOutOfRange, "file too large");
  for (const pb::ChunkCommit& commit : req.chunks()) {
    std::optional<ChunkRow> chunk = LoadChunk(ctx.db, inode->ino, commit.chunk_index());
    if (!chunk || chunk->chunk_id != commit.chunk_id()) {
      return Status(StatusCode::kFailedPrecondition, "chunk was replaced or truncated away");
    }
    if (commit.length() > common::kChunkSizeBytes) return Status(StatusCode::kInvalidArgument, "chunk too long");
    if (commit.inlined()) {
      // Whatever the members' --inline-max (what mounts are told), these
      // hold on every member.
      if (commit.chunk_index() != 0 || commit.data().size() != commit.length() ||
          commit.length() > common::kMaxInlineBytes || commit.replica_node_ids_size() != 0) {
        return Status(StatusCode::kInvalidArgument, "an inline chunk is a small chunk 0 with its bytes, held by no node");
      }
    }
    if (commit.version() != chunk->version || ctx.op.movable_leases()) {
      // Versions are never reused, so the lease row naming this version is
      // the lease it was written under. Once another writer took the chunk
      // (a new version), a commit under the old lease is refused even at
      // the committed version: its in-place bytes may have missed the new
      // version's copies.
      Stmt stmt = ctx.db.Prepare("SELECT version FROM leases WHERE chunk_id=?");
      stmt.BindU(1, chunk->chunk_id);
      if (!stmt.Step() || stmt.UInt(0) != commit.version()) {
        return Status(StatusCode::kFailedPrecondition, "stale chunk version: the chunk was leased to another writer");
      }
    }
    // Replicas that did not take this version keep an old one: garbage. They
    // may also hold part of this version (they missed a later write of it):
    // that copy is condemned too, so neither their inventory nor a repair
    // copy that finds "this version already here" makes it count.
    {
      Stmt stmt = ctx.db.Prepare("SELECT node_id, version FROM replicas WHERE chunk_id=?");
      stmt.BindU(1, chunk->chunk_id);
      std::vector<std::pair<uint64_t, uint64_t>> old;
      while (stmt.Step()) old.emplace_back(stmt.UInt(0), stmt.UInt(1));
      for (auto [node, version] : old) {
        auto& ids = commit.replica_node_ids();
        if (std::find(ids.begin(), ids.end(), node) != ids.end()) continue;
        std::vector<uint64_t> condemned;
        if (version != 0) condemned.push_back(version);
        // (An inline commit's writer sent no byte of its version anywhere.)
        if (commit.version() != version && !commit.inlined()) condemned.push_back(commit.version());
        for (uint64_t v : condemned) {
          Stmt ins = ctx.db.Prepare("INSERT INTO garbage(node_id, chunk_id, version) VALUES(?,?,?)");
          ins.BindU(1, node).BindU(2, chunk->chunk_id).BindU(3, v);
          ins.Run();
        }
      }
    }
    {
      Stmt del = ctx.db.Prepare("DELETE FROM replicas WHERE chunk_id=?");
      del.BindU(1, chunk->chunk_id);
      del.Run();
    }
    for (uint64_t node : commit.replica_node_ids()) {
      Stmt ins = ctx.db.Prepare("INSERT OR REPLACE INTO replicas(chunk_id, node_id, version) VALUES(?,?,?)");
      ins.BindU(1, chunk->chunk_id).BindU(2, node).BindU(3, commit.version());
      ins.Run();
    }
    Stmt upd = ctx.db.Prepare("UPDATE chunks SET version=?, length=? WHERE chunk_id=?");
    upd.BindU(1, commit.version()).BindU(2, commit.length()).BindU(3, chunk->chunk_id);
    upd.Run();
    if (commit.has_stored_bytes() && !commit.inlined()) {
      Stmt stored = ctx.db.Prepare("INSERT OR REPLACE INTO chunk_stored(chunk_id, bytes) VALUES(?,?)");
      stored.BindU(1, chunk->chunk_id).BindU(2, commit.stored_bytes());
      stored.Run();
    } else {
      Stmt unknown = ctx.db.Prepare("DELETE FROM chunk_stored WHERE chunk_id=?");
      unknown.BindU(1, chunk->chunk_id);
      unknown.Run();
    }
    if (commit.inlined()) {
      Stmt keep = ctx.db.Prepare("INSERT OR REPLACE INTO chunk_data(chunk_id, data) VALUES(?,?)");
      keep.BindU(1, chunk->chunk_id).Bind(2, std::string_view(commit.data()));
      keep.Run();
      if (!chunk->data) AddToCounter(ctx.db, "inline_chunks", 1);
      AddToCounter(ctx.db, "inline_bytes",
                   static_cast<int64_t>(commit.data().size()) - static_cast<int64_t>(chunk->data ? chunk->data->size() : 0));
    } else if (chunk->data) {
      Stmt moved = ctx.db.Prepare("DELETE FROM chunk_data WHERE chunk_id=?");  // now on the chunkservers
      moved.BindU(1, chunk->chunk_id);
      moved.Run();
      AddToCounter(ctx.db, "inline_chunks", -1);
      AddToCounter(ctx.db, "inline_bytes", -static_cast<int64_t>(chunk->data->size()));
    }
    if (ctx.op.movable_leases() && ctx.op.has_commit_write() && ctx.op.lease_expires_unix_ms() > 0) {
      // The writer is busy: its lease is not idle (see GrantLease). One
      // that ended (released, its session gone) stays ended.
      Stmt busy = ctx.db.Prepare("UPDATE leases SET expires_ms=MAX(expires_ms, ?) WHERE chunk_id=? AND expires_ms>?");
      busy.Bind(1, ctx.op.lease_expires_unix_ms()).BindU(2, chunk->chunk_id).Bind(3, ctx.now_ns / 1'000'000);
      busy.Run();
    }
  }
  inode->size = std::max(inode->size, req.new_size());
  inode->mtime_ns = req.mtime_ns() != 0 ? req.mtime_ns() : ctx.now_ns;
  inode->ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, *inode);
  FillAttr(ctx, *inode, result);
  return Status::Ok();
}

void TruncateFile(OpContext& ctx, Inode& inode, uint64_t new_size) {
  if (new_size < inode.size) {
    const uint64_t keep = common::ChunkCount(new_size);
    std::vector<uint64_t> dropped;
    {
      Stmt stmt = ctx.db.Prepare("SELECT chunk_id FROM chunks WHERE ino=? AND idx>=?");
      stmt.BindU(1, inode.ino).BindU(2, keep);
      while (stmt.Step()) dropped.push_back(stmt.UInt(0));
    }
    for (uint64_t id : dropped) DropChunk(ctx.db, id);
    // A partial last chunk keeps its bytes on the chunkservers past the cut;
    // its recorded length shrinks, and the next writer's lease reports that
    // length so it cuts the new version there (WriteHeader.truncate) before
    // extending it.
    if (common::OffsetInChunk(new_size) != 0) {
      Stmt stmt = ctx.db.Prepare("UPDATE chunks SET length=MIN(length, ?) WHERE ino=? AND idx=?");
      stmt.BindU(1, common::OffsetInChunk(new_size)).BindU(2, inode.ino).BindU(3, keep - 1);
      stmt.Run();
      // A chunk kept in meta is cut for real.
      const uint64_t cut_to = common::OffsetInChunk(new_size);
      uint64_t kept_id = 0, kept_bytes = 0;
      {
        Stmt kept = ctx.db.Prepare(
            "SELECT d.chunk_id, length(d.data) FROM chunks c JOIN chunk_data d ON d.chunk_id=c.chunk_id "
            "WHERE c.ino=? AND c.idx=?");
        kept.BindU(1, inode.ino).BindU(2, keep - 1);
        if (kept.Step()) {
          kept_id = kept.UInt(0);
          kept_bytes = kept.UInt(1);
        }
      }
      if (kept_bytes > cut_to) {
        Stmt cut = ctx.db.Prepare("UPDATE chunk_data SET data=substr(data, 1, ?) WHERE chunk_id=?");
        cut.BindU(1, cut_to).BindU(2, kept_id);
        cut.Run();
        AddToCounter(ctx.db, "inline_bytes", static_cast<int64_t>(cut_to) - static_cast<int64_t>(kept_bytes));
      }
    }
  }
  inode.size = new_size;
  inode.mtime_ns = inode.ctime_ns = ctx.now_ns;
}

Status Fallocate(OpContext& ctx, const pb::FallocateRequest& req, pb::OpResult* result) {
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (inode->IsDir()) return Status(StatusCode::kIsADirectory, "is a directory");
  if (!inode->IsReg()) return Status(StatusCode::kInvalidArgument, "not a regular file");
  if (req.length() == 0) return Status(StatusCode::kInvalidArgument, "zero length");
  const uint64_t end = req.offset() + req.length();
  if (end < req.offset() || end > common::kMaxFileSizeBytes) return Status(StatusCode::kOutOfRange, "too large");
  RETURN_IF_ERROR(CheckWriteHandle(ctx, req.handle_id(), inode->ino));
  const uint32_t mode = req.mode();
  if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) {
    // Space is not reserved on chunkservers (thin provisioning); the size grows.
    if (mode == 0 && end > inode->size) inode->size = end;
  } else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    // Whole chunks inside the range become holes; partial chunks would need
    // a chunkserver zeroing command, which does not exist yet.
    const uint64_t first = (req.offset() + common::kChunkSizeBytes - 1) / common::kChunkSizeBytes;
    const uint64_t last = std::min(end, inode->size) / common::kChunkSizeBytes;  // exclusive
    const bool partial = common::OffsetInChunk(req.offset()) != 0 ||
                         (end < inode->size && common::OffsetInChunk(end) != 0);
    if (partial) return Status(StatusCode::kUnimplemented, "punching a partial chunk");
    std::vector<uint64_t> dropped;
    Stmt stmt = ctx.db.Prepare("SELECT chunk_id FROM chunks WHERE ino=? AND idx>=? AND idx<?");
    stmt.BindU(1, inode->ino).BindU(2, first).BindU(3, last);
    while (stmt.Step()) dropped.push_back(stmt.UInt(0));
    for (uint64_t id : dropped) DropChunk(ctx.db, id);
  } else {
    return Status(StatusCode::kUnimplemented, "unsupported fallocate mode");
  }
  // file_modified: the kernel leaves this to us (FUSE_HANDLE_KILLPRIV_V2).
  // Without CAP_FSETID, judged here as root or not, as a truncate is.
  if (const Creds creds = CredsOf(ctx, req.ctx()); creds.uid != 0) DropSuidSgidForWrite(*inode, creds);
  inode->mtime_ns = inode->ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, *inode);
  FillAttr(ctx, *inode, result);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
