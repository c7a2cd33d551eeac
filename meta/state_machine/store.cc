#include "meta/state_machine/store.h"

#include <sys/stat.h>

#include <algorithm>

#include "common/check.h"
#include "common/posix_acl.h"
#include "common/result.h"
#include "proto/meta.pb.h"

namespace dfs::meta {

using common::Status;
using common::StatusCode;

bool Inode::IsDir() const { return S_ISDIR(mode); }
bool Inode::IsReg() const { return S_ISREG(mode); }

bool Creds::InGroup(uint32_t g) const {
  return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
}

Creds CredsFrom(const pb::Credentials& creds) {
  Creds out;
  out.uid = creds.uid();
  out.gid = creds.gid();
  out.groups.assign(creds.groups().begin(), creds.groups().end());
  return out;
}

namespace {
// In InodeFromColumns' order (as reads.cc's readdirplus query).
constexpr const char* kInodeColumns =
    "SELECT generation, mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, replicas, parent, "
    "next_cookie, target FROM inodes WHERE ino=?";
}  // namespace

Inode InodeFromColumns(const Stmt& stmt, int first, uint64_t ino) {
  Inode inode;
  inode.ino = ino;
  inode.generation = stmt.UInt(first + 0);
  inode.mode = static_cast<uint32_t>(stmt.Int(first + 1));
  inode.nlink = static_cast<uint32_t>(stmt.Int(first + 2));
  inode.uid = static_cast<uint32_t>(stmt.Int(first + 3));
  inode.gid = static_cast<uint32_t>(stmt.Int(first + 4));
  inode.size = stmt.UInt(first + 5);
  inode.rdev = stmt.UInt(first + 6);
  inode.atime_ns = stmt.Int(first + 7);
  inode.mtime_ns = stmt.Int(first + 8);
  inode.ctime_ns = stmt.Int(first + 9);
  inode.replicas = static_cast<uint32_t>(stmt.Int(first + 10));
  inode.parent = stmt.UInt(first + 11);
  inode.next_cookie = stmt.UInt(first + 12);
  if (!stmt.IsNull(first + 13)) inode.target = stmt.Blob(first + 13);
  return inode;
}

std::optional<Inode> LoadInode(Db& db, uint64_t ino) {
  Stmt stmt = db.Prepare(kInodeColumns);
  stmt.BindU(1, ino);
  if (!stmt.Step()) return std::nullopt;
  return InodeFromColumns(stmt, 0, ino);
}

namespace {
void BindInode(Stmt& stmt, const Inode& inode) {
  stmt.BindU(1, inode.generation).Bind(2, int64_t{inode.mode}).Bind(3, int64_t{inode.nlink});
  stmt.Bind(4, int64_t{inode.uid}).Bind(5, int64_t{inode.gid}).BindU(6, inode.size).BindU(7, inode.rdev);
  stmt.Bind(8, inode.atime_ns).Bind(9, inode.mtime_ns).Bind(10, inode.ctime_ns);
  stmt.Bind(11, int64_t{inode.replicas}).BindU(12, inode.parent).BindU(13, inode.next_cookie);
  if (S_ISLNK(inode.mode)) {
    stmt.Bind(14, inode.target);
  } else {
    stmt.BindNull(14);
  }
  stmt.BindU(15, inode.ino);
}
}  // namespace

void InsertInode(Db& db, const Inode& inode) {
  Stmt stmt = db.Prepare(
      "INSERT INTO inodes(generation, mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, replicas, "
      "parent, next_cookie, target, ino) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  BindInode(stmt, inode);
  stmt.Run();
  AddToCounter(db, "live_inodes", 1);
  if (inode.IsReg()) AddToCounter(db, "live_files", 1);
}

void SaveInode(Db& db, const Inode& inode) {
  Stmt stmt = db.Prepare(
      "UPDATE inodes SET generation=?, mode=?, nlink=?, uid=?, gid=?, size=?, rdev=?, atime=?, mtime=?, "
      "ctime=?, replicas=?, parent=?, next_cookie=?, target=? WHERE ino=?");
  BindInode(stmt, inode);
  stmt.Run();
}

std::optional<Dentry> LookupDentry(Db& db, uint64_t parent, std::string_view name) {
  Stmt stmt = db.Prepare("SELECT ino, type, cookie FROM dentries WHERE parent=? AND name=?");
  stmt.BindU(1, parent).Bind(2, name);
  if (!stmt.Step()) return std::nullopt;
  return Dentry{stmt.UInt(0), static_cast<uint32_t>(stmt.Int(1)), stmt.UInt(2)};
}

void InsertDentry(Db& db, Inode& dir, std::string_view name, uint64_t ino, uint32_t type) {
  uint64_t cookie = dir.next_cookie++;
  Stmt stmt = db.Prepare("INSERT INTO dentries(parent, name, ino, type, cookie) VALUES(?,?,?,?,?)");
  stmt.BindU(1, dir.ino).Bind(2, name).BindU(3, ino).Bind(4, int64_t{type}).BindU(5, cookie);
  stmt.Run();
}

void DeleteDentry(Db& db, uint64_t parent, std::string_view name) {
  Stmt stmt = db.Prepare("DELETE FROM dentries WHERE parent=? AND name=?");
  stmt.BindU(1, parent).Bind(2, name);
  stmt.Run();
}

bool DirIsEmpty(Db& db, uint64_t dir) {
  Stmt stmt = db.Prepare("SELECT 1 FROM dentries WHERE parent=? LIMIT 1");
  stmt.BindU(1, dir);
  return !stmt.Step();
}

uint64_t TakeCounter(Db& db, const char* name) {
  Stmt stmt = db.Prepare("UPDATE counters SET value=value+1 WHERE name=? RETURNING value-1");
  stmt.BindText(1, name);
  CHECK(stmt.Step());
  uint64_t value = stmt.UInt(0);
  stmt.Run();
  return value;
}

void AddToCounter(Db& db, const char* name, int64_t delta) {
  Stmt stmt = db.Prepare("UPDATE counters SET value=value+? WHERE name=?");
  stmt.Bind(1, delta).BindText(2, name);
  stmt.Run();
}

uint64_t ReadCounter(Db& db, const char* name) {
  Stmt stmt = db.Prepare("SELECT value FROM counters WHERE name=?");
  stmt.BindText(1, name);
  return stmt.Step() ? stmt.UInt(0) : 0;
}

uint64_t StoredBlocks(Db& db, uint64_t ino) {
  static const std::string sql = "SELECT " + std::string(kStoredBlocksSql) + "?)";  // Prepare caches by pointer
  Stmt stmt = db.Prepare(sql.c_str());
  stmt.BindU(1, ino);
  return stmt.Step() ? stmt.UInt(0) : 0;
}

void ToAttr(const Inode& inode, uint64_t blocks, pb::Attr* out) {
  out->set_ino(inode.ino);
  out->set_generation(inode.generation);
  out->set_mode(inode.mode);
  out->set_nlink(inode.nlink);
  out->set_uid(inode.uid);
  out->set_gid(inode.gid);
  out->set_size(inode.size);
  out->set_rdev(inode.rdev);
  out->set_atime_ns(inode.atime_ns);
  out->set_mtime_ns(inode.mtime_ns);
  out->set_ctime_ns(inode.ctime_ns);
  out->set_blocks(inode.IsDir() ? kDirSizeBytes / 512 : blocks);
  out->set_replicas(inode.replicas);
  if (S_ISLNK(inode.mode)) out->set_symlink_target(inode.target);
}

void DropChunk(Db& db, uint64_t chunk_id) {
  {
    Stmt stmt = db.Prepare(
        "INSERT INTO garbage(node_id, chunk_id, version) SELECT node_id, chunk_id, 0 FROM replicas "
        "WHERE chunk_id=?");
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  {
    Stmt stmt = db.Prepare("DELETE FROM replicas WHERE chunk_id=?");
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  {
    Stmt stmt = db.Prepare("DELETE FROM leases WHERE chunk_id=?");
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  {
    Stmt stmt = db.Prepare("DELETE FROM chunk_stored WHERE chunk_id=?");
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  {
    Stmt stmt = db.Prepare("DELETE FROM chunk_keys WHERE chunk_id=?");
    stmt.BindU(1, chunk_id);
    stmt.Run();
  }
  {
    Stmt stmt = db.Prepare("DELETE FROM chunk_data WHERE chunk_id=? RETURNING length(data)");
    stmt.BindU(1, chunk_id);
    if (stmt.Step()) {
      const int64_t bytes = stmt.Int(0);
      stmt.Run();
      AddToCounter(db, "inline_chunks", -1);
      AddToCounter(db, "inline_bytes", -bytes);
    }
  }
  Stmt stmt = db.Prepare("DELETE FROM chunks WHERE chunk_id=?");
  stmt.BindU(1, chunk_id);
  stmt.Run();
  if (db.Changes() > 0) AddToCounter(db, "live_chunks", -1);
}

void PurgeInode(Db& db, uint64_t ino) {
  std::vector<uint64_t> chunk_ids;
  {
    Stmt stmt = db.Prepare("SELECT chunk_id FROM chunks WHERE ino=?");
    stmt.BindU(1, ino);
    while (stmt.Step()) chunk_ids.push_back(stmt.UInt(0));
  }
  for (uint64_t id : chunk_ids) DropChunk(db, id);
  {
    Stmt stmt = db.Prepare("DELETE FROM xattrs WHERE ino=?");
    stmt.BindU(1, ino);
    stmt.Run();
  }
  for (const char* sql : {"DELETE FROM orphans WHERE ino=?", "DELETE FROM locks WHERE ino=?"}) {
    Stmt stmt = db.Prepare(sql);
    stmt.BindU(1, ino);
    stmt.Run();
  }
  Stmt stmt = db.Prepare("DELETE FROM inodes WHERE ino=? RETURNING mode");
  stmt.BindU(1, ino);
  if (stmt.Step()) {
    const bool regular = S_ISREG(static_cast<uint32_t>(stmt.Int(0)));
    stmt.Run();
    AddToCounter(db, "live_inodes", -1);
    if (regular) AddToCounter(db, "live_files", -1);
  }
}

bool HasHandles(Db& db, uint64_t ino) {
  Stmt stmt = db.Prepare("SELECT 1 FROM handles WHERE ino=? LIMIT 1");
  stmt.BindU(1, ino);
  return stmt.Step();
}

Status ValidateName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return Status(StatusCode::kInvalidArgument, "invalid name");
  }
  if (name.size() > kMaxNameBytes) return Status(StatusCode::kNameTooLong, "name over 255 bytes");
  return Status::Ok();
}

Status CheckAccess(Db& db, const Inode& inode, const Creds& creds, uint32_t mask) {
  if (creds.uid == 0) {
    if ((mask & kMayExec) && !inode.IsDir() && (inode.mode & 0111) == 0) {
      return Status(StatusCode::kPermissionDenied, "no execute bit");
    }
    return Status::Ok();
  }
  uint32_t bits;
  if (creds.uid == inode.uid) {
    bits = (inode.mode >> 6) & 7;  // the ACL's owner entry is these bits
  } else if (std::optional<std::string> acl =
                 creds.acls ? LoadXattr(db, inode.ino, common::kAccessAclXattr) : std::nullopt) {
    common::Result<std::vector<common::AclEntry>> entries = common::ParseAcl(*acl);
    if (entries.ok() && !entries->empty()) {
      auto in_group = [&](uint32_t gid) { return creds.InGroup(gid); };
      if (common::AclPermits(*entries, inode.uid, inode.gid, creds.uid, in_group, mask)) return Status::Ok();
      return Status(StatusCode::kPermissionDenied, "permission denied by the ACL");
    }
    bits = creds.InGroup(inode.gid) ? (inode.mode >> 3) & 7 : inode.mode & 7;
  } else if (creds.InGroup(inode.gid)) {
    bits = (inode.mode >> 3) & 7;
  } else {
    bits = inode.mode & 7;
  }
  if ((bits & mask) != mask) return Status(StatusCode::kPermissionDenied, "permission denied");
  return Status::Ok();
}

std::optional<std::string> LoadXattr(Db& db, uint64_t ino, std::string_view name) {
  Stmt stmt = db.Prepare("SELECT value FROM xattrs WHERE ino=? AND name=?");
  stmt.BindU(1, ino).Bind(2, std::string(name));
  if (!stmt.Step()) return std::nullopt;
  return stmt.Blob(0);
}

bool HasXattr(Db& db, uint64_t ino, std::string_view name) {
  Stmt stmt = db.Prepare("SELECT 1 FROM xattrs WHERE ino=? AND name=?");
  stmt.BindU(1, ino).Bind(2, name);
  return stmt.Step();
}

bool HasAnyXattr(Db& db, uint64_t ino) {
  Stmt stmt = db.Prepare("SELECT 1 FROM xattrs WHERE ino=? LIMIT 1");
  stmt.BindU(1, ino);
  return stmt.Step();
}

void StoreXattr(Db& db, uint64_t ino, std::string_view name, std::string_view value) {
  Stmt stmt = db.Prepare("INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES(?,?,?)");
  stmt.BindU(1, ino).Bind(2, std::string(name)).Bind(3, std::string(value));
  stmt.Run();
}

Status CheckOwner(const Inode& inode, const Creds& creds) {
  if (creds.uid == 0 || creds.uid == inode.uid) return Status::Ok();
  return Status(StatusCode::kNotPermitted, "not the owner");
}

Status CheckSticky(const Inode& dir, const Inode& victim, const Creds& creds) {
  if (!(dir.mode & S_ISVTX) || creds.uid == 0 || creds.uid == dir.uid || creds.uid == victim.uid) {
    return Status::Ok();
  }
  return Status(StatusCode::kNotPermitted, "sticky directory");
}

common::Result<Inode> LoadDir(Db& db, uint64_t ino, const Creds& creds, uint32_t mask) {
  std::optional<Inode> dir = LoadInode(db, ino);
  if (!dir) return Status(StatusCode::kNotFound, "no such directory");
  if (!dir->IsDir()) return Status(StatusCode::kNotADirectory, "not a directory");
  RETURN_IF_ERROR(CheckAccess(db, *dir, creds, mask));
  if (dir->nlink == 0) return Status(StatusCode::kNotFound, "directory was removed");
  return *dir;
}

}  // namespace dfs::meta
