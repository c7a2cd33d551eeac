#include "chunkserver/store/room.h"

#include <algorithm>

namespace dfs::chunkserver {

bool ShortOfRoom(bool was_short, const std::vector<DiskStats>& disks, uint64_t min_free_bytes) {
  if (min_free_bytes == 0) return false;
  uint64_t best = 0;
  bool any = false;
  for (const DiskStats& d : disks) {
    if (!d.healthy) continue;
    any = true;
    best = std::max(best, d.available_bytes);
  }
  if (!any) return false;  // nothing measured: meta learns of broken disks otherwise
  const uint64_t line = was_short ? min_free_bytes + min_free_bytes / 4 : min_free_bytes;
  return best < line;
}

}  // namespace dfs::chunkserver
