// dfsctl fsck PATH [--repair] [--wait D]: every chunk of every file under
// PATH has as many good copies as the file wants. A copy is good when the
// chunkserver meta names for it stores that chunk version undamaged (asked
// with Stat, not taken from meta's word). --repair reports each bad copy to
// meta (which drops it and copies the chunk again from a good one) and
// checks again until clean or --wait runs out.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "ctl/tree.h"
#include "proto/chunk.grpc.pb.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

namespace {

struct BadCopy {
  uint64_t node_id = 0;
  std::string address;
  std::string reason;
  bool unreachable = false;  // the node did not answer: not reported as bad
};

struct Problem {
  std::string path;
  uint64_t chunk_index = 0, chunk_id = 0, version = 0;
  uint32_t good = 0, want = 0;
  std::vector<BadCopy> bad;
};

struct Report {
  uint64_t files = 0, chunks = 0, copies = 0;
  uint64_t in_meta = 0;  // chunks meta keeps in its database (small files): no copies to check
  std::vector<Problem> problems;
};

class Checker {
 public:
  explicit Checker(Context& ctx) : ctx_(ctx) {}

  common::Result<Report> Check(const std::string& path, const Resolved& root) {
    Report report;
    common::Status walked = WalkTree(ctx_, path, root, [&](const std::string& p, const pb::Attr& attr) {
      if (!S_ISREG(attr.mode())) return common::Status::Ok();
      ++report.files;
      return CheckFile(p, attr, &report);
    });
    if (!walked.ok()) return walked;
    return report;
  }

 private:
  common::Status CheckFile(const std::string& path, const pb::Attr& attr, Report* report) {
    if (attr.size() == 0) return common::Status::Ok();
    pb::GetChunkLocationsReply reply;
    grpc::Status s = ctx_.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::GetChunkLocationsRequest req;
      *req.mutable_ctx() = RootContext();
      req.set_ino(attr.ino());
      req.set_offset(0);
      req.set_length(attr.size());
      return pb::MetaService::Stub(ch).GetChunkLocations(&c, req, &reply);
    });
    if (!s.ok()) return common::FromGrpcStatus(s);
    common::Status status = common::FromFsStatus(reply.status());
    if (status.code() == common::StatusCode::kNotFound) return common::Status::Ok();  // deleted meanwhile
    RETURN_IF_ERROR(status);
    for (const pb::ChunkLocation& chunk : reply.chunks()) {
      if (chunk.chunk_id() == 0) continue;  // a hole
      ++report->chunks;
      if (chunk.inlined()) {  // replicated with meta's database, by Raft
        ++report->in_meta;
        continue;
      }
      Problem p;
      p.path = path;
      p.chunk_index = chunk.chunk_index();
      p.chunk_id = chunk.chunk_id();
      p.version = chunk.version();
      p.want = attr.replicas();
      for (const pb::ReplicaLocation& replica : chunk.replicas()) {
        ++report->copies;
        BadCopy bad{replica.node_id(), replica.address(), "", false};
        if (Good(replica, chunk, &bad)) {
          ++p.good;
        } else {
          p.bad.push_back(std::move(bad));
        }
      }
      if (p.good < p.want || !p.bad.empty()) report->problems.push_back(std::move(p));
    }
    return common::Status::Ok();
  }

  bool Good(const pb::ReplicaLocation& replica, const pb::ChunkLocation& chunk, BadCopy* bad) {
    auto& stub = stubs_[replica.address()];
    if (!stub) stub = pb::ChunkService::NewStub(common::MakeChannel(replica.address()));
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::StatRequest req;
    req.set_chunk_id(chunk.chunk_id());
    req.set_version(chunk.version());
    pb::StatReply reply;
    grpc::Status s = stub->Stat(&c, req, &reply);
    if (!s.ok()) {
      bad->unreachable = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      bad->reason = bad->unreachable ? "node unreachable" : common::FromGrpcStatus(s).ToString();
      return false;
    }
    for (const pb::ChunkInfo& info : reply.versions()) {
      if (info.version() != chunk.version()) continue;
      if (info.damaged()) {
        bad->reason = "damaged (CRC mismatch)";
        return false;
      }
      return true;
    }
    bad->reason = "version missing on the node";
    return false;
  }

  Context& ctx_;
  std::map<std::string, std::unique_ptr<pb::ChunkService::Stub>> stubs_;
};

// Bad copies of `report` that meta should drop; returns how many it took.
int ReportBad(Context& ctx, const Report& report) {
  int reported = 0;
  for (const Problem& p : report.problems) {
    for (const BadCopy& bad : p.bad) {
      if (bad.unreachable) continue;  // a dead node is meta's to judge
      pb::ReportBadReplicaRequest req;
      *req.mutable_ctx() = RootContext();
      req.set_chunk_id(p.chunk_id);
      req.set_version(p.version);
      req.set_node_id(bad.node_id);
      req.set_reason("dfsctl fsck: " + bad.reason);
      pb::StatusReply reply;
      grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
        return pb::MetaService::Stub(ch).ReportBadReplica(&c, req, &reply);
      });
      if (s.ok() && reply.status().code() == 0) ++reported;
    }
  }
  return reported;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

void Print(Context& ctx, const std::string& path, const Report& report, int reported, bool repair) {
  if (ctx.json) {
    nlohmann::json problems = nlohmann::json::array();
    for (const Problem& p : report.problems) {
      nlohmann::json bad = nlohmann::json::array();
      for (const BadCopy& b : p.bad) {
        bad.push_back({{"node", Hex(b.node_id)}, {"address", b.address}, {"reason", b.reason}});
      }
      problems.push_back({{"path", p.path},
                          {"chunk_index", p.chunk_index},
                          {"chunk_id", Hex(p.chunk_id)},
                          {"version", p.version},
                          {"good_copies", p.good},
                          {"wanted_copies", p.want},
                          {"bad_copies", bad}});
    }
    nlohmann::json out{{"path", path},         {"files", report.files},       {"chunks", report.chunks},
                       {"copies", report.copies}, {"in_meta", report.in_meta},
                       {"problems", problems},    {"clean", report.problems.empty()}};
    if (repair) out["bad_copies_reported"] = reported;
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  for (const Problem& p : report.problems) {
    std::printf("%s: chunk %llu (%s v%llu) has %u of %u good copies", p.path.c_str(),
                static_cast<unsigned long long>(p.chunk_index), Hex(p.chunk_id).c_str(),
                static_cast<unsigned long long>(p.version), p.good, p.want);
    for (const BadCopy& b : p.bad) std::printf("; %s: %s", Hex(b.node_id).c_str(), b.reason.c_str());
    std::printf("\n");
  }
  std::printf("%s: %llu files, %llu chunks, %llu copies checked, %llu chunks kept in meta: %s\n", path.c_str(),
              static_cast<unsigned long long>(report.files), static_cast<unsigned long long>(report.chunks),
              static_cast<unsigned long long>(report.copies), static_cast<unsigned long long>(report.in_meta),
              report.problems.empty() ? "clean"
                                      : (std::to_string(report.problems.size()) + " chunks need attention").c_str());
}

}  // namespace

int RunFsck(Context& ctx, const std::string& path, bool repair, int64_t wait_ms) {
  auto root = ResolvePath(ctx, path);
  if (!root.ok()) {
    std::fprintf(stderr, "dfsctl: fsck: %s\n", root.status().ToString().c_str());
    return 1;
  }
  Checker checker(ctx);
  auto report = checker.Check(path, *root);
  if (!report.ok()) {
    std::fprintf(stderr, "dfsctl: fsck %s: %s\n", path.c_str(), report.status().ToString().c_str());
    return 1;
  }
  int reported = 0;
  if (repair && !report->problems.empty()) {
    reported = ReportBad(ctx, *report);
    if (!ctx.json) {
      std::printf("reported %d bad copies to meta; waiting up to %lld ms for the repairs\n", reported,
                  static_cast<long long>(wait_ms));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!report->problems.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      auto again = checker.Check(path, *root);
      if (!again.ok()) {
        std::fprintf(stderr, "dfsctl: fsck %s: %s\n", path.c_str(), again.status().ToString().c_str());
        return 1;
      }
      *report = std::move(again).value();
      // Copies found bad since (a repair target that failed) go to meta too.
      reported += ReportBad(ctx, *report);
    }
  }
  Print(ctx, path, *report, reported, repair);
  return report->problems.empty() ? 0 : 1;
}

}  // namespace dfs::ctl
