// Row-level helpers over the schema (schema.h) shared by the operations in
// ops/ and by the read path: inodes, directory entries, counters, and the
// POSIX permission model.
//
// Permission model: dfs-meta makes the full POSIX checks itself from the
// request's credentials (owner/group/other bits, supplementary groups, root
// bypass as CAP_DAC_OVERRIDE/CAP_FOWNER/CAP_CHOWN, sticky directories, the
// chown/chmod rules, suid/sgid clearing, setgid directory inheritance), so the
// answer never depends on the client mounting with default_permissions. POSIX
// ACLs are stored as xattrs but not enforced (listed as missing).
//
// Thread-safety: free functions on a Db the caller owns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "meta/state_machine/db.h"

namespace dfs::pb {
class Attr;
class Credentials;
}  // namespace dfs::pb

namespace dfs::meta {

// POSIX limits, as ext4.
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxSymlinkBytes = 4095;
inline constexpr uint32_t kMaxLinks = 65000;
inline constexpr uint32_t kDirSizeBytes = 4096;

struct Inode {
  uint64_t ino = 0;
  uint64_t generation = 1;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint32_t replicas = 0;
  uint64_t parent = 0;       // directories: the containing directory
  uint64_t next_cookie = 1;  // directories: next readdir cookie
  std::string target;        // symlinks

  bool IsDir() const;
  bool IsReg() const;
};

struct Dentry {
  uint64_t ino = 0;
  uint32_t type = 0;  // S_IFMT bits
  uint64_t cookie = 0;
};

struct Creds {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  // Judge by stored access ACLs too (false only for log entries from before
  // they were enforced: Op.posix_acls).
  bool acls = true;
  bool InGroup(uint32_t gid) const;
};
Creds CredsFrom(const pb::Credentials& creds);

std::optional<Inode> LoadInode(Db& db, uint64_t ino);
// The inode `ino` from the 14 columns generation, mode, nlink, uid, gid,
// size, rdev, atime, mtime, ctime, replicas, parent, next_cookie, target of
// `stmt`'s current row, starting at column `first`.
Inode InodeFromColumns(const Stmt& stmt, int first, uint64_t ino);
void InsertInode(Db& db, const Inode& inode);
void SaveInode(Db& db, const Inode& inode);
std::optional<Dentry> LookupDentry(Db& db, uint64_t parent, std::string_view name);
// Inserts name -> ino in `dir`, taking the next cookie of `dir` (saved).
void InsertDentry(Db& db, Inode& dir, std::string_view name, uint64_t ino, uint32_t type);
void DeleteDentry(Db& db, uint64_t parent, std::string_view name);
bool DirIsEmpty(Db& db, uint64_t dir);
// Returns the counter's value and stores value + 1.
uint64_t TakeCounter(Db& db, const char* name);
// Adds `delta` to a counter.
void AddToCounter(Db& db, const char* name, int64_t delta);
uint64_t ReadCounter(Db& db, const char* name);
// A file's blocks (512-byte units): per chunk the lesser of its committed
// length and what its replicas said it takes (chunk_stored). Completed with
// the inode's column and ")": "?)" for a parameter, "d.ino)" in a listing.
inline constexpr std::string_view kStoredBlocksSql =
    "(SELECT COALESCE(SUM((MIN(c.length, COALESCE(s.bytes, c.length)) + 511) / 512), 0) FROM chunks c "
    "LEFT JOIN chunk_stored s ON s.chunk_id = c.chunk_id WHERE c.ino = ";
// Blocks (512-byte units) stored for a file (kStoredBlocksSql).
uint64_t StoredBlocks(Db& db, uint64_t ino);
void ToAttr(const Inode& inode, uint64_t blocks, pb::Attr* out);

// Frees an inode that has no names left and no open handles: its entries,
// xattrs, chunks (queued as garbage on their replicas) and leases.
void PurgeInode(Db& db, uint64_t ino);
// Queues every replica of `chunk_id` for deletion and forgets the chunk.
void DropChunk(Db& db, uint64_t chunk_id);
// True if the inode has open handles.
bool HasHandles(Db& db, uint64_t ino);

// OK, or InvalidArgument for a name that is empty, "." or "..", or holds
// '/' or NUL; NameTooLong over 255 bytes.
common::Status ValidateName(std::string_view name);

// Access bits as in access(2).
inline constexpr uint32_t kMayRead = 4, kMayWrite = 2, kMayExec = 1;
// EACCES unless `creds` may access `inode` for `mask` (root: always, except
// exec of a non-directory without any x bit). A caller other than the owner
// is judged by the stored access ACL when there is one (common/posix_acl.h).
common::Status CheckAccess(Db& db, const Inode& inode, const Creds& creds, uint32_t mask);
// The xattr `name` of `ino` (names and values are BLOBs), or nullopt.
std::optional<std::string> LoadXattr(Db& db, uint64_t ino, std::string_view name);
void StoreXattr(Db& db, uint64_t ino, std::string_view name, std::string_view value);
// Whether `ino` has the xattr `name` (reads no value).
bool HasXattr(Db& db, uint64_t ino, std::string_view name);
// Whether `ino` has any extended attribute.
bool HasAnyXattr(Db& db, uint64_t ino);
// EPERM unless the caller owns the inode or is root.
common::Status CheckOwner(const Inode& inode, const Creds& creds);
// The sticky-directory rule for removing or replacing `victim` in `dir`.
common::Status CheckSticky(const Inode& dir, const Inode& victim, const Creds& creds);
// The directory `ino` as a parent of a namespace operation: ENOENT if it
// does not exist or was removed, ENOTDIR if it is not a directory, EACCES
// without `mask` access.
common::Result<Inode> LoadDir(Db& db, uint64_t ino, const Creds& creds, uint32_t mask);

}  // namespace dfs::meta
