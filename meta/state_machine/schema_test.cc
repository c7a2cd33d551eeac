// The schema: a listing page is read from one index alone, and databases
// made before that index get it at their next open.
#include "meta/state_machine/schema.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

// Every row of `sql` (no parameters bound), column `column` as text.
std::string Rows(Db& db, const char* sql, int column) {
  std::string out;
  Stmt stmt = db.Prepare(sql);
  while (stmt.Step()) out += stmt.Blob(column) + "\n";
  return out;
}

std::string PlanOf(Db& db, const char* sql) {
  // Not through Db::Prepare, which caches by the text's address.
  sqlite3_stmt* stmt = nullptr;
  const std::string text = std::string("EXPLAIN QUERY PLAN ") + sql;
  if (sqlite3_prepare_v2(db.raw(), text.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return "cannot prepare";
  std::string out;
  while (sqlite3_step(stmt) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3)) + std::string("\n");
  sqlite3_finalize(stmt);
  return out;
}

std::string Indexes(Db& db) {
  return Rows(db, "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='dentries' ORDER BY name", 0);
}

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Db::Open(dir_ + "/meta.db", "NORMAL");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    ASSERT_TRUE(InitSchema(*db_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_ = testing::MakeTempDir();
  std::unique_ptr<Db> db_;
};

TEST_F(SchemaTest, AListingPageIsOneCoveringIndexScan) {
  const std::string plan = PlanOf(*db_, kListingSql);
  EXPECT_NE(plan.find("COVERING INDEX dentries_listing"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << "sorted without the index: " << plan;
}

TEST_F(SchemaTest, ADatabaseWithTheOldIndexGetsTheNewOneAndKeepsItsEntries) {
  db_->Exec(
      "DROP INDEX dentries_listing;"
      "CREATE UNIQUE INDEX dentries_cookie ON dentries(parent, cookie);"
      "INSERT INTO dentries VALUES(1, CAST('b' AS BLOB), 7, 32768, 2), (1, CAST('a' AS BLOB), 8, 16384, 1);");
  ASSERT_EQ(Indexes(*db_), "dentries_cookie\n");
  ASSERT_TRUE(InitSchema(*db_).ok());
  EXPECT_EQ(Indexes(*db_), "dentries_listing\n");
  Stmt page = db_->Prepare(kListingSql);
  page.BindU(1, kRootIno).BindU(2, 0).Bind(3, int64_t{10});
  std::string names;
  while (page.Step()) names += page.Blob(0) + ":" + std::to_string(page.Int(1)) + " ";
  EXPECT_EQ(names, "a:8 b:7 ");
  ASSERT_TRUE(InitSchema(*db_).ok()) << "idempotent";
  EXPECT_EQ(Indexes(*db_), "dentries_listing\n");
}

// A database from before small files were kept in meta gets the table and
// its counters (zero) at the first start of the upgraded member.
TEST_F(SchemaTest, ADatabaseFromBeforeInlineDataGetsItsTableAndCounters) {
  db_->Exec("DROP TABLE chunk_data; DELETE FROM counters WHERE name IN ('inline_chunks', 'inline_bytes');");
  ASSERT_TRUE(InitSchema(*db_).ok());
  Stmt counters = db_->Prepare("SELECT name, value FROM counters WHERE name LIKE 'inline%' ORDER BY name");
  std::string got;
  while (counters.Step()) got += counters.Blob(0) + "=" + std::to_string(counters.Int(1)) + " ";
  EXPECT_EQ(got, "inline_bytes=0 inline_chunks=0 ");
  Stmt table = db_->Prepare("SELECT count(*) FROM chunk_data");
  ASSERT_TRUE(table.Step());
  EXPECT_EQ(table.Int(0), 0);
}

}  // namespace
}  // namespace dfs::meta
