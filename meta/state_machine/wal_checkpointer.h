// WalCheckpointer: copies the metadata database's write-ahead log back into
// the database file on a thread of its own.
//
// Why: SQLite's automatic checkpoint runs inside the COMMIT that pushes the
// WAL past 1,000 pages, on the committing thread. Here that is the Raft loop
// thread, and every member reaches the same entry at about the same time: the
// leader and both followers stopped together for the checkpoint's writes and
// two fsyncs (8-13 ms on this machine) once every ~60 creates. (Off the loop,
// the checkpoint still shares the disk: a create loop through a mount gained
// only 1-4%, but its 5-10 ms stalls went.) With the checkpointer, the writer's
// commits only report the WAL's size (sqlite3_wal_hook, which also turns the
// automatic checkpoint off) and this thread checkpoints PASSIVE, which neither
// waits for nor blocks the writer or readers.
//
// The WAL starts over only when a write begins with every frame copied, and a
// checkpoint copies only what was committed when it began. So after a
// checkpoint that commits overtook, the thread runs small ones after the
// writer's next commits (up to kChaseRounds) until one catches up. A long read
// can still hold frames back; past kInlinePages the writer's commit
// checkpoints inline, as the automatic checkpoint did, so the WAL stays as
// bounded as it was before.
//
// Durability is SQLite's: a checkpoint syncs the WAL before it copies frames
// and the database file before the WAL starts over, whichever thread runs it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "meta/state_machine/db.h"

namespace dfs::meta {

class WalCheckpointer {
 public:
  static constexpr int kCheckpointPages = 1000;  // SQLite's automatic threshold
  static constexpr int kInlinePages = 16 * kCheckpointPages;
  static constexpr int kChaseRounds = 16;

  // Opens its own connection to the database at `path` (with the writer's
  // `synchronous` setting, which decides what a checkpoint syncs) and hooks
  // `writer`'s commits. `writer` must outlive the checkpointer.
  static common::Result<std::unique_ptr<WalCheckpointer>> Start(const std::string& path, const char* synchronous,
                                                                Db& writer);
  // Unhooks the writer and stops the thread (a checkpoint in progress ends
  // first). Call while no other thread commits on the writer.
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Checkpoints run by the thread, and inline by the writer (for tests).
  uint64_t checkpoints() const;
  uint64_t inline_checkpoints() const;

 private:
  WalCheckpointer(std::unique_ptr<Db> db, Db& writer);
  static int OnCommit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void Loop();
  // With mu_ held: WAL pages no checkpoint has copied yet, and whether a
  // checkpoint is due (1,000 of them, or a catch-up round).
  int Fresh() const;
  bool Due() const;

  std::unique_ptr<Db> db_;  // this thread's connection
  Db& writer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int wal_pages_ = 0;   // as the writer's last commit left the WAL
  int backfilled_ = 0;  // WAL pages the last checkpoint copied
  int chase_rounds_ = 0;  // catch-up checkpoints left (see above)
  bool stopping_ = false;
  uint64_t checkpoints_ = 0;
  uint64_t inline_checkpoints_ = 0;
  std::thread thread_;
};

}  // namespace dfs::meta
