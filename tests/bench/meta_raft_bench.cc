// meta_raft_bench: what the Raft group costs and how fast it fails over
// (issue [meta-raft]), with real dfs-meta processes on 127.0.0.1, in one run:
//
//   - creates/s and commit latency p50/p99 (one Mkdir round trip through
//     gRPC, the Raft log and SQLite) for a 1-member and a 3-member group, at
//     1 and 16 concurrent clients; the 3/1 ratio at 16 clients (target >= 0.7);
//   - failover: kill -9 of the leader N times in the 3-member group, the time
//     until the group accepts a mutation again (min/median/max; target
//     median < 1 s on loopback).
//
// Prints, never fails. Usage: meta_raft_bench [--seconds S] [--kills N]
// (defaults 3 s per cell, 10 kills). Needs DFS_META_BIN or a build tree.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/leader_channel.h"
#include "proto/meta.grpc.pb.h"
#include "tests/harness/process.h"

namespace dfs {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Group {
  std::string dir;
  std::vector<std::string> rpc, raft;
  std::vector<std::unique_ptr<testing::Process>> procs;
  std::string members;

  Group(const std::string& base, int n) : dir(base), procs(n) {
    for (int i = 0; i < n; ++i) {
      rpc.push_back("127.0.0.1:" + std::to_string(testing::PickFreePort()));
      raft.push_back("127.0.0.1:" + std::to_string(testing::PickFreePort()));
      members += (i ? "," : "") + std::to_string(i + 1) + "=" + raft[i];
    }
  }
  ~Group() {
    for (auto& p : procs) {
      if (p) p->Kill();
    }
  }
  bool Start(int i) {
    std::string data = dir + "/meta-" + std::to_string(i + 1);
    std::filesystem::create_directories(data);
    std::string ready = data + ".ready";
    std::filesystem::remove(ready);
    std::vector<std::string> argv = {testing::BinaryPath("DFS_META_BIN"), "--listen", rpc[i], "--data", data,
                                     "--ready-file", ready, "--insecure-dev-key", "--log-level", "warn"};
    if (rpc.size() > 1) {
      for (std::string a : {"--node-id", "", "--raft-listen", "", "--members", ""}) argv.push_back(a);
      argv[argv.size() - 5] = std::to_string(i + 1);
      argv[argv.size() - 3] = raft[i];
      argv[argv.size() - 1] = members;
      for (std::string a : {"--election-timeout", "300ms", "--heartbeat-timeout", "50ms"}) argv.push_back(a);
    }
    auto p = testing::Process::Start(argv, data + ".log");
    if (!p.ok()) return false;
    procs[i] = std::move(p).value();
    return testing::WaitForReadyFile(ready, *procs[i], 20000).ok();
  }
  std::string Source() const {
    std::string s;
    for (const auto& r : rpc) s += (s.empty() ? "" : ",") + r;
    return s;
  }
};

std::unique_ptr<common::LeaderChannel> Channel(const std::string& source) {
  common::LeaderChannel::Options options;
  options.attempt_timeout_ms = 500;
  options.total_timeout_ms = 30'000;
  return std::move(common::LeaderChannel::Create(source, options)).value();
}

uint64_t OpenSession(common::LeaderChannel& ch) {
  pb::OpenSessionReply reply;
  grpc::Status s = ch.Call([&](const std::shared_ptr<grpc::Channel>& c, grpc::ClientContext& ctx) {
    return pb::MetaService::Stub(c).OpenSession(&ctx, pb::OpenSessionRequest(), &reply);
  });
  return s.ok() ? reply.client_id() : 0;
}

struct Cell {
  double ops_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

Cell CreateLoad(const std::string& source, int clients, double seconds, int run) {
  std::vector<std::vector<double>> latencies(clients);
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  auto deadline = std::make_shared<Clock::time_point>();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto ch = Channel(source);
      uint64_t client = OpenSession(*ch);
      while (!go.load()) std::this_thread::yield();
      for (uint64_t i = 1; Clock::now() < *deadline; ++i) {
        pb::MkdirRequest req;
        req.mutable_ctx()->set_client_id(client);
        req.mutable_ctx()->set_request_id(i);
        req.set_parent(1);
        req.set_name("r" + std::to_string(run) + "-c" + std::to_string(c) + "-" + std::to_string(i));
        req.set_mode(0755);
        pb::EntryReply reply;
        auto start = Clock::now();
        grpc::Status s = ch->Call([&](const std::shared_ptr<grpc::Channel>& chan, grpc::ClientContext& ctx) {
          return pb::MetaService::Stub(chan).Mkdir(&ctx, req, &reply);
        });
        if (s.ok() && reply.status().code() == 0) latencies[c].push_back(Ms(Clock::now() - start));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // sessions open
  *deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Cell cell;
  if (all.empty()) return cell;
  cell.ops_per_s = static_cast<double>(all.size()) / seconds;
  cell.p50_ms = all[all.size() / 2];
  cell.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return cell;
}

int Main(int argc, char** argv) {
  double seconds = 3;
  int kills = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--kills") == 0) kills = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/var/tmp/dfs-raft-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string base = tmpl;

  std::printf("metadata creates through gRPC + Raft log + SQLite, %.0f s per cell\n", seconds);
  std::printf("%-10s %8s %12s %10s %10s\n", "members", "clients", "creates/s", "p50 ms", "p99 ms");
  Cell cells[2][2];
  const int sizes[2] = {1, 3};
  const int client_counts[2] = {1, 16};
  for (int g = 0; g < 2; ++g) {
    Group group(base + "/g" + std::to_string(sizes[g]), sizes[g]);
    for (int i = 0; i < sizes[g]; ++i) {
      if (!group.Start(i)) {
        std::fprintf(stderr, "cannot start dfs-meta (see %s)\n", base.c_str());
        return 1;
      }
    }
    for (int c = 0; c < 2; ++c) {
      cells[g][c] = CreateLoad(group.Source(), client_counts[c], seconds, c);
      std::printf("%-10d %8d %12.0f %10.2f %10.2f\n", sizes[g], client_counts[c], cells[g][c].ops_per_s,
                  cells[g][c].p50_ms, cells[g][c].p99_ms);
    }
  }
  if (cells[0][1].ops_per_s > 0) {
    std::printf("3 members / 1 member at 16 clients: %.2f (target >= 0.7)\n",
                cells[1][1].ops_per_s / cells[0][1].ops_per_s);
  }

  Group group(base + "/failover", 3);
  for (int i = 0; i < 3; ++i) {
    if (!group.Start(i)) return 1;
  }
  auto ch = Channel(group.Source());
  std::vector<double> times;
  for (int k = 0; k < kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    pb::ClusterStatusReply status;
    grpc::Status s = ch->Call([&](const std::shared_ptr<grpc::Channel>& c, grpc::ClientContext& ctx) {
      return pb::MetaService::Stub(c).ClusterStatus(&ctx, pb::ClusterStatusRequest(), &status);
    });
    if (!s.ok() || status.leader_id() == 0) break;
    const int victim = static_cast<int>(status.leader_id()) - 1;
    auto killed = Clock::now();
    group.procs[victim]->Kill();
    if (OpenSession(*ch) == 0) break;
    times.push_back(Ms(Clock::now() - killed));
    if (!group.Start(victim)) break;
  }
  std::sort(times.begin(), times.end());
  if (!times.empty()) {
    std::printf("failover after kill -9 of the leader, %zu kills: min %.0f ms, median %.0f ms, max %.0f ms "
                "(election timeout 300 ms, heartbeat 50 ms; target median < 1000 ms)\n",
                times.size(), times.front(), times[times.size() / 2], times.back());
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  return 0;
}

}  // namespace
}  // namespace dfs

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return dfs::Main(argc, argv);
}
