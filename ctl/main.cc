// dfsctl --meta SOURCE <command> [--json]
#include <CLI/CLI.hpp>
#include <signal.h>

#include <cstdio>

#include "common/flags.h"
#include "ctl/ctl.h"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  CLI::App app("dfsctl: administer a dfs cluster");
  std::string source;
  bool json = false;
  std::string timeout = "10s";
  app.add_option("--meta", source, "metadata servers, host:port[,host:port...]")->required()->envname("DFS_META");
  app.add_flag("--json", json, "machine-readable output");
  app.add_option("--timeout", timeout, "give up after this long without a leader")->capture_default_str();
  app.require_subcommand(1);
  CLI::App* status = app.add_subcommand("status", "meta members, leader, chunkservers, repair counts");
  CLI::App* nodes = app.add_subcommand("nodes", "chunkservers with state and capacity");
  uint64_t member_id = 0;
  std::string member_raft, member_address;
  CLI::App* add_member = app.add_subcommand(
      "add-member", "add a dfs-meta (started with --raft-listen and no --members) to the metadata group");
  add_member->add_option("id", member_id, "its --node-id")->required();
  add_member->add_option("raft_address", member_raft, "its --raft-listen HOST:PORT")->required();
  add_member->add_option("address", member_address, "its MetaService HOST:PORT (--listen)")->required();
  CLI::App* remove_member = app.add_subcommand("remove-member", "take a dfs-meta out of the metadata group");
  remove_member->add_option("id", member_id, "its --node-id")->required();
  std::string drain_node;
  CLI::App* drain = app.add_subcommand("drain", "copy every chunk off a chunkserver so it can be removed");
  drain->add_option("node", drain_node, "the node id, as `dfsctl nodes` shows it")->required();
  for (CLI::App* sub : {status, nodes, add_member, remove_member, drain}) {
    sub->add_flag("--json", json, "machine-readable output");
  }
  CLI11_PARSE(app, argc, argv);

  auto timeout_ms = dfs::common::ParseDurationMs(timeout);
  if (!timeout_ms.ok()) {
    std::fprintf(stderr, "dfsctl: --timeout: %s\n", timeout_ms.status().ToString().c_str());
    return 2;
  }
  dfs::common::LeaderChannel::Options options;
  options.total_timeout_ms = *timeout_ms;
  options.attempt_timeout_ms = std::min<int64_t>(*timeout_ms, 5'000);
  auto channel = dfs::common::LeaderChannel::Create(source, options);
  if (!channel.ok()) {
    std::fprintf(stderr, "dfsctl: --meta: %s\n", channel.status().ToString().c_str());
    return 2;
  }
  dfs::ctl::Context ctx{std::move(*channel), json};
  if (status->parsed()) return dfs::ctl::RunStatus(ctx);
  if (nodes->parsed()) return dfs::ctl::RunNodes(ctx);
  if (add_member->parsed()) return dfs::ctl::RunAddMember(ctx, member_id, member_raft, member_address);
  if (remove_member->parsed()) return dfs::ctl::RunRemoveMember(ctx, member_id);
  if (drain->parsed()) return dfs::ctl::RunDrain(ctx, drain_node);
  return 2;
}
