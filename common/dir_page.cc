#include "common/dir_page.h"

#include <algorithm>

namespace dfs::common {

Status ForEachDirEntry(const pb::ReadDirReply& page, const std::function<bool(const DirPageEntry&)>& visit) {
  const pb::PackedEntries& packed = page.packed();
  const int n = packed.inos_size();
  if (n == 0 && packed.names().empty()) {
    for (const pb::DirEntry& e : page.entries()) {
      if (!visit({e.name(), e.ino(), e.type(), e.cookie(), e.has_attr() ? &e.attr() : nullptr})) break;
    }
    return Status::Ok();
  }
  const std::string_view names = packed.names();
  if (packed.types_size() != n || packed.cookies_size() != n ||
      std::count(names.begin(), names.end(), '\0') != n || names.back() != '\0') {
    return InvalidArgumentError("a packed directory page whose columns disagree");
  }
  size_t at = 0;
  for (int i = 0; i < n; ++i) {
    const size_t end = names.find('\0', at);
    if (!visit({names.substr(at, end - at), packed.inos(i), packed.types(i), packed.cookies(i), nullptr})) break;
    at = end + 1;
  }
  return Status::Ok();
}

size_t DirPageSize(const pb::ReadDirReply& page) {
  return page.packed().inos_size() > 0 ? static_cast<size_t>(page.packed().inos_size())
                                       : static_cast<size_t>(page.entries_size());
}

}  // namespace dfs::common
