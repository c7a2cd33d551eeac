// ReadPinSet: the inodes this mount reads through lazy read opens
// (OpenRequest.lazy_read: no handle in meta), counted per inode. Listed in
// every KeepAlive, so meta frees no file a reader here still holds
// (meta/service/read_pins.h). A pin is added before the open is sent.
//
// Thread-safety: all methods lock `mu_`.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dfs::fuse {

class ReadPinSet {
 public:
  // Past this many inodes, opens take a handle in meta instead: a KeepAlive
  // stays small.
  static constexpr size_t kMaxInodes = 16'384;

  // False (nothing added) at the limit.
  bool Pin(uint64_t ino);
  // Drops one pin of `ino`; false if it had none.
  bool Unpin(uint64_t ino);
  // Every pinned inode, once.
  std::vector<uint64_t> List();

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, uint32_t> counts_;
};

}  // namespace dfs::fuse
