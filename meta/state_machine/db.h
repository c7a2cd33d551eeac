// Db: one SQLite connection with a cache of prepared statements, and Stmt, a
// borrowed statement that resets itself when it goes out of scope.
//
// Failure policy: SQLite errors other than "no row" are fatal (PANIC with the
// SQL and SQLite's message). The state machine must never continue from a
// half-applied transaction or an unreadable database, exactly as a node must
// stop after a failed Raft log write; a supervisor restarts it and the log (or
// the WAL) brings it back. Errors opening the database at startup are
// Statuses (an operator mistake, not a bug).
//
// Thread-safety: a Db is used by one thread at a time (the applier owns the
// writer connection; readers borrow connections from a pool).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace dfs::meta {

class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based, as in SQLite.
  Stmt& Bind(int index, int64_t value);
  Stmt& BindU(int index, uint64_t value) { return Bind(index, static_cast<int64_t>(value)); }
  Stmt& Bind(int index, std::string_view text);  // bound as a BLOB (names are bytes)
  Stmt& BindText(int index, std::string_view text);  // bound as TEXT (for TEXT columns)
  Stmt& BindNull(int index);

  // Advances: true if a row is available, false when done. PANICs on error.
  bool Step();
  // Steps to completion (for statements without rows).
  void Run();

  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  uint64_t UInt(int column) const { return static_cast<uint64_t>(Int(column)); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Blob(int column) const;
  // The same without a copy: valid until the next Step.
  std::string_view BlobView(int column) const;

 private:
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if needed) the database at `path` with WAL journaling.
  // `synchronous` is the PRAGMA value ("FULL" or "NORMAL"). Errors are
  // Unavailable/Internal Statuses naming the path.
  static common::Result<std::unique_ptr<Db>> Open(const std::string& path, const char* synchronous);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // A prepared statement for `sql`, cached by the pointer value: pass string
  // literals (or other strings that outlive the Db).
  Stmt Prepare(const char* sql);
  // Runs one or more statements without results; PANICs on error.
  void Exec(const char* sql);
  // As Exec, but returns the error as a Status.
  common::Status TryExec(const char* sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  sqlite3* raw() { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

}  // namespace dfs::meta
