#include "meta/state_machine/wal_checkpointer.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace dfs::meta {

common::Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(const std::string& path,
                                                                        const char* synchronous, Db& writer) {
  ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(path, synchronous));
  return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(std::move(db), writer));
}

WalCheckpointer::WalCheckpointer(std::unique_ptr<Db> db, Db& writer) : db_(std::move(db)), writer_(writer) {
  thread_ = std::thread([this] { Loop(); });
  // Replaces (and so turns off) the writer's automatic checkpoint.
  sqlite3_wal_hook(writer_.raw(), &WalCheckpointer::OnCommit, this);
}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_.raw(), nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

int WalCheckpointer::Fresh() const {
  // Fewer pages than were copied: the WAL started over since.
  return wal_pages_ >= backfilled_ ? wal_pages_ - backfilled_ : wal_pages_;
}

bool WalCheckpointer::Due() const {
  return Fresh() >= kCheckpointPages || (chase_rounds_ > 0 && wal_pages_ > backfilled_);
}

uint64_t WalCheckpointer::checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoints_;
}

uint64_t WalCheckpointer::inline_checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inline_checkpoints_;
}

int WalCheckpointer::OnCommit(void* self, sqlite3* db, const char* schema, int wal_pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  const bool inline_now = wal_pages >= kInlinePages;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(c->mu_);
    c->wal_pages_ = wal_pages;
    wake = c->Due();
    if (inline_now) ++c->inline_checkpoints_;
  }
  if (inline_now) {
    // BUSY when the thread is checkpointing right now: it copies instead.
    (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (wake) {
    c->cv_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || Due(); });
    if (stopping_) return;
    if (Fresh() >= kCheckpointPages) {
      chase_rounds_ = kChaseRounds;
    } else {
      --chase_rounds_;
    }
    lock.unlock();
    int log_frames = 0, backfilled = 0;
    const int rc =
        sqlite3_wal_checkpoint_v2(db_->raw(), "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames, &backfilled);
    lock.lock();
    ++checkpoints_;
    if (rc == SQLITE_OK) {
      // No progress: a reader holds the rest back; wait for 1,000 pages more.
      if (backfilled <= backfilled_) chase_rounds_ = 0;
      backfilled_ = backfilled;
    } else {
      // BUSY: the writer is checkpointing inline. Anything else is an I/O
      // error (a full disk): the frames stay in the WAL, which is still the
      // durable copy, and the writer's own commits report the disk. Either
      // way, try again after 1,000 more pages.
      if (rc != SQLITE_BUSY) spdlog::warn("meta: WAL checkpoint failed: {}", sqlite3_errmsg(db_->raw()));
      backfilled_ = wal_pages_;
      chase_rounds_ = 0;
    }
  }
}

}  // namespace dfs::meta
