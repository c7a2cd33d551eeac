// Chunkserver membership and the replica map as chunkservers report it:
// registration, inventory, bad replicas, garbage confirmations, draining,
// and the replication factor of files.
#include <sys/stat.h>

#include <string>

#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {
bool Condemned(Db& db, uint64_t node_id, uint64_t chunk_id, uint64_t version) {
  Stmt stmt = db.Prepare("SELECT 1 FROM garbage WHERE chunk_id=? AND node_id=? AND version=? LIMIT 1");
  stmt.BindU(1, chunk_id).BindU(2, node_id).BindU(3, version);
  return stmt.Step();
}

void QueueGarbage(Db& db, uint64_t node_id, uint64_t chunk_id, uint64_t version) {
  Stmt stmt = db.Prepare("INSERT INTO garbage(node_id, chunk_id, version) VALUES(?,?,?)");
  stmt.BindU(1, node_id).BindU(2, chunk_id).BindU(3, version);
  stmt.Run();
}
}  // namespace

Status RegisterNode(OpContext& ctx, const pb::RegisterNodeOp& op, pb::OpResult*) {
  const pb::RegisterRequest& req = op.request();
  if (req.node_id() == 0 || req.address().empty()) return Status(StatusCode::kInvalidArgument, "node id/address");
  uint64_t capacity = 0, used = 0;
  for (const pb::DiskUsage& disk : req.disks()) {
    capacity += disk.capacity_bytes();
    used += disk.used_bytes();
  }
  Stmt stmt = ctx.db.Prepare(
      "INSERT INTO nodes(node_id, address, state, weight, capacity, used, registered_ns) VALUES(?,?,'up',1000,?,?,?) "
      "ON CONFLICT(node_id) DO UPDATE SET address=excluded.address, capacity=excluded.capacity, "
      "used=excluded.used, registered_ns=excluded.registered_ns, "
      "state=CASE WHEN state='draining' THEN 'draining' ELSE 'up' END");
  stmt.BindU(1, req.node_id()).BindText(2, req.address()).BindU(3, capacity).BindU(4, used).Bind(5, ctx.now_ns);
  stmt.Run();
  return Status::Ok();
}

Status NodeState(OpContext& ctx, const pb::NodeStateOp& op, pb::OpResult*) {
  if (op.state() == "removed") {
    Stmt stmt = ctx.db.Prepare("DELETE FROM nodes WHERE node_id=?");
    stmt.BindU(1, op.node_id());
    stmt.Run();
    return Status::Ok();
  }
  // weight in milli-units keeps the statement integer-only (and deterministic).
  const int64_t weight_milli = static_cast<int64_t>(op.weight() * 1000);
  if (op.state().empty()) {
    if (weight_milli < 10 || weight_milli > 100'000) return Status(StatusCode::kInvalidArgument, "weight 0.01..100");
    Stmt stmt = ctx.db.Prepare("UPDATE nodes SET weight=? WHERE node_id=?");
    stmt.Bind(1, weight_milli).BindU(2, op.node_id());
    stmt.Run();
    if (ctx.db.Changes() == 0) return Status(StatusCode::kNotFound, "no such node");
    return Status::Ok();
  }
  Stmt stmt = ctx.db.Prepare("UPDATE nodes SET state=?, weight=CASE WHEN ?>0 THEN ? ELSE weight END WHERE node_id=?");
  stmt.BindText(1, op.state()).Bind(2, weight_milli).Bind(3, weight_milli).BindU(4, op.node_id());
  stmt.Run();
  if (ctx.db.Changes() == 0) return Status(StatusCode::kNotFound, "no such node");
  return Status::Ok();
}

Status ReplicaChange(OpContext& ctx, const pb::ReplicaChangeOp& op, pb::OpResult*) {
  if (op.added()) {
    Stmt chunk = ctx.db.Prepare(
        "SELECT version, EXISTS(SELECT 1 FROM chunk_data d WHERE d.chunk_id=c.chunk_id) FROM chunks c WHERE chunk_id=?");
    chunk.BindU(1, op.chunk_id());
    if (!chunk.Step()) return Status(StatusCode::kNotFound, "no such chunk");
    if (chunk.UInt(0) != op.version()) return Status(StatusCode::kFailedPrecondition, "stale version");
    if (chunk.Int(1) != 0) return Status(StatusCode::kFailedPrecondition, "the chunk is kept in meta");
    // A condemned copy (one that missed a write of this version) does not
    // count, even if the node found "this version" already there.
    if (Condemned(ctx.db, op.node_id(), op.chunk_id(), op.version())) {
      return Status(StatusCode::kFailedPrecondition, "that copy is queued for deletion");
    }
    Stmt stmt = ctx.db.Prepare("INSERT OR REPLACE INTO replicas(chunk_id, node_id, version) VALUES(?,?,?)");
    stmt.BindU(1, op.chunk_id()).BindU(2, op.node_id()).BindU(3, op.version());
    stmt.Run();
  } else {
    if (op.keep_size() > 0) {
      Stmt chunk = ctx.db.Prepare(
          "SELECT c.version, COALESCE((SELECT l.expires_ms FROM leases l WHERE l.chunk_id=c.chunk_id), 0) "
          "FROM chunks c WHERE c.chunk_id=?");
      chunk.BindU(1, op.chunk_id());
      if (!chunk.Step()) return Status(StatusCode::kNotFound, "no such chunk");
      if (chunk.UInt(0) != op.version()) return Status(StatusCode::kFailedPrecondition, "stale version");
      if (chunk.Int(1) > ctx.now_ns / 1'000'000) return Status(StatusCode::kFailedPrecondition, "chunk is leased");
      for (uint64_t node : op.keep()) {
        if (node == op.node_id()) return Status(StatusCode::kInvalidArgument, "a trimmed copy cannot be kept");
        Stmt held = ctx.db.Prepare("SELECT 1 FROM replicas WHERE chunk_id=? AND node_id=? AND version=?");
        held.BindU(1, op.chunk_id()).BindU(2, node).BindU(3, op.version());
        if (!held.Step()) return Status(StatusCode::kFailedPrecondition, "a copy to keep is gone");
      }
    }
    Stmt stmt = ctx.db.Prepare("DELETE FROM replicas WHERE chunk_id=? AND node_id=?");
    stmt.BindU(1, op.chunk_id()).BindU(2, op.node_id());
    stmt.Run();
    QueueGarbage(ctx.db, op.node_id(), op.chunk_id(), op.version());
  }
  return Status::Ok();
}

Status BadReplica(OpContext& ctx, const pb::ReportBadReplicaRequest& req, pb::OpResult*) {
  Stmt stmt = ctx.db.Prepare("DELETE FROM replicas WHERE chunk_id=? AND node_id=? AND version=?");
  stmt.BindU(1, req.chunk_id()).BindU(2, req.node_id()).BindU(3, req.version());
  stmt.Run();
  if (ctx.db.Changes() > 0) QueueGarbage(ctx.db, req.node_id(), req.chunk_id(), req.version());
  return Status::Ok();
}

Status DrainNode(OpContext& ctx, const pb::DrainNodeRequest& req, pb::OpResult*) {
  Stmt stmt = ctx.db.Prepare("UPDATE nodes SET state='draining' WHERE node_id=?");
  stmt.BindU(1, req.node_id());
  stmt.Run();
  if (ctx.db.Changes() == 0) return Status(StatusCode::kNotFound, "no such node");
  return Status::Ok();
}

Status GcDone(OpContext& ctx, const pb::GcDoneOp& op, pb::OpResult*) {
  for (const pb::ChunkRef& ref : op.chunks()) {
    Stmt stmt = ctx.db.Prepare("DELETE FROM garbage WHERE node_id=? AND chunk_id=? AND version=?");
    stmt.BindU(1, op.node_id()).BindU(2, ref.chunk_id()).BindU(3, ref.version());
    stmt.Run();
  }
  return Status::Ok();
}

Status InventoryPage(OpContext& ctx, const pb::InventoryPageOp& op, pb::OpResult*) {
  for (const pb::ChunkRef& ref : op.chunks()) {
    uint64_t committed = 0, leased = 0;
    bool known = false, in_meta = false;
    {
      Stmt stmt = ctx.db.Prepare(
          "SELECT c.version, COALESCE(l.version, 0), EXISTS(SELECT 1 FROM chunk_data d WHERE d.chunk_id=c.chunk_id) "
          "FROM chunks c LEFT JOIN leases l ON l.chunk_id=c.chunk_id WHERE c.chunk_id=?");
      stmt.BindU(1, ref.chunk_id());
      if (stmt.Step()) {
        known = true;
        committed = stmt.UInt(0);
        leased = stmt.UInt(1);
        in_meta = stmt.Int(2) != 0;
      }
    }
    // A chunk kept in meta has no copy on chunkservers: one at its version
    // or older is a leftover.
    if (!known || ref.damaged() || (ref.version() < committed) || (in_meta && ref.version() == committed)) {
      Stmt del = ctx.db.Prepare("DELETE FROM replicas WHERE chunk_id=? AND node_id=? AND version=?");
      del.BindU(1, ref.chunk_id()).BindU(2, op.node_id()).BindU(3, ref.version());
      del.Run();
      QueueGarbage(ctx.db, op.node_id(), ref.chunk_id(), ref.version());
    } else if (ref.version() == committed && committed != 0 &&
               !Condemned(ctx.db, op.node_id(), ref.chunk_id(), ref.version())) {
      Stmt ins = ctx.db.Prepare("INSERT OR REPLACE INTO replicas(chunk_id, node_id, version) VALUES(?,?,?)");
      ins.BindU(1, ref.chunk_id()).BindU(2, op.node_id()).BindU(3, ref.version());
      ins.Run();
    }
    // A version above the committed one is a write in flight (leased) or an
    // abandoned one; the next commit or lease decides, so it is left alone.
    (void)leased;
  }
  return Status::Ok();
}

Status SetReplication(OpContext& ctx, const pb::SetReplicationRequest& req, pb::OpResult*) {
  Creds creds = CredsOf(ctx, req.ctx());
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (req.replicas() == 0 || req.replicas() > 16) return Status(StatusCode::kInvalidArgument, "replicas 1..16");
  RETURN_IF_ERROR(CheckOwner(*inode, creds));
  if (!req.recursive() || !S_ISDIR(inode->mode)) {
    inode->replicas = req.replicas();
    inode->ctime_ns = ctx.now_ns;
    SaveInode(ctx.db, *inode);
    return Status::Ok();
  }
  // The whole tree in this one transaction: every directory (for files
  // created later) and every file (the leader then copies or trims their
  // chunks). Only root may change what other users own.
  // Statements are cached by the address of their text: whole literals.
  if (creds.uid != 0) {
    Stmt foreign = ctx.db.Prepare(
        "WITH RECURSIVE tree(ino) AS (SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree t ON d.parent=t.ino) "
        "SELECT 1 FROM inodes WHERE ino IN tree AND uid<>? LIMIT 1");
    foreign.BindU(1, req.ino()).BindU(2, creds.uid);
    if (foreign.Step()) return Status(StatusCode::kNotPermitted, "the tree holds files of other users");
  }
  Stmt update = ctx.db.Prepare(
      "WITH RECURSIVE tree(ino) AS (SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree t ON d.parent=t.ino) "
      "UPDATE inodes SET replicas=?, ctime=? WHERE ino IN tree AND replicas<>?");
  update.BindU(1, req.ino()).BindU(2, req.replicas()).Bind(3, ctx.now_ns).BindU(4, req.replicas());
  update.Run();
  return Status::Ok();
}

}  // namespace dfs::meta::ops
