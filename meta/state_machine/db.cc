#include "meta/state_machine/db.h"

#include <string>

#include "common/check.h"

namespace dfs::meta {
namespace {

[[noreturn]] void Fatal(sqlite3* db, const char* what) {
  std::string message = std::string("sqlite: ") + what + ": " + sqlite3_errmsg(db);
  PANIC(message.c_str());
}

}  // namespace

Stmt::~Stmt() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Stmt& Stmt::Bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) Fatal(sqlite3_db_handle(stmt_), "bind");
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view text) {
  if (sqlite3_bind_blob64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT) != SQLITE_OK) {
    Fatal(sqlite3_db_handle(stmt_), "bind");
  }
  return *this;
}

Stmt& Stmt::BindText(int index, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK) {
    Fatal(sqlite3_db_handle(stmt_), "bind");
  }
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) Fatal(sqlite3_db_handle(stmt_), "bind");
  return *this;
}

bool Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Fatal(sqlite3_db_handle(stmt_), sqlite3_sql(stmt_));
}

void Stmt::Run() {
  while (Step()) {
  }
}

std::string Stmt::Blob(int column) const { return std::string(BlobView(column)); }

std::string_view Stmt::BlobView(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);  // after _blob, as SQLite asks
  return data == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(data), size);
}

common::Result<std::unique_ptr<Db>> Db::Open(const std::string& path, const char* synchronous) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "open " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_close(raw);
    return common::UnavailableError(message);
  }
  std::unique_ptr<Db> db(new Db(raw));
  sqlite3_busy_timeout(raw, 10000);
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") + synchronous +
                        "; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536; PRAGMA foreign_keys=OFF;";
  char* error = nullptr;
  if (sqlite3_exec(raw, pragmas.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = "configure " + path + ": " + (error ? error : "?");
    sqlite3_free(error);
    return common::UnavailableError(message);
  }
  return db;
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Stmt Db::Prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    // One borrower at a time per SQL text: a nested use would reset the outer one.
    if (sqlite3_stmt_busy(it->second)) PANIC(("statement already in use: " + std::string(sql)).c_str());
    sqlite3_reset(it->second);
    return Stmt(it->second);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) Fatal(db_, sql);
  cache_.emplace(sql, stmt);
  return Stmt(stmt);
}

void Db::Exec(const char* sql) {
  common::Status status = TryExec(sql);
  if (!status.ok()) PANIC(status.ToString().c_str());
}

common::Status Db::TryExec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = std::string(sql) + ": " + (error ? error : "?");
    sqlite3_free(error);
    return common::InternalError(message);
  }
  return common::Status::Ok();
}

}  // namespace dfs::meta
