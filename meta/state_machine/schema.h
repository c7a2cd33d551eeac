// The SQLite schema of the metadata state machine: the durable format of
// dfs-meta (and, with meta-raft, the content of a snapshot). Owned here.
//
// All integers are SQLite INTEGERs (64-bit signed; u64 values are stored as
// their two's-complement bit pattern). Times are nanoseconds since the Unix
// epoch. Names are BLOBs (bytes, compared with memcmp).
//
//   counters(name TEXT PK, value)      next_ino, next_chunk_id, next_handle,
//                                      next_client, next_lease, schema_version;
//                                      applied_index (the Raft log index of
//                                      the last applied Entry, 0 without Raft);
//                                      live_inodes, live_files, live_chunks
//                                      (kept by the ops so statfs is O(1));
//                                      inline_chunks, inline_bytes (the rows
//                                      and bytes of chunk_data)
//   inodes(ino PK, generation, mode, nlink, uid, gid, size, rdev,
//          atime, mtime, ctime, replicas, parent, next_cookie, target)
//       parent: for directories the containing directory (root: itself),
//               0 for everything else (files may have many names).
//       next_cookie: directories only, the next readdir cookie to hand out.
//       nlink = 0 with rows in `handles` or in `orphans`: unlinked, still open
//       or maybe read (an orphan).
//   dentries(parent, name, ino, type, cookie)  PK (parent, name)
//       index dentries_listing(parent, cookie, ino, type): readdir pages in
//       cookie order, from the index alone (kListingSql: no seek into the
//       table per entry, which was half of a listing's time in SQLite).
//       Databases made before it had dentries_cookie(parent, cookie), which
//       InitSchema replaces.
//       cookie: the entry's insertion sequence number in its directory,
//       never reused, so a cookie stays a valid resume point while the
//       directory changes and a page is one index range scan.
//   xattrs(ino, name, value)            PK (ino, name)
//   chunks(ino, idx, chunk_id, version, length)  PK (ino, idx), unique chunk_id
//       version/length: the committed version; a hole has no row.
//   chunk_stored(chunk_id PK, bytes)  what a chunk's committed version takes
//       on its replicas' disks (pb.ChunkCommit.stored_bytes), when its
//       writer said: a file's blocks count the lesser of that and `length`
//       (kStoredBlocksSql). None: `length` (older writers, inline chunks).
//   chunk_data(chunk_id PK, data)  chunks kept in meta rather than on
//       chunkservers (a small file's chunk 0, pb.ChunkCommit.inlined): the
//       chunk's `length` bytes; such a chunk has no `replicas` at its
//       version and is never repaired, moved or collected on chunkservers.
//   replicas(chunk_id, node_id, version)  PK (chunk_id, node_id)
//   leases(chunk_id PK, lease_id, client_id, handle_id, version,
//          base_version, expires_ms)  the current (or last) write lease;
//       index leases_by_handle(client_id, handle_id): Release ends a handle's
//       leases (expires_ms = 0) without a scan
//   garbage(seq PK, node_id, chunk_id, version)  chunk versions to delete on
//       a chunkserver (version 0 = all); removed by GcDoneOp; indexed by
//       node (heartbeats) and by chunk (repairs avoid nodes still deleting)
//   nodes(node_id PK, address, state, weight (milli-units), capacity, used, registered_ns)
//   sessions(client_id PK, hostname, mount_point, lease_ms, opened_ns)
//   handles(handle_id PK, client_id, ino, flags)  index by client and by ino
//   requests(client_id, request_id, result)  PK (client_id, request_id)
//       the exactly-once table: the serialized OpResult of each recent
//       mutation; per client only the newest kRequestWindow ids are kept.
//   chunk_keys(chunk_id PK, place_key)  the hash-ring key a chunk was placed
//       by when it was created (the leader moves copies back to that key's
//       ring nodes after the membership changes); none for chunks made
//       before it existed: those use (ino, idx) (service/write_lease.h)
//   members(raft_id PK, raft_address, rpc_address)  the metadata Raft group:
//       where followers send clients (SetMemberOp)
//   orphans(ino PK)  regular files with no name left whose free waits until
//       no client may read them through a lazy open (Op.defer_frees,
//       FreeOrphansOp); the inode row stays, with nlink 0, until then
//   pinning_sessions(client_id PK)  the sessions that report lazy read
//       opens (OpenSessionRequest.reports_read_pins): a new leader waits
//       for these only before it frees an orphan
//   locks(ino, kind, client_id, owner, type, first_byte, last_byte, pid)
//       file locks (ops/lock.cc): kind and type as pb::LockKind/LockType,
//       the byte range inclusive (flock: 0..INT64_MAX); an owner's rows on
//       one inode never overlap. Indexed by (ino, kind, first_byte) and by
//       client (a session's locks go when it ends); PurgeInode drops them.
//
// The root directory is inode 1 (mode 0755 dir, owned by root), created by
// InitSchema with times 0 (no clock inside the state machine).
#pragma once

#include "meta/state_machine/db.h"

namespace dfs::meta {

inline constexpr uint64_t kRootIno = 1;
inline constexpr int64_t kSchemaVersion = 1;
// Requests remembered per client for exactly-once replies.
inline constexpr uint64_t kRequestWindow = 1024;

// One page of a directory listing (readdir): names, inodes and types of
// the entries of ?1 after cookie ?2, at most ?3 of them.
inline constexpr const char* kListingSql =
    "SELECT name, ino, type, cookie FROM dentries WHERE parent=?1 AND cookie>?2 ORDER BY cookie LIMIT ?3";

// Creates the tables and the root if the database is empty; checks the
// schema version otherwise (FailedPrecondition if it is newer than ours).
// Idempotent: also run after a snapshot restore, which may bring an image
// from before a table was added.
common::Status InitSchema(Db& db);

}  // namespace dfs::meta
