// dfsctl: the admin CLI. One file per command; each command fills plain
// structs from the MetaService reply and prints them either for people or
// as JSON (--json) from the same structs, so both views always agree.
//
// `dfsctl --meta SOURCE <command> [--json]` (contract in DESIGN.md).
#pragma once

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

}  // namespace dfs::ctl
