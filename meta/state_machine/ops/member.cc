// The metadata Raft group's members as clients need them: each member's
// MetaService address, so a follower can name the leader in its answer.
// (Raft's own configuration lives in the Raft log; this table mirrors the
// addresses it cannot hold.)
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

Status SetMember(OpContext& ctx, const pb::SetMemberOp& op, pb::OpResult*) {
  if (op.raft_id() == 0) return Status(StatusCode::kInvalidArgument, "member id 0");
  if (op.removed()) {
    Stmt stmt = ctx.db.Prepare("DELETE FROM members WHERE raft_id=?");
    stmt.BindU(1, op.raft_id());
    stmt.Run();
    return Status::Ok();
  }
  Stmt stmt = ctx.db.Prepare(
      "INSERT INTO members(raft_id, raft_address, rpc_address) VALUES(?,?,?) "
      "ON CONFLICT(raft_id) DO UPDATE SET raft_address=excluded.raft_address, rpc_address=excluded.rpc_address");
  stmt.BindU(1, op.raft_id()).BindText(2, op.raft_address()).BindText(3, op.rpc_address());
  stmt.Run();
  return Status::Ok();
}

}  // namespace dfs::meta::ops
