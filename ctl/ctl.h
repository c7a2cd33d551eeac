// dfsctl: the admin CLI. One file per command; each command fills plain
// structs from the MetaService reply and prints them either for people or
// as JSON (--json) from the same structs, so both views always agree.
//
// `dfsctl --meta SOURCE <command> [--json]` (contract in DESIGN.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/leader_channel.h"

namespace dfs::ctl {

struct Context {
  std::unique_ptr<common::LeaderChannel> meta;
  bool json = false;
};

// Each returns the process exit code (0 ok, 1 failure with a message on stderr).
int RunStatus(Context& ctx);
int RunNodes(Context& ctx);
int RunAddMember(Context& ctx, uint64_t id, const std::string& raft_address, const std::string& address);
int RunRemoveMember(Context& ctx, uint64_t id);
int RunDrain(Context& ctx, const std::string& node);
int RunWeight(Context& ctx, const std::string& node, double weight);
int RunReplicas(Context& ctx, const std::string& path, uint32_t replicas, bool recursive);
int RunRebalance(Context& ctx);
// Exit 0 when clean, 1 when a chunk lacks good copies (or on error).
int RunFsck(Context& ctx, const std::string& path, bool repair, int64_t wait_ms);

}  // namespace dfs::ctl
