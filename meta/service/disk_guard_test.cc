#include "meta/service/disk_guard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

pb::Op OpOf(pb::Op::BodyCase body) {
  pb::Op op;
  switch (body) {
    case pb::Op::kCreate: op.mutable_create(); break;
    case pb::Op::kMknod: op.mutable_mknod(); break;
    case pb::Op::kMkdir: op.mutable_mkdir(); break;
    case pb::Op::kSymlink: op.mutable_symlink(); break;
    case pb::Op::kLink: op.mutable_link(); break;
    case pb::Op::kSetXattr: op.mutable_set_xattr(); break;
    case pb::Op::kFallocate: op.mutable_fallocate(); break;
    case pb::Op::kLeaseChunk: op.mutable_lease_chunk(); break;
    case pb::Op::kCommitWrite: op.mutable_commit_write(); break;
    case pb::Op::kSetAttr: op.mutable_set_attr(); break;
    case pb::Op::kUnlink: op.mutable_unlink(); break;
    case pb::Op::kRmdir: op.mutable_rmdir(); break;
    case pb::Op::kRename: op.mutable_rename(); break;
    case pb::Op::kRelease: op.mutable_release(); break;
    case pb::Op::kOpen: op.mutable_open(); break;
    case pb::Op::kRemoveXattr: op.mutable_remove_xattr(); break;
    case pb::Op::kSetLock: op.mutable_set_lock(); break;
    case pb::Op::kOpenSession: op.mutable_open_session(); break;
    case pb::Op::kExpireSessions: op.mutable_expire_sessions(); break;
    case pb::Op::kReplicaChange: op.mutable_replica_change(); break;
    case pb::Op::kGcDone: op.mutable_gc_done(); break;
    default: ADD_FAILURE() << "no case for body " << body;
  }
  return op;
}

TEST(DiskGuardTest, OnlyOpsThatAddToTheNamespaceOrTheChunkMapGrow) {
  for (auto body : {pb::Op::kCreate, pb::Op::kMknod, pb::Op::kMkdir, pb::Op::kSymlink, pb::Op::kLink,
                    pb::Op::kSetXattr, pb::Op::kFallocate, pb::Op::kLeaseChunk, pb::Op::kCommitWrite}) {
    EXPECT_TRUE(DiskGuard::Grows(OpOf(body))) << body;
  }
  // Room is made by these, and the cluster keeps itself up with the rest.
  for (auto body : {pb::Op::kSetAttr, pb::Op::kUnlink, pb::Op::kRmdir, pb::Op::kRename, pb::Op::kRelease,
                    pb::Op::kOpen, pb::Op::kRemoveXattr, pb::Op::kSetLock, pb::Op::kOpenSession,
                    pb::Op::kExpireSessions, pb::Op::kReplicaChange, pb::Op::kGcDone}) {
    EXPECT_FALSE(DiskGuard::Grows(OpOf(body))) << body;
  }
  pb::Op utimens_with_data = OpOf(pb::Op::kSetAttr);
  utimens_with_data.mutable_set_attr()->mutable_commit();
  EXPECT_TRUE(DiskGuard::Grows(utimens_with_data));
}

TEST(DiskGuardTest, RefusesGrowthOnlyWhileShortOfRoomCountingTheDatabase) {
  DiskGuard::Room room{.free_bytes = 307 * kMiB, .db_bytes = 50 * kMiB};
  DiskGuard guard("/data", 256 * kMiB, [&](const std::string&) -> common::Result<DiskGuard::Room> { return room; });
  guard.Refresh();
  EXPECT_TRUE(guard.Check(OpOf(pb::Op::kCreate)).ok()) << "307 MiB free, 306 kept";
  EXPECT_FALSE(guard.short_of_room());

  room.free_bytes = 305 * kMiB;  // under 256 + 50
  guard.Refresh();
  EXPECT_TRUE(guard.short_of_room());
  common::Status refused = guard.Check(OpOf(pb::Op::kMkdir));
  EXPECT_EQ(refused.code(), common::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("305 MiB free in /data, 306 MiB kept"), std::string::npos) << refused.ToString();
  EXPECT_TRUE(guard.Check(OpOf(pb::Op::kUnlink)).ok());

  room.free_bytes = 400 * kMiB;  // someone made room
  guard.Refresh();
  EXPECT_TRUE(guard.Check(OpOf(pb::Op::kMkdir)).ok());
  EXPECT_EQ(guard.free_bytes(), 400 * kMiB);
}

TEST(DiskGuardTest, ZeroTurnsItOffAndAFailedMeasureKeepsTheLastVerdict) {
  DiskGuard off("/data", 0, [](const std::string&) -> common::Result<DiskGuard::Room> {
    return DiskGuard::Room{.free_bytes = 0, .db_bytes = 0};
  });
  off.Refresh();
  EXPECT_TRUE(off.Check(OpOf(pb::Op::kCreate)).ok());
  EXPECT_EQ(off.free_bytes(), 0u);  // still measured, for the metrics

  bool fail = false;
  DiskGuard guard("/data", kMiB, [&](const std::string&) -> common::Result<DiskGuard::Room> {
    if (fail) return common::UnavailableError("statvfs: I/O error");
    return DiskGuard::Room{.free_bytes = 0, .db_bytes = 0};
  });
  guard.Refresh();
  EXPECT_FALSE(guard.Check(OpOf(pb::Op::kCreate)).ok());
  fail = true;
  guard.Refresh();
  EXPECT_FALSE(guard.Check(OpOf(pb::Op::kCreate)).ok());
}

TEST(DiskGuardTest, MeasuresARealFolder) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/meta.db", std::string(4096, 'x')).ok());
  // No real disk has an exabyte free: the real statvfs says short.
  DiskGuard huge(dir, uint64_t{1} << 60);
  huge.Refresh();
  EXPECT_TRUE(huge.short_of_room());
  EXPECT_GT(huge.free_bytes(), 0u);
  EXPECT_LT(huge.free_bytes(), UINT64_MAX);
  DiskGuard small(dir, 1);
  small.Refresh();
  EXPECT_FALSE(small.short_of_room());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dfs::meta
