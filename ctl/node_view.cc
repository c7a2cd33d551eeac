#include "ctl/node_view.h"

#include <cstdio>
#include <string>

namespace dfs::ctl {

nlohmann::json NodesJson(const NodeList& nodes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& n : nodes) {
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(n.node_id()));
    out.push_back({{"id", id},
                   {"address", n.address()},
                   {"state", n.state()},
                   {"capacity", n.capacity_bytes()},
                   {"used", n.used_bytes()},
                   {"chunks", n.chunk_count()},
                   {"damaged_chunks", n.damaged_chunks()},
                   {"last_heartbeat_unix_ms", n.last_heartbeat_unix_ms()},
                   {"weight", n.weight()},
                   {"full", n.full()}});
  }
  return out;
}

void PrintNodes(const NodeList& nodes) {
  std::printf("  %-16s %-22s %-9s %12s %12s %8s\n", "id", "address", "state", "capacity", "used", "chunks");
  for (const auto& n : nodes) {
    // "up,full": short of room, given no new chunks (`dfsctl nodes --json`: "full").
    const std::string state = n.full() ? n.state() + ",full" : n.state();
    std::printf("  %016llx %-22s %-9s %12llu %12llu %8llu\n", static_cast<unsigned long long>(n.node_id()),
                n.address().c_str(), state.c_str(), static_cast<unsigned long long>(n.capacity_bytes()),
                static_cast<unsigned long long>(n.used_bytes()), static_cast<unsigned long long>(n.chunk_count()));
  }
}

}  // namespace dfs::ctl
