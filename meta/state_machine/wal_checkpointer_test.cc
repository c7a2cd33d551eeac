// WalCheckpointer: checkpoints happen on its thread and lose no row; a WAL
// that a reader kept from being copied is copied inline and starts over once
// the reader lets go.
#include "meta/state_machine/wal_checkpointer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

constexpr size_t kRowBytes = 60 * 1024;  // about 15 pages of 4 KiB

bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    path_ = dir_ + "/meta.db";
    auto writer = Db::Open(path_, "OFF");
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    writer_ = std::move(writer).value();
    writer_->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    auto checkpointer = WalCheckpointer::Start(path_, "OFF", *writer_);
    ASSERT_TRUE(checkpointer.ok()) << checkpointer.status().ToString();
    checkpointer_ = std::move(checkpointer).value();
  }
  void TearDown() override {
    checkpointer_.reset();
    writer_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One transaction with one row of kRowBytes.
  void Commit() {
    ++rows_;
    writer_->Exec("BEGIN");
    writer_->Prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        .BindU(1, rows_)
        .Bind(2, std::string(kRowBytes, static_cast<char>('a' + rows_ % 26)))
        .Run();
    writer_->Exec("COMMIT");
  }
  // Pages in the WAL now, as a checkpoint from `db` reports them; -1 when
  // the checkpointer's own checkpoint runs at that moment (SQLITE_BUSY).
  static int WalFrames(Db& db) {
    int log_frames = -1, backfilled = -1;
    const int rc = sqlite3_wal_checkpoint_v2(db.raw(), "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames, &backfilled);
    EXPECT_TRUE(rc == SQLITE_OK || rc == SQLITE_BUSY) << rc;
    return rc == SQLITE_OK ? log_frames : -1;
  }

  std::string dir_, path_;
  std::unique_ptr<Db> writer_;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  uint64_t rows_ = 0;
};

TEST_F(WalCheckpointerTest, CopiesTheWalIntoTheDatabaseFileAndKeepsEveryRow) {
  const uint64_t db_bytes_before = std::filesystem::file_size(path_);
  for (int i = 0; i < 300; ++i) Commit();  // ~4,500 pages
  // A WAL database file grows only by checkpoints.
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::file_size(path_) >= db_bytes_before + 200 * kRowBytes; }))
      << std::filesystem::file_size(path_);
  EXPECT_GE(checkpointer_->checkpoints(), 1u);
  EXPECT_EQ(checkpointer_->inline_checkpoints(), 0u);

  checkpointer_.reset();
  writer_.reset();
  auto reopened = Db::Open(path_, "OFF");
  ASSERT_TRUE(reopened.ok());
  Stmt count = (*reopened)->Prepare("SELECT count(*), sum(length(v)) FROM t");
  ASSERT_TRUE(count.Step());
  EXPECT_EQ(count.UInt(0), rows_);
  EXPECT_EQ(count.UInt(1), rows_ * kRowBytes);
}

TEST_F(WalCheckpointerTest, AWalThatAReaderHeldBackIsCopiedInlineAndStartsOver) {
  Commit();
  auto reader = Db::Open(path_, "OFF");
  ASSERT_TRUE(reader.ok());
  (*reader)->Exec("BEGIN");
  {
    Stmt rows = (*reader)->Prepare("SELECT count(*) FROM t");
    ASSERT_TRUE(rows.Step());
    EXPECT_EQ(rows.UInt(0), 1u);
  }
  // The reader's snapshot keeps every later frame in the WAL: no checkpoint
  // can copy them, and the WAL grows past the inline mark.
  for (int i = 0; i < WalCheckpointer::kInlinePages / 15 + 100; ++i) Commit();
  EXPECT_GE(checkpointer_->inline_checkpoints(), 1u);
  (*reader)->Exec("COMMIT");

  // Once the reader lets go, a checkpoint copies everything and a later
  // commit writes from the WAL's start.
  ASSERT_TRUE(WaitFor([&] {
    Commit();
    const int frames = WalFrames(**reader);
    return frames >= 0 && frames < 100;
  }));
  Stmt count = (*reader)->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(count.Step());
  EXPECT_EQ(count.UInt(0), rows_);
}

}  // namespace
}  // namespace dfs::meta
