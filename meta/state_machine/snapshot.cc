// StateMachine: what Raft needs beyond Apply - database images for
// snapshots, restoring one, and a canonical dump to compare replicas.
#include <sqlite3.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/check.h"
#include "meta/state_machine/schema.h"
#include "meta/state_machine/state_machine.h"
#include "meta/state_machine/store.h"

namespace dfs::meta {

namespace {

// Runs `sql` (one statement) on `db`, calling `row(stmt)` per row.
template <typename Row>
common::Status ForEachRow(sqlite3* db, const std::string& sql, Row row) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return common::InternalError(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return common::InternalError(std::string("step: ") + sqlite3_errmsg(db));
  return common::Status::Ok();
}

}  // namespace

void StateMachine::ImageDeleter::operator()(unsigned char* p) const { sqlite3_free(p); }

common::Result<StateMachine::ImagePin> StateMachine::PinImage() {
  ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(path_, options_.synchronous));
  // The copy passes every page once: a big page cache would only hold
  // pages nobody reads again.
  RETURN_IF_ERROR(db->TryExec("PRAGMA cache_size=-2048; BEGIN"));
  // BEGIN alone starts no read transaction; the first read does, and it
  // sees every transaction the writer has committed, i.e. every applied
  // entry (the writer commits each before the applier moves on).
  int64_t index = -1;
  {
    Stmt stmt = db->Prepare("SELECT value FROM counters WHERE name='applied_index'");
    if (stmt.Step()) index = stmt.Int(0);
  }
  if (index < 0) return common::InternalError("the database records no applied index");
  return ImagePin(std::move(db), static_cast<uint64_t>(index));
}

common::Result<StateMachine::Image> StateMachine::ImagePin::Take() {
  if (!db_) return common::FailedPreconditionError("image already taken");
  sqlite3_int64 size = 0;
  unsigned char* bytes = sqlite3_serialize(db_->raw(), "main", &size, 0);
  db_.reset();  // ends the read transaction: the WAL may start over again
  if (bytes == nullptr) return common::InternalError("sqlite3_serialize failed (out of memory?)");
  Image image;
  image.bytes.reset(bytes);
  image.size = static_cast<size_t>(size);
  return image;
}

common::Result<StateMachine::Image> StateMachine::Serialize() {
  ASSIGN_OR_RETURN(ImagePin pin, PinImage());
  return pin.Take();
}

common::Status StateMachine::Restore(std::string_view image) {
  static constexpr char kMagic[] = "SQLite format 3";  // 16 bytes with the NUL
  if (image.size() < 512 || std::memcmp(image.data(), kMagic, sizeof kMagic) != 0) {
    return common::InvalidArgumentError("snapshot is not an SQLite database image");
  }
  auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(image.size()));
  if (copy == nullptr) return common::InternalError("out of memory for the snapshot image");
  std::memcpy(copy, image.data(), image.size());
  // Bytes 18/19 say "WAL" in an image of a WAL database, and a memory
  // database cannot open a WAL image (SQLITE_CANTOPEN). The backup below
  // keeps the destination in WAL mode regardless.
  copy[18] = 1;
  copy[19] = 1;
  sqlite3* scratch = nullptr;
  if (sqlite3_open_v2(":memory:", &scratch, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_free(copy);
    sqlite3_close(scratch);
    return common::InternalError("cannot open a memory database");
  }
  const auto size = static_cast<sqlite3_int64>(image.size());
  if (sqlite3_deserialize(scratch, "main", copy, size, size,
                          SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) != SQLITE_OK) {
    sqlite3_close(scratch);
    return common::InvalidArgumentError("snapshot image does not load");
  }
  int64_t image_index = -1, image_schema = -1;
  common::Status read = ForEachRow(
      scratch, "SELECT name, value FROM counters WHERE name IN ('applied_index', 'schema_version')",
      [&](sqlite3_stmt* stmt) {
        const char* name = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        (std::strcmp(name, "applied_index") == 0 ? image_index : image_schema) = sqlite3_column_int64(stmt, 1);
      });
  common::Status status = common::Status::Ok();
  if (!read.ok() || image_index < 0 || image_schema < 0) {
    status = common::InvalidArgumentError("snapshot image is not a dfs metadata database");
  } else if (image_schema > kSchemaVersion) {
    status = common::FailedPreconditionError("snapshot schema is newer than this dfs-meta");
  } else if (static_cast<uint64_t>(image_index) > applied_index_) {
    sqlite3_backup* backup = sqlite3_backup_init(writer_->raw(), "main", scratch, "main");
    if (backup == nullptr) {
      status = common::InternalError(std::string("backup: ") + sqlite3_errmsg(writer_->raw()));
    } else {
      int rc = sqlite3_backup_step(backup, -1);
      sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE) {
        status = common::InternalError(std::string("installing the snapshot: ") + sqlite3_errstr(rc));
      } else {
        applied_index_ = static_cast<uint64_t>(image_index);
        // An image from an older dfs-meta may lack newer (empty) tables.
        status = InitSchema(*writer_);
      }
    }
  }
  sqlite3_close(scratch);
  return status;
}

namespace {

// Every table's rows in column order; the caller holds a read transaction.
std::string Dump(sqlite3* db) {
  std::string out;
  std::vector<std::string> tables;
  CHECK(ForEachRow(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", [&](sqlite3_stmt* stmt) {
          tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
        }).ok());
  for (const std::string& table : tables) {
    int columns = 0;
    CHECK(ForEachRow(db, "PRAGMA table_info(" + table + ")", [&](sqlite3_stmt*) { ++columns; }).ok());
    std::string order;
    for (int i = 1; i <= columns; ++i) order += (i > 1 ? "," : "") + std::to_string(i);
    out += "# " + table + "\n";
    CHECK(ForEachRow(db, "SELECT * FROM " + table + " ORDER BY " + order, [&](sqlite3_stmt* stmt) {
            for (int i = 0; i < columns; ++i) {
              const auto* bytes = static_cast<const unsigned char*>(sqlite3_column_blob(stmt, i));
              int n = sqlite3_column_bytes(stmt, i);
              static constexpr char kHex[] = "0123456789abcdef";
              out += sqlite3_column_type(stmt, i) == SQLITE_NULL ? "NULL" : "";
              for (int b = 0; b < n; ++b) {
                out += kHex[bytes[b] >> 4];
                out += kHex[bytes[b] & 15];
              }
              out += i + 1 < columns ? '|' : '\n';
            }
          }).ok());
  }
  return out;
}

}  // namespace

std::string StateMachine::CanonicalDump() {
  ReadConnection conn = Borrow();  // one read transaction: a consistent dump
  return Dump((*conn).raw());
}

common::Result<std::string> StateMachine::DumpFile(const std::string& path, uint64_t* applied_index) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return common::UnavailableError("cannot open " + path);
  }
  sqlite3_busy_timeout(db, 5000);
  std::string out;
  common::Status status = ForEachRow(db, "BEGIN", [](sqlite3_stmt*) {});
  if (status.ok()) {
    status = ForEachRow(db, "SELECT value FROM counters WHERE name='applied_index'",
                        [&](sqlite3_stmt* stmt) { *applied_index = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0)); });
  }
  if (status.ok()) out = Dump(db);
  sqlite3_close(db);
  if (!status.ok()) return status;
  return out;
}

std::vector<StateMachine::MemberRow> StateMachine::Members() {
  ReadConnection conn = Borrow();
  std::vector<MemberRow> members;
  Stmt stmt = (*conn).Prepare("SELECT raft_id, raft_address, rpc_address FROM members ORDER BY raft_id");
  while (stmt.Step()) {
    MemberRow row;
    row.raft_id = stmt.UInt(0);
    row.raft_address = stmt.Blob(1);
    row.rpc_address = stmt.Blob(2);
    members.push_back(std::move(row));
  }
  return members;
}

}  // namespace dfs::meta
