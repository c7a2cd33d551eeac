// File locks (fcntl record locks and flock) in the replicated state, so
// processes on different mounts see each other's: SetLock and the conflict
// test shared with the read path (F_GETLK, and the leader's check before it
// proposes a lock that cannot be granted).
#include <algorithm>
#include <vector>

#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::Result;
using common::StatusCode;

namespace {

constexpr int64_t kLastByte = INT64_MAX;

Status CheckLockRequest(uint32_t kind, uint32_t type, uint64_t first, uint64_t last) {
  if (kind != pb::LOCK_KIND_POSIX && kind != pb::LOCK_KIND_FLOCK) {
    return Status(StatusCode::kInvalidArgument, "unknown lock kind");
  }
  if (type != pb::LOCK_TYPE_UNLOCK && type != pb::LOCK_TYPE_READ && type != pb::LOCK_TYPE_WRITE) {
    return Status(StatusCode::kInvalidArgument, "unknown lock type");
  }
  if (kind == pb::LOCK_KIND_POSIX && (first > last || last > static_cast<uint64_t>(kLastByte))) {
    return Status(StatusCode::kInvalidArgument, "bad lock range");
  }
  return Status::Ok();
}

}  // namespace

LockRange LockRangeOf(uint32_t kind, uint64_t start, uint64_t end) {
  if (kind == pb::LOCK_KIND_FLOCK) return {0, kLastByte};  // flock: the whole file
  return {static_cast<int64_t>(start), static_cast<int64_t>(end)};
}

Result<std::optional<HeldLock>> FindConflictingLock(Db& db, const LockQuery& q) {
  RETURN_IF_ERROR(CheckLockRequest(q.kind, q.type, q.range.first, q.range.last));
  if (q.type == pb::LOCK_TYPE_UNLOCK) return std::optional<HeldLock>();
  Stmt stmt = db.Prepare(
      "SELECT client_id, owner, type, first_byte, last_byte, pid FROM locks "
      "WHERE ino=? AND kind=? AND first_byte<=? AND last_byte>=? AND NOT (client_id=? AND owner=?) "
      "AND (type=? OR ?=?) ORDER BY first_byte LIMIT 1");
  stmt.BindU(1, q.ino).Bind(2, int64_t{q.kind}).Bind(3, q.range.last).Bind(4, q.range.first);
  stmt.BindU(5, q.client_id).BindU(6, q.owner);
  stmt.Bind(7, int64_t{pb::LOCK_TYPE_WRITE}).Bind(8, int64_t{q.type}).Bind(9, int64_t{pb::LOCK_TYPE_WRITE});
  if (!stmt.Step()) return std::optional<HeldLock>();
  HeldLock held;
  held.client_id = stmt.UInt(0);
  held.owner = stmt.UInt(1);
  held.type = static_cast<uint32_t>(stmt.Int(2));
  held.range = {stmt.Int(3), stmt.Int(4)};
  held.pid = static_cast<uint32_t>(stmt.Int(5));
  return std::optional<HeldLock>(held);
}

Status SetLock(OpContext& ctx, const pb::SetLockRequest& req, pb::OpResult* result) {
  if (ctx.op.client_id() == 0) return Status(StatusCode::kInvalidArgument, "locks need a session");
  if (ctx.op.locks_need_session()) RETURN_IF_ERROR(CheckSession(ctx));
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  const LockQuery q = LockQueryOf(req, ctx.op.client_id());
  ASSIGN_OR_RETURN(std::optional<HeldLock> conflict, FindConflictingLock(ctx.db, q));  // validates q too
  if (conflict) return Status(StatusCode::kAborted, "the range is locked by another owner");

  // The owner's own locks that overlap or touch the range: fcntl replaces
  // them within it (splitting one that sticks out) and merges a lock of the
  // same type that overlaps or touches, so an owner never holds two rows
  // for one byte.
  const int64_t first = q.range.first, last = q.range.last;
  struct Row {
    int64_t rowid;
    uint32_t type;
    LockRange range;
    uint32_t pid;
  };
  std::vector<Row> mine;
  {
    Stmt stmt = ctx.db.Prepare(
        "SELECT rowid, type, first_byte, last_byte, pid FROM locks WHERE ino=? AND kind=? AND client_id=? "
        "AND owner=? AND first_byte<=? AND last_byte>=?");
    stmt.BindU(1, q.ino).Bind(2, int64_t{q.kind}).BindU(3, q.client_id).BindU(4, q.owner);
    stmt.Bind(5, last == kLastByte ? kLastByte : last + 1).Bind(6, first == 0 ? 0 : first - 1);
    while (stmt.Step()) {
      mine.push_back({stmt.Int(0), static_cast<uint32_t>(stmt.Int(1)), {stmt.Int(2), stmt.Int(3)},
                      static_cast<uint32_t>(stmt.Int(4))});
    }
  }
  LockRange merged = q.range;
  std::vector<Row> keep;
  for (const Row& row : mine) {
    if (q.type != pb::LOCK_TYPE_UNLOCK && row.type == q.type) {
      merged.first = std::min(merged.first, row.range.first);
      merged.last = std::max(merged.last, row.range.last);
      continue;
    }
    if (row.range.first < first) {
      keep.push_back({0, row.type, {row.range.first, std::min(row.range.last, first - 1)}, row.pid});
    }
    if (row.range.last > last) {
      keep.push_back({0, row.type, {std::max(row.range.first, last + 1), row.range.last}, row.pid});
    }
  }
  for (const Row& row : mine) {
    Stmt del = ctx.db.Prepare("DELETE FROM locks WHERE rowid=?");
    del.Bind(1, row.rowid);
    del.Run();
  }
  if (q.type != pb::LOCK_TYPE_UNLOCK) keep.push_back({0, q.type, merged, req.pid()});
  for (const Row& row : keep) {
    Stmt ins = ctx.db.Prepare(
        "INSERT INTO locks(ino, kind, client_id, owner, type, first_byte, last_byte, pid) VALUES(?,?,?,?,?,?,?,?)");
    ins.BindU(1, q.ino).Bind(2, int64_t{q.kind}).BindU(3, q.client_id).BindU(4, q.owner);
    ins.Bind(5, int64_t{row.type}).Bind(6, row.range.first).Bind(7, row.range.last).Bind(8, int64_t{row.pid});
    ins.Run();
  }
  if (q.type == pb::LOCK_TYPE_WRITE) {
    // A write lock announces a writer. Another mount that holds a chunk's
    // write lease but no lock on the file is done with it under this
    // protocol (a lock user flushes before it unlocks), yet keeps the lease
    // while it holds the file open - SQLite does - and the new holder's
    // writes would wait for it to expire. End it, as that mount's release
    // would; its next write takes a new version.
    Stmt stmt = ctx.db.Prepare(
        "UPDATE leases SET expires_ms=0 WHERE expires_ms>? AND client_id<>? "
        "AND chunk_id IN (SELECT chunk_id FROM chunks WHERE ino=?) "
        "AND client_id NOT IN (SELECT client_id FROM locks WHERE ino=?)");
    stmt.Bind(1, ctx.now_ns / 1'000'000).BindU(2, q.client_id).BindU(3, q.ino).BindU(4, q.ino);
    stmt.Run();
  }
  if (q.type != pb::LOCK_TYPE_UNLOCK) FillAttr(ctx, *inode, result);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
