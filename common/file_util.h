// Small whole-file helpers for state files (node ids, ready files, configs):
// never for chunk data, which has its own store and format.
//
// WriteFileAtomic writes a temporary file beside the target, fsyncs it,
// renames it over the target and fsyncs the directory: after a crash the file
// holds the old content or the new one, never a mix.
//
// Thread-safety: stateless functions; concurrent writers of one path race
// (last rename wins), as with rename(2).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace dfs::common {

// Errors: errno-derived Statuses naming the path.
Status WriteFileAtomic(const std::string& path, std::string_view content);
// NotFound if the file does not exist.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace dfs::common
