// DirPage: the entries of a ReadDirReply one by one, whether meta sent them
// packed (ReadDirReply.packed, plain ReadDir) or as DirEntry messages
// (ReadDirPlus, or a meta from before packing).
//
// Thread-safety: a function of its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "common/status.h"
#include "proto/meta.pb.h"

namespace dfs::common {

struct DirPageEntry {
  std::string_view name;
  uint64_t ino = 0;
  uint32_t type = 0;                 // S_IFMT bits
  uint64_t cookie = 0;               // resume after this entry
  const pb::Attr* attr = nullptr;    // ReadDirPlus only
};

// Calls `visit` for each entry in order until it returns false. A packed
// page whose columns disagree (a damaged reply) visits nothing and is an
// InvalidArgument error.
Status ForEachDirEntry(const pb::ReadDirReply& page, const std::function<bool(const DirPageEntry&)>& visit);

// Number of entries in `page`, packed or not.
size_t DirPageSize(const pb::ReadDirReply& page);

}  // namespace dfs::common
