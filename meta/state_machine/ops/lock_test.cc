// File locks: conflicts between owners and sessions, fcntl's replace, split
// and merge of one owner's ranges, flock beside fcntl locks, F_GETLK, and
// the ends of a session and of an inode.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr uint64_t kRoot = 1;
constexpr uint64_t kEof = INT64_MAX;
constexpr auto kPosix = pb::LOCK_KIND_POSIX;
constexpr auto kFlock = pb::LOCK_KIND_FLOCK;
constexpr auto kRead = pb::LOCK_TYPE_READ;
constexpr auto kWrite = pb::LOCK_TYPE_WRITE;
constexpr auto kUnlock = pb::LOCK_TYPE_UNLOCK;

class LockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = OpenSession();
    b_ = OpenSession();
    h.client_id = a_;
    ASSERT_EQ(h.Create(kRoot, "f", 0644, &file_, &handle_), 0);
  }
  uint64_t OpenSession() {
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    return h.Apply(op).client_id();
  }
  int Set(uint64_t client, uint64_t owner, pb::LockType type, uint64_t start, uint64_t end,
          pb::LockKind kind = kPosix, uint32_t pid = 0) {
    pb::Op op;
    op.set_client_id(client);
    auto* r = op.mutable_set_lock();
    r->mutable_ctx()->set_client_id(client);
    r->set_ino(file_.ino());
    r->set_owner(owner);
    r->set_kind(kind);
    r->set_type(type);
    r->set_start(start);
    r->set_end(end);
    r->set_pid(pid);
    return h.Apply(op).status().code();
  }
  pb::GetLockReply Get(uint64_t client, uint64_t owner, pb::LockType type, uint64_t start, uint64_t end,
                       pb::LockKind kind = kPosix) {
    pb::GetLockRequest r;
    r.mutable_ctx()->set_client_id(client);
    r.set_ino(file_.ino());
    r.set_owner(owner);
    r.set_kind(kind);
    r.set_type(type);
    r.set_start(start);
    r.set_end(end);
    pb::GetLockReply reply;
    h.sm().GetLock(r, &reply);
    return reply;
  }
  // The owner's locks as "type:first-last" pieces, found by probing with a
  // write lock of another owner byte by byte over [0, n).
  std::string Held(uint64_t client, uint64_t owner, uint64_t n) {
    std::string out;
    for (uint64_t i = 0; i < n; ++i) {
      pb::GetLockReply r = Get(client == a_ ? b_ : a_, 999, kWrite, i, i);
      out += r.type() == kUnlock ? '.' : r.type() == kRead ? 'r' : 'w';
    }
    (void)owner;
    return out;
  }

  testing::SmHarness h;
  uint64_t a_ = 0, b_ = 0;
  uint64_t handle_ = 0;  // a_'s
  pb::Attr file_;
};

TEST_F(LockTest, WriteLocksOfTwoSessionsConflictOnOverlapOnly) {
  ASSERT_EQ(Set(a_, 1, kWrite, 0, 99), 0);
  EXPECT_EQ(Set(b_, 1, kWrite, 99, 120), C(StatusCode::kAborted));  // same owner number, other session
  EXPECT_EQ(Set(b_, 1, kRead, 50, 50), C(StatusCode::kAborted));
  EXPECT_EQ(Set(b_, 1, kWrite, 100, kEof), 0);
  EXPECT_EQ(Set(a_, 1, kWrite, 100, 100), C(StatusCode::kAborted));
}

TEST_F(LockTest, ReadLocksShareAndBlockWriters) {
  ASSERT_EQ(Set(a_, 1, kRead, 0, kEof), 0);
  EXPECT_EQ(Set(b_, 7, kRead, 10, 20), 0);
  EXPECT_EQ(Set(a_, 2, kWrite, 15, 15), C(StatusCode::kAborted));  // another owner of the same mount too
  EXPECT_EQ(Set(b_, 7, kWrite, 10, 20), C(StatusCode::kAborted));  // a_'s read lock is in the way
  ASSERT_EQ(Set(a_, 1, kUnlock, 0, kEof), 0);
  EXPECT_EQ(Set(b_, 7, kWrite, 10, 20), 0);  // an upgrade of its own read lock
}

TEST_F(LockTest, OneOwnersLocksAreReplacedSplitAndMerged) {
  ASSERT_EQ(Set(a_, 1, kWrite, 0, 9), 0);
  EXPECT_EQ(Held(a_, 1, 12), "wwwwwwwwww..");
  ASSERT_EQ(Set(a_, 1, kRead, 3, 5), 0);  // splits the write lock
  EXPECT_EQ(Held(a_, 1, 12), "wwwrrrwwww..");
  ASSERT_EQ(Set(a_, 1, kUnlock, 8, 8), 0);
  EXPECT_EQ(Held(a_, 1, 12), "wwwrrrww.w..");
  ASSERT_EQ(Set(a_, 1, kWrite, 8, 10), 0);  // merges with both neighbours' write pieces
  EXPECT_EQ(Held(a_, 1, 12), "wwwrrrwwwww.");
  ASSERT_EQ(Set(a_, 1, kWrite, 0, 10), 0);
  EXPECT_EQ(Held(a_, 1, 12), "wwwwwwwwwww.");
  // One row now: unlocking its middle leaves two.
  ASSERT_EQ(Set(a_, 1, kUnlock, 2, 7), 0);
  EXPECT_EQ(Held(a_, 1, 12), "ww......www.");
  ASSERT_EQ(Set(a_, 1, kUnlock, 0, kEof), 0);
  EXPECT_EQ(Held(a_, 1, 12), "............");
}

TEST_F(LockTest, ARefusedLockChangesNothing) {
  ASSERT_EQ(Set(a_, 1, kRead, 0, 9), 0);
  ASSERT_EQ(Set(b_, 1, kRead, 5, 5), 0);
  EXPECT_EQ(Set(a_, 1, kWrite, 0, 9), C(StatusCode::kAborted));
  EXPECT_EQ(Held(a_, 1, 10), "rrrrrrrrrr");  // still read-locked, not unlocked
}

TEST_F(LockTest, FlockAndFcntlLocksDoNotConflict) {
  ASSERT_EQ(Set(a_, 1, kWrite, 0, kEof), 0);
  EXPECT_EQ(Set(b_, 5, kWrite, 0, 0, kFlock), 0);  // range ignored: the whole file
  EXPECT_EQ(Set(a_, 9, kRead, 0, 0, kFlock), C(StatusCode::kAborted));
  pb::GetLockReply r = Get(a_, 9, kRead, 0, 0, kFlock);
  EXPECT_EQ(r.type(), kWrite);
  EXPECT_EQ(r.start(), 0u);
  EXPECT_EQ(r.end(), kEof);
  ASSERT_EQ(Set(b_, 5, kRead, 0, 0, kFlock), 0);  // converted to shared
  EXPECT_EQ(Set(a_, 9, kRead, 0, 0, kFlock), 0);
}

TEST_F(LockTest, GetLockNamesTheConflictAndItsPidOnTheSameMountOnly) {
  ASSERT_EQ(Set(a_, 1, kRead, 10, 19, kPosix, 4242), 0);
  pb::GetLockReply mine = Get(a_, 2, kWrite, 0, 100);
  EXPECT_EQ(mine.type(), kRead);
  EXPECT_EQ(mine.start(), 10u);
  EXPECT_EQ(mine.end(), 19u);
  EXPECT_EQ(mine.pid(), 4242u);
  pb::GetLockReply other = Get(b_, 1, kWrite, 0, 100);
  EXPECT_EQ(other.type(), kRead);
  EXPECT_EQ(other.pid(), 0u);
  EXPECT_EQ(Get(b_, 1, kRead, 0, 100).type(), kUnlock);  // readers share
  EXPECT_EQ(Get(a_, 1, kWrite, 0, 100).type(), kUnlock);  // its own lock never conflicts
}

TEST_F(LockTest, BadRequestsAreRefused) {
  EXPECT_EQ(Set(a_, 1, kWrite, 10, 9), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(Set(a_, 1, kWrite, 0, uint64_t{1} << 63), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(Set(a_, 1, static_cast<pb::LockType>(7), 0, 1), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(Set(a_, 1, kWrite, 0, 1, static_cast<pb::LockKind>(3)), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(Set(0, 1, kWrite, 0, 1), C(StatusCode::kInvalidArgument));  // no session
  pb::Op op;
  op.set_client_id(a_);
  op.mutable_set_lock()->set_ino(12345);
  op.mutable_set_lock()->set_type(kWrite);
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kNotFound));
  EXPECT_EQ(Get(a_, 1, kWrite, 5, 4).status().code(), C(StatusCode::kInvalidArgument));
}

TEST_F(LockTest, ASessionsEndDropsItsLocks) {
  ASSERT_EQ(Set(a_, 1, kWrite, 0, kEof), 0);
  ASSERT_EQ(Set(a_, 2, kWrite, 0, 0, kFlock), 0);
  pb::Op expire;
  expire.mutable_expire_sessions()->add_client_ids(a_);
  ASSERT_EQ(h.Apply(expire).status().code(), 0);
  EXPECT_EQ(Set(b_, 1, kWrite, 0, kEof), 0);
  EXPECT_EQ(Set(b_, 1, kWrite, 0, 0, kFlock), 0);
  pb::Op close;
  close.set_client_id(b_);
  close.mutable_close_session()->mutable_ctx()->set_client_id(b_);
  ASSERT_EQ(h.Apply(close).status().code(), 0);
  uint64_t c = OpenSession();
  EXPECT_EQ(Set(c, 1, kWrite, 0, kEof), 0);
}

// A lock asked for by a session meta ended would be stored for no live
// session and never end: refused (ESTALE) as an open is, until the client
// resumes its session. Entries from before the rule replay as they applied.
TEST_F(LockTest, AnEndedSessionCannotLock) {
  pb::Op expire;
  expire.mutable_expire_sessions()->add_client_ids(a_);
  ASSERT_EQ(h.Apply(expire).status().code(), 0);
  EXPECT_EQ(Set(a_, 1, kWrite, 0, kEof), C(StatusCode::kStale));
  EXPECT_EQ(Set(b_, 1, kWrite, 0, kEof), 0) << "the refused lock was stored";
  h.locks_need_session = false;
  EXPECT_EQ(Set(a_, 2, kWrite, 0, 0, kFlock), 0);
}

// A write lock ends the chunk leases of mounts that hold no lock on the
// file (they keep their handles open, as SQLite does, and the new holder's
// writes would wait for the lease to expire); a mount that holds a lock of
// its own keeps its lease.
TEST_F(LockTest, AWriteLockEndsTheLeasesOfMountsWithoutALock) {
  pb::Op reg;
  reg.mutable_register_node()->mutable_request()->set_node_id(11);
  reg.mutable_register_node()->mutable_request()->set_address("127.0.0.1:9011");
  ASSERT_EQ(h.Apply(reg).status().code(), 0);
  uint64_t b_handle = 0;
  h.client_id = b_;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, nullptr, &b_handle, O_WRONLY), 0);
  h.client_id = a_;
  auto lease = [&](uint64_t client, uint64_t handle) {
    pb::Op op;
    op.set_client_id(client);
    op.add_placement(11);
    auto* r = op.mutable_lease_chunk()->mutable_request();
    r->set_ino(file_.ino());
    r->set_handle_id(handle);
    op.mutable_lease_chunk()->set_lease_expires_unix_ms(h.now_ns / 1'000'000 + 60'000);
    return h.Apply(op).status().code();
  };
  ASSERT_EQ(lease(a_, handle_), 0);
  EXPECT_EQ(lease(b_, b_handle), C(StatusCode::kAborted));  // a_ writes
  ASSERT_EQ(Set(a_, 1, kRead, 0, 0), 0);
  ASSERT_EQ(Set(b_, 1, kWrite, 10, 20), 0);  // a_ holds a lock: keeps its lease
  EXPECT_EQ(lease(b_, b_handle), C(StatusCode::kAborted));
  ASSERT_EQ(Set(a_, 1, kUnlock, 0, kEof), 0);
  ASSERT_EQ(Set(b_, 1, kUnlock, 0, kEof), 0);
  EXPECT_EQ(lease(b_, b_handle), C(StatusCode::kAborted));  // an unlock ends no lease
  ASSERT_EQ(Set(b_, 1, kRead, 0, kEof), 0);
  EXPECT_EQ(lease(b_, b_handle), C(StatusCode::kAborted));  // nor does a read lock
  ASSERT_EQ(Set(b_, 1, kWrite, 0, kEof), 0);
  EXPECT_EQ(lease(b_, b_handle), 0);
  EXPECT_EQ(lease(a_, handle_), C(StatusCode::kAborted));  // now b_ writes
}

TEST_F(LockTest, AFreedInodeTakesItsLocksAlong) {
  ASSERT_EQ(Set(a_, 1, kWrite, 0, kEof), 0);
  ASSERT_EQ(Set(b_, 1, kRead, 0, 0, kFlock), 0);
  auto lock_rows = [&] {
    std::string dump = h.sm().CanonicalDump();
    size_t at = dump.find("# locks\n");
    if (at == std::string::npos) return std::string("<no locks table>");
    std::string rows = dump.substr(at + 8);
    return rows.substr(0, rows.find("# "));
  };
  EXPECT_NE(lock_rows(), "");
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  EXPECT_NE(lock_rows(), "");  // still open: the locks stay
  pb::Op release;
  release.set_client_id(a_);
  release.mutable_release()->set_ino(file_.ino());
  release.mutable_release()->set_handle_id(handle_);
  ASSERT_EQ(h.Apply(release).status().code(), 0);
  EXPECT_EQ(lock_rows(), "");
}

}  // namespace
}  // namespace dfs::meta
