#include "meta/state_machine/schema.h"

#include <spdlog/spdlog.h>

#include <string>

namespace dfs::meta {

common::Status InitSchema(Db& db) {
  {
    // Databases from before dentries_listing: building it reads every
    // entry once, which a big namespace notices at the first start.
    Stmt old = db.Prepare("SELECT 1 FROM sqlite_master WHERE type='index' AND name='dentries_cookie'");
    if (old.Step()) spdlog::info("meta.db: indexing directory listings (once, after an upgrade)");
  }
  RETURN_IF_ERROR(db.TryExec(R"sql(
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inodes(
  ino INTEGER PRIMARY KEY, generation INTEGER NOT NULL, mode INTEGER NOT NULL, nlink INTEGER NOT NULL,
  uid INTEGER NOT NULL, gid INTEGER NOT NULL, size INTEGER NOT NULL, rdev INTEGER NOT NULL,
  atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, replicas INTEGER NOT NULL,
  parent INTEGER NOT NULL, next_cookie INTEGER NOT NULL, target BLOB);
CREATE TABLE IF NOT EXISTS dentries(parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER NOT NULL,
  type INTEGER NOT NULL, cookie INTEGER NOT NULL, PRIMARY KEY(parent, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dentries_listing ON dentries(parent, cookie, ino, type);
CREATE TABLE IF NOT EXISTS xattrs(ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY(ino, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks(ino INTEGER NOT NULL, idx INTEGER NOT NULL, chunk_id INTEGER NOT NULL,
  version INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY(ino, idx)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_id ON chunks(chunk_id);
CREATE TABLE IF NOT EXISTS chunk_data(chunk_id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunk_stored(chunk_id INTEGER PRIMARY KEY, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replicas(chunk_id INTEGER NOT NULL, node_id INTEGER NOT NULL,
  version INTEGER NOT NULL, PRIMARY KEY(chunk_id, node_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases(chunk_id INTEGER PRIMARY KEY, lease_id INTEGER NOT NULL,
  client_id INTEGER NOT NULL, handle_id INTEGER NOT NULL, version INTEGER NOT NULL,
  base_version INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS leases_by_handle ON leases(client_id, handle_id);
CREATE TABLE IF NOT EXISTS garbage(seq INTEGER PRIMARY KEY, node_id INTEGER NOT NULL,
  chunk_id INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS garbage_by_node ON garbage(node_id, seq);
CREATE INDEX IF NOT EXISTS garbage_by_chunk ON garbage(chunk_id);
CREATE TABLE IF NOT EXISTS nodes(node_id INTEGER PRIMARY KEY, address TEXT NOT NULL, state TEXT NOT NULL,
  weight INTEGER NOT NULL, capacity INTEGER NOT NULL, used INTEGER NOT NULL, registered_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(client_id INTEGER PRIMARY KEY, hostname TEXT NOT NULL,
  mount_point TEXT NOT NULL, lease_ms INTEGER NOT NULL, opened_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS handles(handle_id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL,
  ino INTEGER NOT NULL, flags INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS handles_by_client ON handles(client_id);
CREATE INDEX IF NOT EXISTS handles_by_ino ON handles(ino);
CREATE TABLE IF NOT EXISTS requests(client_id INTEGER NOT NULL, request_id INTEGER NOT NULL,
  result BLOB NOT NULL, PRIMARY KEY(client_id, request_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_keys(chunk_id INTEGER PRIMARY KEY, place_key INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members(raft_id INTEGER PRIMARY KEY, raft_address TEXT NOT NULL,
  rpc_address TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orphans(ino INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS pinning_sessions(client_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ended_sessions(client_id INTEGER PRIMARY KEY, ended_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS locks(ino INTEGER NOT NULL, kind INTEGER NOT NULL, client_id INTEGER NOT NULL,
  owner INTEGER NOT NULL, type INTEGER NOT NULL, first_byte INTEGER NOT NULL, last_byte INTEGER NOT NULL,
  pid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS locks_by_ino ON locks(ino, kind, first_byte);
CREATE INDEX IF NOT EXISTS locks_by_client ON locks(client_id);
INSERT OR IGNORE INTO counters VALUES('schema_version', 1), ('applied_index', 0), ('next_ino', 2), ('next_chunk_id', 1),
  ('next_handle', 1), ('next_client', 1), ('next_lease', 1), ('live_inodes', 1), ('live_files', 0),
  ('live_chunks', 0), ('inline_chunks', 0), ('inline_bytes', 0);
INSERT OR IGNORE INTO inodes VALUES(1, 1, 16877, 2, 0, 0, 4096, 0, 0, 0, 0, 3, 1, 1, NULL);
DROP INDEX IF EXISTS dentries_cookie;
COMMIT;
)sql"));
  Stmt stmt = db.Prepare("SELECT value FROM counters WHERE name='schema_version'");
  if (!stmt.Step() || stmt.Int(0) > kSchemaVersion) {
    return common::FailedPreconditionError("database schema is newer than this dfs-meta");
  }
  return common::Status::Ok();
}

}  // namespace dfs::meta
