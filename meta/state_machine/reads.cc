// The read side of StateMachine: served from pooled read connections, never
// through Apply.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/posix_acl.h"
#include "meta/state_machine/ops/ops.h"
#include "meta/state_machine/schema.h"
#include "meta/state_machine/state_machine.h"

namespace dfs::meta {

using common::Status;
using common::StatusCode;

namespace {

void SetStatus(const Status& status, pb::FsStatus* out) {
  out->set_code(static_cast<int>(status.code()));
  out->set_message(std::string(status.message()));
}

// Reads say whether an access ACL exists, and whether any extended
// attribute does: the client answers the kernel's ACL fetch and getxattr /
// listxattr from that (fuse/client/acl_hints.h).
// `stored_blocks`, `has_access_acl` and `has_xattrs` as the database says; a
// directory's blocks and a symlink's ACL (Linux keeps none) are fixed.
void FillAttrFrom(const Inode& inode, uint64_t stored_blocks, bool has_access_acl, bool has_xattrs,
                  pb::Attr* attr) {
  ToAttr(inode, inode.IsReg() ? stored_blocks : 0, attr);
  const bool acl = !S_ISLNK(inode.mode) && has_access_acl;
  attr->set_access_acl(acl ? pb::Attr::ACL_PRESENT : pb::Attr::ACL_NONE);
  attr->set_no_xattrs(!has_xattrs);
}

void FillAttr(Db& db, const Inode& inode, pb::Attr* attr) {
  const uint64_t blocks = inode.IsReg() ? StoredBlocks(db, inode.ino) : 0;
  const bool any = HasAnyXattr(db, inode.ino);
  FillAttrFrom(inode, blocks, any && !S_ISLNK(inode.mode) && HasXattr(db, inode.ino, common::kAccessAclXattr), any,
               attr);
}

constexpr uint32_t kDefaultReadDirEntries = 1024;
constexpr uint32_t kMaxReadDirEntries = 4096;

}  // namespace

void StateMachine::Lookup(const pb::LookupRequest& req, pb::EntryReply* reply) {
  ReadConnection conn = Borrow();
  Db& db = *conn;
  Creds creds = CredsFrom(req.ctx().creds());
  Status status = ValidateName(req.name());
  if (!status.ok()) return SetStatus(status, reply->mutable_status());
  common::Result<Inode> dir = LoadDir(db, req.parent(), creds, kMayExec);
  if (!dir.ok()) return SetStatus(dir.status(), reply->mutable_status());
  std::optional<Dentry> dentry = LookupDentry(db, req.parent(), req.name());
  std::optional<Inode> inode = dentry ? LoadInode(db, dentry->ino) : std::nullopt;
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such entry"), reply->mutable_status());
  FillAttr(db, *inode, reply->mutable_attr());
}

void StateMachine::GetAttr(const pb::GetAttrRequest& req, pb::AttrReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  FillAttr(*conn, *inode, reply->mutable_attr());
}

void StateMachine::Readlink(const pb::ReadlinkRequest& req, pb::ReadlinkReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  if (!S_ISLNK(inode->mode)) return SetStatus(Status(StatusCode::kInvalidArgument, "not a symlink"), reply->mutable_status());
  reply->set_target(inode->target);
}

void StateMachine::ReadDir(const pb::ReadDirRequest& req, bool plus, pb::ReadDirReply* reply) {
  ReadConnection conn = Borrow();
  Db& db = *conn;
  Creds creds = CredsFrom(req.ctx().creds());
  std::optional<Inode> dir = LoadInode(db, req.ino());
  if (!dir) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  if (!dir->IsDir()) return SetStatus(Status(StatusCode::kNotADirectory, "not a directory"), reply->mutable_status());
  Status access = CheckAccess(db, *dir, creds, kMayRead);
  if (!access.ok()) return SetStatus(access, reply->mutable_status());
  uint32_t limit = req.max_entries() == 0 ? kDefaultReadDirEntries : std::min(req.max_entries(), kMaxReadDirEntries);
  // readdirplus: each entry's inode, blocks and ACL presence in the same
  // query, not three more per entry (FillAttr's), which made most of meta's
  // time in a listing. Inode columns in InodeFromColumns' order.
  static const std::string plus_sql =  // Prepare caches by pointer: built once
      "SELECT d.name, d.ino, d.type, d.cookie, i.generation, i.mode, i.nlink, i.uid, i.gid, i.size, i.rdev, "
      "i.atime, i.mtime, i.ctime, i.replicas, i.parent, i.next_cookie, i.target, " +
      std::string(kStoredBlocksSql) +
      "d.ino), "
      "EXISTS(SELECT 1 FROM xattrs x WHERE x.ino = d.ino AND x.name = ?4), "
      "EXISTS(SELECT 1 FROM xattrs x WHERE x.ino = d.ino) "
      "FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino "
      "WHERE d.parent=?1 AND d.cookie>?2 ORDER BY d.cookie LIMIT ?3";
  Stmt stmt = db.Prepare(plus ? plus_sql.c_str() : kListingSql);
  stmt.BindU(1, req.ino()).BindU(2, req.cookie()).Bind(3, int64_t{limit} + 1);
  if (plus) stmt.Bind(4, common::kAccessAclXattr);
  uint32_t count = 0;
  bool more = false;
  if (!plus && req.packed()) {
    pb::PackedEntries* packed = reply->mutable_packed();
    std::string* names = packed->mutable_names();
    while (stmt.Step()) {
      if (count == limit) {
        more = true;
        break;
      }
      ++count;
      names->append(stmt.BlobView(0));
      names->push_back('\0');
      packed->add_inos(stmt.UInt(1));
      packed->add_types(static_cast<uint32_t>(stmt.Int(2)));
      packed->add_cookies(stmt.UInt(3));
    }
    reply->set_eof(!more);
    return;
  }
  while (stmt.Step()) {
    if (count == limit) {
      more = true;
      break;
    }
    ++count;
    pb::DirEntry* entry = reply->add_entries();
    entry->set_name(stmt.Blob(0));
    entry->set_ino(stmt.UInt(1));
    entry->set_type(static_cast<uint32_t>(stmt.Int(2)));
    entry->set_cookie(stmt.UInt(3));
    if (!plus || stmt.IsNull(5)) continue;  // (an inode missing would be a bug elsewhere: no attributes)
    FillAttrFrom(InodeFromColumns(stmt, 4, entry->ino()), stmt.UInt(18), stmt.Int(19) != 0, stmt.Int(20) != 0,
                 entry->mutable_attr());
  }
  reply->set_eof(!more);
}

void StateMachine::Access(const pb::AccessRequest& req, pb::StatusReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  if (req.mask() & ~7u) return SetStatus(Status(StatusCode::kInvalidArgument, "bad mask"), reply->mutable_status());
  Status status = CheckAccess(*conn, *inode, CredsFrom(req.ctx().creds()), req.mask());
  SetStatus(status, reply->mutable_status());
}

void StateMachine::CheckOpen(const pb::OpenRequest& req, pb::OpenReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  uint32_t mask = ops::OpenAccessMask(req.flags());
  if (inode->IsDir() && (mask & kMayWrite)) {
    return SetStatus(Status(StatusCode::kIsADirectory, "is a directory"), reply->mutable_status());
  }
  Status status = CheckAccess(*conn, *inode, CredsFrom(req.ctx().creds()), mask);
  if (!status.ok()) return SetStatus(status, reply->mutable_status());
  FillAttr(*conn, *inode, reply->mutable_attr());
}

void StateMachine::GetXattr(const pb::GetXattrRequest& req, pb::GetXattrReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  Status status = ops::CheckXattrAccess(*conn, *inode, CredsFrom(req.ctx().creds()), req.name(), false);
  if (!status.ok()) return SetStatus(status, reply->mutable_status());
  std::optional<std::string> value = LoadXattr(*conn, req.ino(), req.name());
  if (!value) return SetStatus(Status(StatusCode::kNoAttribute, "no such xattr"), reply->mutable_status());
  reply->set_value(std::move(*value));
}

void StateMachine::ListXattr(const pb::ListXattrRequest& req, pb::ListXattrReply* reply) {
  ReadConnection conn = Borrow();
  std::optional<Inode> inode = LoadInode(*conn, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  const bool root = req.ctx().creds().uid() == 0;
  Stmt stmt = (*conn).Prepare("SELECT name FROM xattrs WHERE ino=? ORDER BY name");
  stmt.BindU(1, req.ino());
  while (stmt.Step()) {
    std::string name = stmt.Blob(0);
    if (!root && name.rfind("trusted.", 0) == 0) continue;
    reply->add_names(std::move(name));
  }
}

void StateMachine::GetLock(const pb::GetLockRequest& req, pb::GetLockReply* reply) {
  ReadConnection conn = Borrow();
  if (!LoadInode(*conn, req.ino())) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  common::Result<std::optional<ops::HeldLock>> held =
      ops::FindConflictingLock(*conn, ops::LockQueryOf(req, req.ctx().client_id()));
  if (!held.ok()) return SetStatus(held.status(), reply->mutable_status());
  if (!*held) return reply->set_type(pb::LOCK_TYPE_UNLOCK);
  reply->set_type(static_cast<pb::LockType>((*held)->type));
  reply->set_start(static_cast<uint64_t>((*held)->range.first));
  reply->set_end(static_cast<uint64_t>((*held)->range.last));
  // A pid means something only on the machine that holds the lock.
  if ((*held)->client_id == req.ctx().client_id()) reply->set_pid((*held)->pid);
}

common::Status StateMachine::TestLock(const pb::SetLockRequest& req, uint64_t client_id) {
  ReadConnection conn = Borrow();
  if (!LoadInode(*conn, req.ino())) return Status(StatusCode::kNotFound, "no such inode");
  ASSIGN_OR_RETURN(std::optional<ops::HeldLock> held,
                   ops::FindConflictingLock(*conn, ops::LockQueryOf(req, client_id)));
  if (held) return Status(StatusCode::kAborted, "the range is locked by another owner");
  return Status::Ok();
}

bool StateMachine::Answered(uint64_t client_id, uint64_t request_id) {
  ReadConnection conn = Borrow();
  Stmt stmt = (*conn).Prepare("SELECT 1 FROM requests WHERE client_id=? AND request_id=?");
  stmt.BindU(1, client_id).BindU(2, request_id);
  return stmt.Step();
}

void StateMachine::GetChunkLocations(const pb::GetChunkLocationsRequest& req, pb::GetChunkLocationsReply* reply) {
  ReadConnection conn = Borrow();
  Db& db = *conn;
  std::optional<Inode> inode = LoadInode(db, req.ino());
  if (!inode) return SetStatus(Status(StatusCode::kNotFound, "no such inode"), reply->mutable_status());
  if (!inode->IsReg()) return SetStatus(Status(StatusCode::kInvalidArgument, "not a regular file"), reply->mutable_status());
  reply->set_file_size(inode->size);
  const uint64_t end = std::min(inode->size, req.offset() + std::min<uint64_t>(req.length(), common::kMaxFileSizeBytes));
  if (req.offset() >= end) return;
  const uint64_t first = common::ChunkIndexOf(req.offset());
  const uint64_t last = common::ChunkIndexOf(end - 1);
  Stmt stmt = db.Prepare(
      "SELECT c.idx, c.chunk_id, c.version, c.length, d.data FROM chunks c LEFT JOIN chunk_data d ON "
      "d.chunk_id=c.chunk_id WHERE c.ino=? AND c.idx>=? AND c.idx<=? ORDER BY c.idx");
  stmt.BindU(1, inode->ino).BindU(2, first).BindU(3, last);
  uint64_t next = first;
  auto add_hole_until = [&](uint64_t idx) {
    for (; next < idx; ++next) reply->add_chunks()->set_chunk_index(next);
  };
  while (stmt.Step()) {
    const uint64_t idx = stmt.UInt(0);
    if (stmt.UInt(2) == 0) continue;  // allocated, never committed: a hole
    add_hole_until(idx);
    pb::ChunkLocation* loc = reply->add_chunks();
    loc->set_chunk_index(idx);
    loc->set_chunk_id(stmt.UInt(1));
    loc->set_version(stmt.UInt(2));
    loc->set_length(stmt.UInt(3));
    next = idx + 1;
    if (!stmt.IsNull(4)) {
      loc->set_inlined(true);
      loc->set_data(stmt.Blob(4));
      continue;
    }
    Stmt replicas = db.Prepare(
        "SELECT r.node_id, COALESCE(n.address, '') FROM replicas r LEFT JOIN nodes n ON n.node_id=r.node_id "
        "WHERE r.chunk_id=? AND r.version=? ORDER BY r.node_id");
    replicas.BindU(1, stmt.UInt(1)).BindU(2, stmt.UInt(2));
    while (replicas.Step()) {
      pb::ReplicaLocation* replica = loc->add_replicas();
      replica->set_node_id(replicas.UInt(0));
      replica->set_address(replicas.Blob(1));
    }
  }
  add_hole_until(last + 1);
}

std::vector<StateMachine::NodeRow> StateMachine::Nodes() {
  ReadConnection conn = Borrow();
  std::vector<NodeRow> nodes;
  Stmt stmt = (*conn).Prepare("SELECT node_id, address, state, weight, capacity, used FROM nodes ORDER BY node_id");
  while (stmt.Step()) {
    NodeRow row;
    row.node_id = stmt.UInt(0);
    row.address = stmt.Blob(1);
    row.state = stmt.Blob(2);
    row.weight = static_cast<double>(stmt.Int(3)) / 1000.0;
    row.capacity_bytes = stmt.UInt(4);
    row.used_bytes = stmt.UInt(5);
    nodes.push_back(std::move(row));
  }
  return nodes;
}

std::vector<StateMachine::GarbageRow> StateMachine::Garbage(uint64_t node_id, size_t limit) {
  ReadConnection conn = Borrow();
  std::vector<GarbageRow> rows;
  Stmt stmt = (*conn).Prepare("SELECT seq, chunk_id, version FROM garbage WHERE node_id=? ORDER BY seq LIMIT ?");
  stmt.BindU(1, node_id).Bind(2, static_cast<int64_t>(limit));
  while (stmt.Step()) {
    GarbageRow row;
    row.seq = stmt.UInt(0);
    row.ref.set_chunk_id(stmt.UInt(1));
    row.ref.set_version(stmt.UInt(2));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<StateMachine::RepairCandidate> StateMachine::UnderReplicated(const std::vector<uint64_t>& live,
                                                                         uint64_t after, size_t scan,
                                                                         int64_t now_unix_ms, uint64_t* next) {
  std::vector<RepairCandidate> all = ScanReplicas(live, after, scan, now_unix_ms, next);
  std::erase_if(all, [](const RepairCandidate& c) { return c.live_holders.size() >= c.want; });
  return all;
}

std::vector<StateMachine::RepairCandidate> StateMachine::ScanReplicas(const std::vector<uint64_t>& live,
                                                                      uint64_t after, size_t scan,
                                                                      int64_t now_unix_ms, uint64_t* next) {
  ReadConnection conn = Borrow();
  std::vector<RepairCandidate> out;
  Stmt stmt = (*conn).Prepare(
      "SELECT c.chunk_id, c.version, i.replicas, "
      "  (SELECT group_concat(r.node_id) FROM replicas r WHERE r.chunk_id=c.chunk_id AND r.version=c.version), "
      "  (SELECT l.expires_ms FROM leases l WHERE l.chunk_id=c.chunk_id), "
      "  (SELECT group_concat(g.node_id) FROM garbage g WHERE g.chunk_id=c.chunk_id), "
      "  c.ino, c.idx, (SELECT k.place_key FROM chunk_keys k WHERE k.chunk_id=c.chunk_id) "
      "FROM chunks c JOIN inodes i ON i.ino=c.ino WHERE c.chunk_id>? "
      "AND NOT EXISTS (SELECT 1 FROM chunk_data d WHERE d.chunk_id=c.chunk_id) ORDER BY c.chunk_id LIMIT ?");
  // chunk ids are u64 stored as their signed bit pattern; the cursor walks
  // SQLite's (signed) order, starting from the smallest value.
  stmt.Bind(1, after == 0 ? INT64_MIN : static_cast<int64_t>(after)).Bind(2, static_cast<int64_t>(scan));
  size_t seen = 0;
  uint64_t last = 0;
  while (stmt.Step()) {
    ++seen;
    last = stmt.UInt(0);
    if (!stmt.IsNull(4) && stmt.Int(4) > now_unix_ms) continue;
    RepairCandidate c;
    c.chunk_id = last;
    c.version = stmt.UInt(1);
    c.want = static_cast<uint32_t>(stmt.Int(2));
    c.ino = stmt.UInt(6);
    c.index = stmt.UInt(7);
    c.place_key = stmt.IsNull(8) ? 0 : stmt.UInt(8);
    auto ids = [&](int column) {
      std::vector<uint64_t> out_ids;
      std::string list = stmt.IsNull(column) ? std::string() : stmt.Blob(column);
      for (size_t start = 0; start < list.size();) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        out_ids.push_back(static_cast<uint64_t>(std::stoll(list.substr(start, comma - start))));
        start = comma + 1;
      }
      return out_ids;
    };
    for (uint64_t node : ids(3)) {
      (std::find(live.begin(), live.end(), node) != live.end() ? c.live_holders : c.other_holders).push_back(node);
    }
    c.deleting = ids(5);
    out.push_back(std::move(c));
  }
  *next = seen < scan ? 0 : last;
  return out;
}

uint64_t StateMachine::CountUnderReplicated(const std::vector<uint64_t>& live, int64_t now_unix_ms) {
  uint64_t count = 0, cursor = 0;
  do {
    count += UnderReplicated(live, cursor, 100'000, now_unix_ms, &cursor).size();
  } while (cursor != 0);
  return count;
}

std::vector<StateMachine::SessionRow> StateMachine::Sessions() {
  ReadConnection conn = Borrow();
  std::vector<SessionRow> rows;
  Stmt stmt = (*conn).Prepare(
      "SELECT s.client_id, p.client_id IS NOT NULL FROM sessions s "
      "LEFT JOIN pinning_sessions p ON p.client_id = s.client_id ORDER BY s.client_id");
  while (stmt.Step()) rows.push_back({stmt.UInt(0), stmt.Int(1) != 0});
  return rows;
}

std::vector<uint64_t> StateMachine::Orphans(size_t limit) {
  ReadConnection conn = Borrow();
  std::vector<uint64_t> inos;
  Stmt stmt = (*conn).Prepare(
      "SELECT ino FROM orphans o WHERE NOT EXISTS (SELECT 1 FROM handles h WHERE h.ino=o.ino) ORDER BY ino LIMIT ?");
  stmt.BindU(1, limit);
  while (stmt.Step()) inos.push_back(stmt.UInt(0));
  return inos;
}

StateMachine::Counts StateMachine::CountAll() {
  ReadConnection conn = Borrow();
  Counts counts;
  counts.inodes = ReadCounter(*conn, "live_inodes");
  counts.files = ReadCounter(*conn, "live_files");
  counts.chunks = ReadCounter(*conn, "live_chunks");
  counts.inline_chunks = ReadCounter(*conn, "inline_chunks");
  counts.inline_bytes = ReadCounter(*conn, "inline_bytes");
  return counts;
}

}  // namespace dfs::meta
