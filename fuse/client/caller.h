// Caller: who makes a filesystem call (from fuse_req_ctx and the process's
// supplementary groups). A plain value.
#pragma once

#include <cstdint>
#include <vector>

namespace dfs::fuse {

struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  std::vector<uint32_t> groups;
};

// The same credentials (the pid does not matter to permissions).
inline bool SameCredentials(const Caller& a, const Caller& b) {
  return a.uid == b.uid && a.gid == b.gid && a.groups == b.groups;
}

}  // namespace dfs::fuse
