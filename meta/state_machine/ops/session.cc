// Client sessions: opening one allocates the client id; closing or expiring
// one releases its handles (freeing unlinked-but-open files), its file locks
// and its write leases, and forgets its exactly-once records; resuming one
// takes the id and the handles still open back, not the locks or leases.
#include <vector>

#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {

// How long an expired session's exactly-once results are kept for a resume.
constexpr int64_t kEndedRequestsNs = int64_t{10} * 60 * 1'000'000'000;

void EndSession(OpContext& ctx, uint64_t client_id, bool expired) {
  std::vector<uint64_t> inos;
  {
    Stmt stmt = ctx.db.Prepare("DELETE FROM handles WHERE client_id=? RETURNING ino");
    stmt.BindU(1, client_id);
    while (stmt.Step()) inos.push_back(stmt.UInt(0));
  }
  for (uint64_t ino : inos) {
    std::optional<Inode> inode = LoadInode(ctx.db, ino);
    if (inode && inode->nlink == 0 && !HasHandles(ctx.db, ino)) FreeInode(ctx, *inode);
  }
  if (expired && ctx.op.keep_ended_requests()) {
    Stmt stmt = ctx.db.Prepare("INSERT OR REPLACE INTO ended_sessions(client_id, ended_ns) VALUES(?,?)");
    stmt.BindU(1, client_id).Bind(2, ctx.now_ns);
    stmt.Run();
  } else {
    Stmt stmt = ctx.db.Prepare("DELETE FROM requests WHERE client_id=?");
    stmt.BindU(1, client_id);
    stmt.Run();
  }
  // Its write leases end too (the rows stay, so their versions are never
  // handed out again), so another mount's writer need not wait them out.
  for (const char* sql : {"DELETE FROM pinning_sessions WHERE client_id=?", "DELETE FROM locks WHERE client_id=?",
                          "UPDATE leases SET expires_ms=0 WHERE client_id=?"}) {
    Stmt stmt = ctx.db.Prepare(sql);
    stmt.BindU(1, client_id);
    stmt.Run();
  }
  Stmt stmt = ctx.db.Prepare("DELETE FROM sessions WHERE client_id=?");
  stmt.BindU(1, client_id);
  stmt.Run();
}

bool SessionExists(Db& db, uint64_t client_id) {
  Stmt stmt = db.Prepare("SELECT 1 FROM sessions WHERE client_id=?");
  stmt.BindU(1, client_id);
  return stmt.Step();
}

// A resumed session's handles: each comes back if meta gave that id out,
// nobody else holds it now, and its file still exists (an unlinked file
// waiting in `orphans` counts: FreeOrphans skips a file with handles).
// The others are reported lost.
void RestoreHandles(OpContext& ctx, uint64_t client_id, const pb::OpenSessionRequest& req, pb::OpResult* result) {
  Stmt counter = ctx.db.Prepare("SELECT value FROM counters WHERE name='next_handle'");
  const uint64_t next_handle = counter.Step() ? counter.UInt(0) : 0;
  for (const pb::ResumedHandle& h : req.handles()) {
    bool restored = false;
    if (h.handle_id() != 0 && h.handle_id() < next_handle && LoadInode(ctx.db, h.ino())) {
      Stmt held = ctx.db.Prepare("SELECT client_id, ino FROM handles WHERE handle_id=?");
      held.BindU(1, h.handle_id());
      if (held.Step()) {
        restored = held.UInt(0) == client_id && held.UInt(1) == h.ino();  // the session had not ended
      } else {
        Stmt insert = ctx.db.Prepare("INSERT INTO handles(handle_id, client_id, ino, flags) VALUES(?,?,?,?)");
        insert.BindU(1, h.handle_id()).BindU(2, client_id).BindU(3, h.ino()).Bind(4, int64_t{h.flags()});
        insert.Run();
        restored = true;
      }
    }
    if (!restored) result->add_lost_handles(h.handle_id());
  }
}

}  // namespace

Status CheckSession(OpContext& ctx) {
  if (ctx.op.client_id() == 0 || SessionExists(ctx.db, ctx.op.client_id())) return Status::Ok();
  return Status(StatusCode::kStale, "no such session (expired?): open a new one");
}

Status OpenSession(OpContext& ctx, const pb::OpenSessionOp& req, pb::OpResult* result) {
  // Resuming: the id the client had. It was given out once (by the leader's
  // draw or the counter) and never again, so it names no other session.
  const uint64_t resume = req.request().resume_client_id();
  uint64_t client_id = resume != 0 ? resume : req.client_id();
  bool exists = false;
  if (client_id != 0) {
    exists = SessionExists(ctx.db, client_id);
    if (exists && resume == 0) client_id = 0;  // a collision: 1 in 2^62, but apply must stay total
  }
  if (client_id == 0) client_id = TakeCounter(ctx.db, "next_client");
  if (!exists || resume == 0) {
    Stmt stmt = ctx.db.Prepare(
        "INSERT INTO sessions(client_id, hostname, mount_point, lease_ms, opened_ns) VALUES(?,?,?,?,?)");
    stmt.BindU(1, client_id).BindText(2, req.request().hostname()).BindText(3, req.request().mount_point());
    stmt.Bind(4, int64_t{req.lease_ms()}).Bind(5, ctx.now_ns);
    stmt.Run();
  }
  if (resume != 0) {
    Stmt stmt = ctx.db.Prepare("DELETE FROM ended_sessions WHERE client_id=?");  // its results live on
    stmt.BindU(1, client_id);
    stmt.Run();
    RestoreHandles(ctx, client_id, req.request(), result);
  }
  if (req.request().reports_read_pins()) {
    Stmt pinning = ctx.db.Prepare("INSERT OR IGNORE INTO pinning_sessions(client_id) VALUES(?)");
    pinning.BindU(1, client_id);
    pinning.Run();
  }
  result->set_client_id(client_id);
  return Status::Ok();
}

Status CloseSession(OpContext& ctx, const pb::CloseSessionRequest& req, pb::OpResult*) {
  EndSession(ctx, req.ctx().client_id(), /*expired=*/false);
  return Status::Ok();
}

Status ExpireSessions(OpContext& ctx, const pb::ExpireSessionsOp& req, pb::OpResult*) {
  for (uint64_t client_id : req.client_ids()) EndSession(ctx, client_id, /*expired=*/true);
  // Sessions ended long enough ago for no resume to retry anything.
  std::vector<uint64_t> forgotten;
  {
    Stmt stmt = ctx.db.Prepare("DELETE FROM ended_sessions WHERE ended_ns<? RETURNING client_id");
    stmt.Bind(1, ctx.now_ns - kEndedRequestsNs);
    while (stmt.Step()) forgotten.push_back(stmt.UInt(0));
  }
  for (uint64_t client_id : forgotten) {
    Stmt stmt = ctx.db.Prepare("DELETE FROM requests WHERE client_id=?");
    stmt.BindU(1, client_id);
    stmt.Run();
  }
  return Status::Ok();
}

}  // namespace dfs::meta::ops
