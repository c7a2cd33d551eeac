#include "meta/state_machine/state_machine.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "common/check.h"
#include "meta/state_machine/ops/ops.h"
#include "meta/state_machine/schema.h"
#include "meta/state_machine/store.h"

namespace dfs::meta {

using common::Status;
using common::StatusCode;

common::Result<std::unique_ptr<StateMachine>> StateMachine::Open(const std::string& path, const Options& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Db> writer, Db::Open(path, options.synchronous));
  RETURN_IF_ERROR(InitSchema(*writer));
  ASSIGN_OR_RETURN(std::unique_ptr<WalCheckpointer> checkpointer,
                   WalCheckpointer::Start(path, options.synchronous, *writer));
  return std::unique_ptr<StateMachine>(new StateMachine(std::move(writer), std::move(checkpointer), path, options));
}

StateMachine::StateMachine(std::unique_ptr<Db> writer, std::unique_ptr<WalCheckpointer> checkpointer,
                           std::string path, Options options)
    : writer_(std::move(writer)), checkpointer_(std::move(checkpointer)), path_(std::move(path)), options_(options) {
  applied_index_ = ReadCounter(*writer_, "applied_index");
}

StateMachine::~StateMachine() = default;

StateMachine::ReadConnection::ReadConnection(StateMachine* owner, std::unique_ptr<Db> db)
    : owner_(owner), db_(std::move(db)) {
  // Deferred: the snapshot is taken at the first read and kept to COMMIT.
  db_->Exec("BEGIN");
}

StateMachine::ReadConnection::~ReadConnection() {
  if (!db_) return;
  if (!db_->TryExec("COMMIT").ok() && !db_->TryExec("ROLLBACK").ok()) {
    // Still in its transaction: it would show the next reader an old state.
    spdlog::error("a read connection could not end its transaction; closing it");
    db_.reset();
    std::lock_guard<std::mutex> lock(owner_->pool_mu_);
    --owner_->opened_;
    owner_->pool_cv_.notify_one();
    return;
  }
  std::lock_guard<std::mutex> lock(owner_->pool_mu_);
  owner_->pool_.push_back(std::move(db_));
  owner_->pool_cv_.notify_one();
}

StateMachine::ReadConnection StateMachine::Borrow() {
  std::unique_lock<std::mutex> lock(pool_mu_);
  for (;;) {
    if (!pool_.empty()) {
      std::unique_ptr<Db> db = std::move(pool_.back());
      pool_.pop_back();
      return ReadConnection(this, std::move(db));
    }
    if (opened_ < options_.read_connections) {
      ++opened_;
      lock.unlock();
      common::Result<std::unique_ptr<Db>> db = Db::Open(path_, options_.synchronous);
      if (!db.ok()) PANIC(db.status().ToString().c_str());
      return ReadConnection(this, std::move(db).value());
    }
    pool_cv_.wait(lock);
  }
}

namespace {

// Dispatches one Op to its operation; the FS outcome lands in result->status.
Status Dispatch(ops::OpContext& ctx, pb::OpResult* result) {
  const pb::Op& op = ctx.op;
  switch (op.body_case()) {
    case pb::Op::kSetAttr: return ops::SetAttr(ctx, op.set_attr(), result);
    case pb::Op::kMknod: return ops::Mknod(ctx, op.mknod(), result);
    case pb::Op::kCreate: return ops::Create(ctx, op.create(), result);
    case pb::Op::kMkdir: return ops::Mkdir(ctx, op.mkdir(), result);
    case pb::Op::kUnlink: return ops::Unlink(ctx, op.unlink(), result);
    case pb::Op::kRmdir: return ops::Rmdir(ctx, op.rmdir(), result);
    case pb::Op::kSymlink: return ops::Symlink(ctx, op.symlink(), result);
    case pb::Op::kLink: return ops::Link(ctx, op.link(), result);
    case pb::Op::kRename: return ops::Rename(ctx, op.rename(), result);
    case pb::Op::kOpen: return ops::Open(ctx, op.open(), result);
    case pb::Op::kRelease: return ops::Release(ctx, op.release(), result);
    case pb::Op::kSetXattr: return ops::SetXattr(ctx, op.set_xattr(), result);
    case pb::Op::kRemoveXattr: return ops::RemoveXattr(ctx, op.remove_xattr(), result);
    case pb::Op::kFallocate: return ops::Fallocate(ctx, op.fallocate(), result);
    case pb::Op::kLeaseChunk: return ops::LeaseChunk(ctx, op.lease_chunk(), result);
    case pb::Op::kCommitWrite: return ops::CommitWrite(ctx, op.commit_write(), result);
    case pb::Op::kSetReplication: return ops::SetReplication(ctx, op.set_replication(), result);
    case pb::Op::kSetLock: return ops::SetLock(ctx, op.set_lock(), result);
    case pb::Op::kOpenSession: return ops::OpenSession(ctx, op.open_session(), result);
    case pb::Op::kCloseSession: return ops::CloseSession(ctx, op.close_session(), result);
    case pb::Op::kExpireSessions: return ops::ExpireSessions(ctx, op.expire_sessions(), result);
    case pb::Op::kFreeOrphans: return ops::FreeOrphans(ctx, op.free_orphans(), result);
    case pb::Op::kRegisterNode: return ops::RegisterNode(ctx, op.register_node(), result);
    case pb::Op::kNodeState: return ops::NodeState(ctx, op.node_state(), result);
    case pb::Op::kReplicaChange: return ops::ReplicaChange(ctx, op.replica_change(), result);
    case pb::Op::kBadReplica: return ops::BadReplica(ctx, op.bad_replica(), result);
    case pb::Op::kDrainNode: return ops::DrainNode(ctx, op.drain_node(), result);
    case pb::Op::kGcDone: return ops::GcDone(ctx, op.gc_done(), result);
    case pb::Op::kInventoryPage: return ops::InventoryPage(ctx, op.inventory_page(), result);
    case pb::Op::kSetMember: return ops::SetMember(ctx, op.set_member(), result);
    default: return Status(StatusCode::kUnimplemented, "unknown op");
  }
}

// What the request's client did since its previous mutation that needed no
// answer (meta/service/carried.h), applied before the op itself: first root's
// chmod/chown of files it holds open (Op.set_attrs, in order; they came
// before the closes), then the handles it closed (Op.releases). Each on its
// own savepoint, its outcome not reported: the client answered it already.
void ApplyCarried(Db& db, const pb::Op& op) {
  if (op.client_id() == 0) return;  // only sessions carry
  auto apply = [&](auto&& fill, auto&& run) {
    pb::Op one;
    one.set_client_id(op.client_id());
    one.set_now_ns(op.now_ns());
    one.set_defer_frees(op.defer_frees());
    one.set_posix_acls(op.posix_acls());
    one.set_movable_leases(op.movable_leases());
    one.set_locks_need_session(op.locks_need_session());
    one.set_keep_ended_requests(op.keep_ended_requests());
    fill(one);
    db.Prepare("SAVEPOINT carried").Run();
    ops::OpContext ctx{db, one, one.now_ns()};
    pb::OpResult ignored;
    if (!run(ctx, one, &ignored).ok()) db.Prepare("ROLLBACK TO carried").Run();
    db.Prepare("RELEASE carried").Run();
  };
  for (const pb::SetAttrRequest& set : op.set_attrs()) {
    apply([&](pb::Op& one) { *one.mutable_set_attr() = set; },
          [](ops::OpContext& ctx, const pb::Op& one, pb::OpResult* r) { return ops::SetAttr(ctx, one.set_attr(), r); });
  }
  for (const pb::ReleaseRequest& release : op.releases()) {
    apply([&](pb::Op& one) { *one.mutable_release() = release; },
          [](ops::OpContext& ctx, const pb::Op& one, pb::OpResult* r) { return ops::Release(ctx, one.release(), r); });
  }
}

// Ops whose (client_id, request_id) are remembered for exactly-once replies.
bool Remembered(const pb::Op& op) {
  return op.client_id() != 0 && op.request_id() != 0 && op.body_case() != pb::Op::kCloseSession &&
         op.body_case() != pb::Op::kOpenSession;
}

}  // namespace

common::Result<std::vector<pb::OpResult>> StateMachine::Apply(std::string_view entry_bytes) {
  pb::Entry entry;
  if (!entry.ParseFromArray(entry_bytes.data(), static_cast<int>(entry_bytes.size()))) {
    return common::InvalidArgumentError("entry does not parse");
  }
  if (entry.format() != 1) return common::InvalidArgumentError("unknown entry format");
  return ApplyEntry(entry);
}

common::Result<std::vector<pb::OpResult>> StateMachine::ApplyAt(std::string_view entry_bytes, uint64_t index) {
  CHECK(index != 0);
  if (index <= applied_index_) return std::vector<pb::OpResult>();
  pb::Entry entry;
  if (!entry.ParseFromArray(entry_bytes.data(), static_cast<int>(entry_bytes.size())) || entry.format() != 1) {
    // Still consumes the index, so every replica moves past it alike.
    ApplyEntry(pb::Entry(), index);
    return common::InvalidArgumentError("entry does not parse or has an unknown format");
  }
  return ApplyEntry(entry, index);
}

std::vector<pb::OpResult> StateMachine::ApplyEntry(const pb::Entry& entry, uint64_t index) {
  Db& db = *writer_;
  std::vector<pb::OpResult> results(entry.ops_size());
  db.Prepare("BEGIN IMMEDIATE").Run();
  if (index != 0) {
    Stmt stmt = db.Prepare("UPDATE counters SET value=? WHERE name='applied_index'");
    stmt.BindU(1, index);
    stmt.Run();
  }
  for (int i = 0; i < entry.ops_size(); ++i) {
    const pb::Op& op = entry.ops(i);
    pb::OpResult& result = results[i];
    if (Remembered(op)) {
      Stmt stmt = db.Prepare("SELECT result FROM requests WHERE client_id=? AND request_id=?");
      stmt.BindU(1, op.client_id()).BindU(2, op.request_id());
      if (stmt.Step()) {
        CHECK(result.ParseFromString(stmt.Blob(0)));
        continue;
      }
    }
    ApplyCarried(db, op);
    db.Prepare("SAVEPOINT op").Run();
    ops::OpContext ctx{db, op, op.now_ns()};
    Status status = Dispatch(ctx, &result);
    if (!status.ok()) {
      db.Prepare("ROLLBACK TO op").Run();
      result.Clear();
      result.mutable_status()->set_code(static_cast<int>(status.code()));
      result.mutable_status()->set_message(std::string(status.message()));
    }
    db.Prepare("RELEASE op").Run();
    if (Remembered(op)) {
      std::string bytes = result.SerializeAsString();
      {
        Stmt stmt = db.Prepare("INSERT OR REPLACE INTO requests(client_id, request_id, result) VALUES(?,?,?)");
        stmt.BindU(1, op.client_id()).BindU(2, op.request_id()).Bind(3, bytes);
        stmt.Run();
      }
      // Trimmed every 64th request: the window holds 1024 to 1087 results.
      if (op.request_id() > kRequestWindow && op.request_id() % 64 == 0) {
        Stmt stmt = db.Prepare("DELETE FROM requests WHERE client_id=? AND request_id<=?");
        stmt.BindU(1, op.client_id()).BindU(2, op.request_id() - kRequestWindow);
        stmt.Run();
      }
    }
  }
  db.Prepare("COMMIT").Run();
  if (index != 0) applied_index_ = index;
  return results;
}

}  // namespace dfs::meta
