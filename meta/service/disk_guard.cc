#include "meta/service/disk_guard.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <utility>

namespace dfs::meta {

namespace {

common::Result<DiskGuard::Room> StatFolder(const std::string& folder) {
  struct statvfs vfs {};
  if (::statvfs(folder.c_str(), &vfs) != 0) return common::ErrnoStatus(errno, "statvfs " + folder);
  DiskGuard::Room room;
  room.free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  struct stat st {};
  if (::stat((folder + "/meta.db").c_str(), &st) == 0) room.db_bytes = static_cast<uint64_t>(st.st_size);
  return room;
}

constexpr uint64_t kMiB = 1024 * 1024;

}  // namespace

DiskGuard::DiskGuard(std::string folder, uint64_t min_free_bytes, Measure measure)
    : folder_(std::move(folder)),
      min_free_bytes_(min_free_bytes),
      measure_(measure ? std::move(measure) : Measure(StatFolder)) {}

void DiskGuard::Refresh() {
  common::Result<Room> room = measure_(folder_);
  if (!room.ok()) {
    spdlog::warn("cannot measure the room left in the data folder: {}", room.status().ToString());
    return;
  }
  const uint64_t needed = min_free_bytes_ + room->db_bytes;
  free_bytes_.store(room->free_bytes, std::memory_order_relaxed);
  needed_bytes_.store(needed, std::memory_order_relaxed);
  const bool now_short = min_free_bytes_ != 0 && room->free_bytes < needed;
  if (now_short == short_.exchange(now_short, std::memory_order_relaxed)) return;
  if (now_short) {
    spdlog::error("data folder {} has {} MiB free, under the {} MiB kept (--min-free-space plus meta.db): "
                  "refusing creates and writes with ENOSPC until there is room",
                  folder_, room->free_bytes / kMiB, needed / kMiB);
  } else {
    spdlog::info("data folder {} has {} MiB free again: creates and writes go on", folder_, room->free_bytes / kMiB);
  }
}

bool DiskGuard::Grows(const pb::Op& op) {
  switch (op.body_case()) {
    case pb::Op::kCreate:
    case pb::Op::kMknod:
    case pb::Op::kMkdir:
    case pb::Op::kSymlink:
    case pb::Op::kLink:
    case pb::Op::kSetXattr:
    case pb::Op::kFallocate:
    case pb::Op::kLeaseChunk:
    case pb::Op::kCommitWrite:
      return true;
    case pb::Op::kSetAttr:
      return op.set_attr().has_commit();  // a write's commit riding with a utimens or truncate
    default:
      return false;
  }
}

common::Status DiskGuard::Check(const pb::Op& op) const {
  if (!short_.load(std::memory_order_relaxed) || !Grows(op)) return common::Status::Ok();
  return common::ResourceExhaustedError(
      "the metadata disk is nearly full: " + std::to_string(free_bytes() / kMiB) + " MiB free in " + folder_ +
      ", " + std::to_string(needed_bytes_.load(std::memory_order_relaxed) / kMiB) +
      " MiB kept (dfs-meta --min-free-space plus meta.db); delete files or free the disk");
}

}  // namespace dfs::meta
