// dfsctl --meta SOURCE <command> [--json]
//   [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [--secret-file F | --cluster-key-file F] [--config FILE]
#include <CLI/CLI.hpp>
#include <signal.h>

#include <cstdio>

#include "common/flags.h"
#include "common/runtime.h"
#include "common/tls.h"
#include "common/write_token.h"
#include "ctl/ctl.h"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  dfs::common::ConfigureRuntime();
  CLI::App app("dfsctl: administer a dfs cluster");
  std::string source;
  bool json = false;
  std::string timeout = "10s";
  app.add_option("--meta", source, "metadata servers, host:port[,host:port...]")->required()->envname("DFS_META");
  app.add_flag("--json", json, "machine-readable output");
  dfs::common::AddConfigFileFlag(app);
  dfs::common::TlsOptions tls;
  app.add_option("--tls-ca", tls.ca_file, "PEM CA of the cluster (connect with TLS)")->envname("DFS_TLS_CA");
  app.add_option("--tls-cert", tls.cert_file, "PEM client certificate (mutual TLS)")->envname("DFS_TLS_CERT");
  app.add_option("--tls-key", tls.key_file, "PEM key of --tls-cert")->envname("DFS_TLS_KEY");
  std::string secret_file, cluster_key_file;
  app.add_option("--secret-file", secret_file, "the cluster's client secret (read-only commands)")
      ->envname("DFS_SECRET_FILE");
  app.add_option("--cluster-key-file", cluster_key_file,
                 "the cluster key: admin commands (drain, weight, replicas, members, fsck) need it on a "
                 "cluster that checks callers")
      ->envname("DFS_CLUSTER_KEY_FILE");
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
  double weight = 0;
  CLI::App* weight_cmd = app.add_subcommand("weight", "change a chunkserver's share of the chunks (default 1)");
  weight_cmd->add_option("node", drain_node, "the node id, as `dfsctl nodes` shows it")->required();
  weight_cmd->add_option("w", weight, "0.01..100 (2: about twice the chunks)")->required();
  std::string path;
  uint32_t replica_count = 0;
  bool recursive = false;
  CLI::App* replicas = app.add_subcommand(
      "replicas", "set how many copies a file or directory keeps (new files below inherit it)");
  replicas->add_option("path", path, "a path inside dfs, e.g. /projects/a")->required();
  replicas->add_option("n", replica_count, "copies, 1..16")->required();
  replicas->add_flag("--recursive,-r", recursive, "also every file and directory below PATH");
  CLI::App* rebalance = app.add_subcommand("rebalance", "progress of moving copies to where the ring puts them");
  bool repair = false;
  std::string wait = "120s";
  CLI::App* fsck = app.add_subcommand("fsck", "check that every chunk under PATH has its good copies");
  fsck->add_option("path", path, "a path inside dfs (default /)")->default_val("/");
  fsck->add_flag("--repair", repair, "report bad copies to meta and wait until they are copied again");
  fsck->add_option("--wait", wait, "with --repair: how long to wait for a clean check")->capture_default_str();
  for (CLI::App* sub : {status, nodes, add_member, remove_member, drain, weight_cmd, replicas, rebalance, fsck}) {
    sub->add_flag("--json", json, "machine-readable output");
  }
  CLI11_PARSE(app, argc, argv);

  auto timeout_ms = dfs::common::ParseDurationMs(timeout);
  if (!timeout_ms.ok()) {
    std::fprintf(stderr, "dfsctl: --timeout: %s\n", timeout_ms.status().ToString().c_str());
    return 2;
  }
  std::string cluster_key;
  if (!cluster_key_file.empty()) {
    auto key = dfs::common::LoadClusterKey(cluster_key_file);
    if (!key.ok()) {
      std::fprintf(stderr, "dfsctl: --cluster-key-file: %s\n", key.status().ToString().c_str());
      return 2;
    }
    cluster_key = std::move(*key);
  }
  auto identity = dfs::common::MakeClientIdentity(tls, secret_file, cluster_key);
  if (!identity.ok()) {
    std::fprintf(stderr, "dfsctl: %s\n", identity.status().ToString().c_str());
    return 2;
  }
  dfs::common::SetClientIdentity(std::move(*identity));
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
  if (weight_cmd->parsed()) return dfs::ctl::RunWeight(ctx, drain_node, weight);
  if (replicas->parsed()) return dfs::ctl::RunReplicas(ctx, path, replica_count, recursive);
  if (rebalance->parsed()) return dfs::ctl::RunRebalance(ctx);
  if (fsck->parsed()) {
    auto wait_ms = dfs::common::ParseDurationMs(wait);
    if (!wait_ms.ok() || *wait_ms < 0) {
      std::fprintf(stderr, "dfsctl: fsck --wait: must be a duration\n");
      return 2;
    }
    return dfs::ctl::RunFsck(ctx, path, repair, *wait_ms);
  }
  return 2;
}
