// Client sessions: opening one allocates the client id; closing or expiring
// one releases its handles (freeing unlinked-but-open files), its file locks
// and its write leases, and forgets its exactly-once records.
#include <vector>

#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

namespace {

void EndSession(OpContext& ctx, uint64_t client_id) {
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
  {
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

}  // namespace

Status OpenSession(OpContext& ctx, const pb::OpenSessionOp& req, pb::OpResult* result) {
  uint64_t client_id = req.client_id();
  if (client_id != 0) {
    Stmt taken = ctx.db.Prepare("SELECT 1 FROM sessions WHERE client_id=?");
    taken.BindU(1, client_id);
    if (taken.Step()) client_id = 0;  // a collision: 1 in 2^62, but apply must stay total
  }
  if (client_id == 0) client_id = TakeCounter(ctx.db, "next_client");
  Stmt stmt = ctx.db.Prepare(
      "INSERT INTO sessions(client_id, hostname, mount_point, lease_ms, opened_ns) VALUES(?,?,?,?,?)");
  stmt.BindU(1, client_id).BindText(2, req.request().hostname()).BindText(3, req.request().mount_point());
  stmt.Bind(4, int64_t{req.lease_ms()}).Bind(5, ctx.now_ns);
  stmt.Run();
  if (req.request().reports_read_pins()) {
    Stmt pinning = ctx.db.Prepare("INSERT OR IGNORE INTO pinning_sessions(client_id) VALUES(?)");
    pinning.BindU(1, client_id);
    pinning.Run();
  }
  result->set_client_id(client_id);
  return Status::Ok();
}

Status CloseSession(OpContext& ctx, const pb::CloseSessionRequest& req, pb::OpResult*) {
  EndSession(ctx, req.ctx().client_id());
  return Status::Ok();
}

Status ExpireSessions(OpContext& ctx, const pb::ExpireSessionsOp& req, pb::OpResult*) {
  for (uint64_t client_id : req.client_ids()) EndSession(ctx, client_id);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
