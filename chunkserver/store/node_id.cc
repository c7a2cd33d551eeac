#include "chunkserver/store/node_id.h"

#include <sys/stat.h>

#include <cstdlib>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/file_util.h"

namespace dfs::chunkserver {

using common::Result;
using common::Status;

namespace {

constexpr char kStampName[] = "/dfs-folder";

Result<uint64_t> ParseStamp(const std::string& path, const std::string& text) {
  size_t pos = text.find("node_id=");
  if (text.rfind("dfs-chunkserver-folder\n", 0) != 0 || pos == std::string::npos) {
    return common::DataLossError("unreadable folder stamp " + path);
  }
  std::string hex = text.substr(pos + 8, 16);
  char* end = nullptr;
  uint64_t id = std::strtoull(hex.c_str(), &end, 16);
  if (hex.size() != 16 || *end != '\0' || id == 0) return common::DataLossError("bad node id in " + path);
  return id;
}

}  // namespace

Result<uint64_t> LoadOrCreateNodeId(const std::vector<std::string>& folders) {
  if (folders.empty()) return common::InvalidArgumentError("no data folder");
  uint64_t node_id = 0;
  std::string owner_folder;
  std::vector<std::string> unstamped;
  for (const std::string& folder : folders) {
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return common::NotFoundError("data folder " + folder + " does not exist or is not a directory");
    }
    const std::string path = folder + kStampName;
    Result<std::string> text = common::ReadFileToString(path);
    if (!text.ok()) {
      if (text.status().code() != common::StatusCode::kNotFound) return text.status();
      unstamped.push_back(folder);
      continue;
    }
    ASSIGN_OR_RETURN(uint64_t id, ParseStamp(path, *text));
    if (node_id != 0 && id != node_id) {
      return common::FailedPreconditionError(
          fmt::format("data folder {} belongs to node {:016x}, but {} belongs to node {:016x}", folder, id,
                      owner_folder, node_id));
    }
    node_id = id;
    owner_folder = folder;
  }
  if (node_id == 0) {
    std::random_device rd;
    std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
    while (node_id == 0) node_id = gen();
    spdlog::info("new node id {:016x}", node_id);
  }
  for (const std::string& folder : unstamped) {
    RETURN_IF_ERROR(common::WriteFileAtomic(
        folder + kStampName, fmt::format("dfs-chunkserver-folder\nformat=1\nnode_id={:016x}\n", node_id)));
  }
  return node_id;
}

}  // namespace dfs::chunkserver
