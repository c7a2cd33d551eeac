// meta_bench: metadata operations per second through gRPC on loopback, next
// to raw SQLite inserts of rows of the same size, in one run (issue 4).
//
// A real MetaServiceImpl (LocalProposer, StateMachine with WAL and
// synchronous=FULL - durable commits) serves on 127.0.0.1:0 in this process;
// C client threads (each with its own session) create, look up, stat and
// unlink files in a fresh directory per run. Prints, never fails.
//
// Usage: meta_bench [--files N] [--files-1 N] [--dir-entries N]
// Defaults: 100000 files with 16 clients (50000 for the sync=NORMAL row that
// prices durability), 10000 with 1 client - one client pays one fsync per
// create, so 100000 would take minutes - and a 1,000,000-entry directory for
// the readdir paging check.
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/leader_channel.h"
#include "common/meta_calls.h"
#include "common/runtime.h"
#include "meta/service/cluster_state.h"
#include "meta/service/meta_service.h"
#include "meta/service/proposer.h"
#include "meta/state_machine/state_machine.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::meta {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `fn(thread, i)` for i in [0, n) split over `threads`; returns ops/s.
template <typename Fn>
double Parallel(int threads, int n, Fn fn) {
  std::vector<std::thread> pool;
  std::atomic<int> next{0};
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i; (i = next.fetch_add(1)) < n;) fn(t, i);
    });
  }
  for (auto& th : pool) th.join();
  return n / Seconds(start);
}

struct Rates {
  double create = 0, lookup = 0, getattr = 0, unlink = 0;
};

// How the client threads call: one unary gRPC call per request, or a
// message of a MetaService.Calls stream per request (one stream per client
// thread, as a mount's CallStreams keeps one per call in flight): what
// mounts send since FEATURE_CALL_STREAMS.
enum class Transport { kUnary, kStream };

template <typename Req, typename Reply>
using UnaryMethod = grpc::Status (pb::MetaService::Stub::*)(grpc::ClientContext*, const Req&, Reply*);

Rates RunClients(const std::string& address, int clients, int files, const std::string& dir_name,
                 Transport transport) {
  // A few channels, as a few mounts would have; 4 client threads per connection.
  std::vector<std::unique_ptr<pb::MetaService::Stub>> stubs;
  for (int t = 0; t < clients; ++t) {
    if (t % 4 == 0) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", t);  // distinct connections
      stubs.push_back(pb::MetaService::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
    }
  }
  auto stub = [&](int t) { return stubs[t / 4].get(); };
  std::vector<std::unique_ptr<grpc::ClientContext>> stream_contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<pb::MetaCall, pb::MetaReturn>>> streams;
  if (transport == Transport::kStream) {
    for (int t = 0; t < clients; ++t) {
      stream_contexts.push_back(std::make_unique<grpc::ClientContext>());
      streams.push_back(stub(t)->Calls(stream_contexts.back().get()));
    }
  }
  // Client thread t's call of `method`, as `transport` says: false if it
  // failed (the reply's FsStatus is the caller's to check).
  auto call = [&]<typename Req, typename Reply>(int t, UnaryMethod<Req, Reply> method, const Req& req,
                                                Reply* reply) {
    if (transport == Transport::kUnary) {
      grpc::ClientContext ctx;
      return (stub(t)->*method)(&ctx, req, reply).ok();
    }
    pb::MetaCall message;
    common::PutCall(&message, req);
    pb::MetaReturn ret;
    return streams[t]->Write(message) && streams[t]->Read(&ret) && ret.code() == 0 && common::TakeReply(&ret, reply);
  };
  std::vector<uint64_t> session(clients);
  std::vector<std::atomic<uint64_t>> request(clients);
  for (int t = 0; t < clients; ++t) {
    grpc::ClientContext ctx;
    pb::OpenSessionRequest req;
    pb::OpenSessionReply reply;
    stub(t)->OpenSession(&ctx, req, &reply);
    session[t] = reply.client_id();
  }
  auto rctx = [&](int t, pb::RequestContext* ctx) {
    ctx->set_client_id(session[t]);
    ctx->set_request_id(++request[t]);
  };
  uint64_t dir = 0;
  {
    grpc::ClientContext ctx;
    pb::MkdirRequest req;
    rctx(0, req.mutable_ctx());
    req.set_parent(1);
    req.set_name(dir_name);
    req.set_mode(0755);
    pb::EntryReply reply;
    stub(0)->Mkdir(&ctx, req, &reply);
    dir = reply.attr().ino();
  }
  std::vector<uint64_t> inos(files);
  std::atomic<int> errors{0};
  Rates rates;
  rates.create = Parallel(clients, files, [&](int t, int i) {
    pb::CreateRequest req;
    rctx(t, req.mutable_ctx());
    req.set_parent(dir);
    req.set_name("file-" + std::to_string(i));
    req.set_mode(0644);
    req.set_flags(01);
    pb::CreateReply reply;
    if (!call(t, &pb::MetaService::Stub::Create, req, &reply) || reply.status().code() != 0) ++errors;
    inos[i] = reply.attr().ino();
  });
  std::vector<std::mt19937> rngs;
  for (int t = 0; t < clients; ++t) rngs.emplace_back(t);
  rates.lookup = Parallel(clients, files, [&](int t, int) {
    pb::LookupRequest req;
    req.set_parent(dir);
    req.set_name("file-" + std::to_string(rngs[t]() % files));
    pb::EntryReply reply;
    if (!call(t, &pb::MetaService::Stub::Lookup, req, &reply) || reply.status().code() != 0) ++errors;
  });
  rates.getattr = Parallel(clients, files, [&](int t, int) {
    pb::GetAttrRequest req;
    req.set_ino(inos[rngs[t]() % files]);
    pb::AttrReply reply;
    if (!call(t, &pb::MetaService::Stub::GetAttr, req, &reply) || reply.status().code() != 0) ++errors;
  });
  rates.unlink = Parallel(clients, files, [&](int t, int i) {
    pb::UnlinkRequest req;
    rctx(t, req.mutable_ctx());
    req.set_parent(dir);
    req.set_name("file-" + std::to_string(i));
    pb::StatusReply reply;
    if (!call(t, &pb::MetaService::Stub::Unlink, req, &reply) || reply.status().code() != 0) ++errors;
  });
  for (auto& stream : streams) {
    stream->WritesDone();
    stream->Finish();
  }
  for (int t = 0; t < clients; ++t) {  // frees the unlinked-but-open files
    grpc::ClientContext ctx;
    pb::CloseSessionRequest req;
    rctx(t, req.mutable_ctx());
    pb::StatusReply reply;
    stub(t)->CloseSession(&ctx, req, &reply);
  }
  if (errors > 0) std::printf("  (%d operations failed)\n", errors.load());
  return rates;
}

// Raw SQLite: rows about the size of one created file's inode + dentry
// (~120 bytes), WAL + synchronous=FULL; one row per transaction, and batches.
double RawInserts(const std::string& path, int rows, int rows_per_txn) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                   "CREATE TABLE t(id INTEGER PRIMARY KEY, name BLOB, a INTEGER, b INTEGER, c INTEGER, "
                   "d INTEGER, e INTEGER, f INTEGER, g INTEGER, h INTEGER);",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t(name, a, b, c, d, e, f, g, h) VALUES(?,?,?,?,?,?,?,?,?)", -1, &stmt,
                     nullptr);
  auto start = Clock::now();
  for (int i = 0; i < rows; ++i) {
    if (i % rows_per_txn == 0) sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    std::string name = "file-" + std::to_string(i);
    sqlite3_bind_blob(stmt, 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    for (int c = 2; c <= 9; ++c) sqlite3_bind_int64(stmt, c, 1'700'000'000'000'000'000 + i * c);
    sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (i % rows_per_txn == rows_per_txn - 1 || i == rows - 1) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double rate = rows / Seconds(start);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rate;
}

// One in-process dfs-meta on 127.0.0.1:0 over a fresh database.
class Server {
 public:
  Server(const std::string& db_path, const char* synchronous) {
    StateMachine::Options options;
    options.synchronous = synchronous;
    auto sm = StateMachine::Open(db_path, options);
    if (!sm.ok()) std::abort();
    sm_ = std::move(sm).value();
    proposer_ = std::make_unique<LocalProposer>(sm_.get());
    MetaServiceOptions service_options;
    service_options.cluster_key = "bench-key-0123456789";
    service_options.data_dir = std::filesystem::path(db_path).parent_path();  // its room is measured
    service_ = std::make_unique<MetaServiceImpl>(sm_.get(), proposer_.get(), common::SystemClock::Get(), &cluster_,
                                                 service_options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~Server() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  const std::string& address() const { return address_; }
  LocalProposer& proposer() { return *proposer_; }
  StateMachine& state_machine() { return *sm_; }

 private:
  std::unique_ptr<StateMachine> sm_;
  std::unique_ptr<LocalProposer> proposer_;
  ClusterState cluster_{10'000'000'000};
  std::unique_ptr<MetaServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

Rates Row(Server& server, const char* mode, int clients, int files, Transport transport) {
  LocalProposer::Stats before = server.proposer().stats();
  const bool streamed = transport == Transport::kStream;
  Rates r = RunClients(server.address(), clients, files,
                       std::string(streamed ? "stream" : "unary") + std::to_string(clients), transport);
  LocalProposer::Stats after = server.proposer().stats();
  const double batch =
      static_cast<double>(after.ops - before.ops) / static_cast<double>(std::max<uint64_t>(1, after.entries - before.entries));
  std::printf("%-7s %-7s %-8d %8d %12.0f %12.0f %12.0f %12.0f %14.1f\n", mode, streamed ? "stream" : "unary",
              clients, files, r.create, r.lookup, r.getattr, r.unlink, batch);
  std::fflush(stdout);
  return r;
}

// Where one client's getattr time goes, in microseconds per call: a GetAttr
// of inode 0 (refused before the database: the cost of a gRPC call to this
// service), a GetAttr of the root through gRPC, and the state machine's
// GetAttr called directly.
void GetAttrSplit(Server& server) {
  constexpr int kCalls = 5000;
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto stub = pb::MetaService::NewStub(channel);
  auto per_call_us = [&](uint64_t ino, bool direct) {
    auto start = Clock::now();
    for (int i = 0; i < kCalls; ++i) {
      pb::GetAttrRequest req;
      req.set_ino(ino);
      pb::AttrReply reply;
      if (direct) {
        server.state_machine().GetAttr(req, &reply);
      } else {
        grpc::ClientContext ctx;
        stub->GetAttr(&ctx, req, &reply);
      }
    }
    return Seconds(start) * 1e6 / kCalls;
  };
  per_call_us(1, false);  // connects and warms up
  const double refused = per_call_us(0, false), full = per_call_us(1, false), direct = per_call_us(1, true);
  std::printf("getattr@1 split: gRPC call refused before the database %.0f us, full call %.0f us, "
              "state machine alone %.1f us\n",
              refused, full, direct);
}

// Readdir pages of a directory of `entries` entries, filled by Apply directly
// (no fsync), at the start, middle and end: each page is one index range scan,
// so the time must not grow with the position.
void ReadDirScaling(const std::string& base, int entries) {
  StateMachine::Options options;
  options.synchronous = "OFF";
  auto sm = StateMachine::Open(base + "/big.db", options);
  if (!sm.ok()) return;
  auto start = Clock::now();
  std::vector<uint64_t> cookies;
  for (int done = 0; done < entries;) {
    pb::Entry entry;
    entry.set_format(1);
    for (int i = 0; i < 5000 && done < entries; ++i, ++done) {
      pb::Op* op = entry.add_ops();
      op->mutable_mknod()->set_parent(1);
      op->mutable_mknod()->set_name("entry-" + std::to_string(done));
      op->mutable_mknod()->set_mode(S_IFREG | 0644);
    }
    (*sm)->ApplyEntry(entry);
  }
  const double fill_s = Seconds(start);
  std::printf("readdir in a directory of %d entries (filled in %.1f s, %.0f mknod/s through Apply):\n", entries,
              fill_s, entries / fill_s);
  for (uint64_t cookie : {uint64_t{0}, uint64_t(entries / 2), uint64_t(entries - 300)}) {
    constexpr int kPages = 50;
    auto page_start = Clock::now();
    for (int i = 0; i < kPages; ++i) {
      pb::ReadDirRequest req;
      req.set_ino(1);
      req.set_cookie(cookie);
      req.set_max_entries(256);
      pb::ReadDirReply reply;
      (*sm)->ReadDir(req, true, &reply);
    }
    std::printf("  page of 256 (readdirplus) at cookie %9llu: %7.0f us\n", static_cast<unsigned long long>(cookie),
                Seconds(page_start) * 1e6 / kPages);
  }
}

int Main(int argc, char** argv) {
  int files16 = 100000, files1 = 10000, big_dir = 1000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--files") == 0) files16 = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--files-1") == 0) files1 = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--dir-entries") == 0) big_dir = std::atoi(argv[i + 1]);
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/dfs-meta-bench-XXXXXX";
  if (mkdtemp(base.data()) == nullptr) return 0;

  std::printf("meta_bench: in-process dfs-meta over gRPC on 127.0.0.1; clients are threads of this process\n");
  std::printf("sync=FULL: fsync per commit (durable, the default); sync=NORMAL: WAL, no fsync per commit\n");
  std::printf("calls: unary = one gRPC call each; stream = messages of MetaService.Calls streams, one per client\n"
              "thread (what mounts send)\n");
  std::printf("%-7s %-7s %-8s %8s %12s %12s %12s %12s %14s\n", "sync", "calls", "clients", "files", "creates/s",
              "lookups/s", "getattrs/s", "unlinks/s", "ops per commit");
  Rates r1, u1, r16, u16, n16;
  {
    Server server(base + "/full.db", "FULL");
    u1 = Row(server, "FULL", 1, files1, Transport::kUnary);
    r1 = Row(server, "FULL", 1, files1, Transport::kStream);
    GetAttrSplit(server);
    u16 = Row(server, "FULL", 16, files16, Transport::kUnary);
    r16 = Row(server, "FULL", 16, files16, Transport::kStream);
  }
  {
    Server server(base + "/normal.db", "NORMAL");
    n16 = Row(server, "NORMAL", 16, files16 / 2, Transport::kStream);
  }
  const double raw1 = RawInserts(base + "/raw1.db", 2000, 1);
  const double raw_batch = RawInserts(base + "/raw2.db", files16, 1000);
  std::printf("raw SQLite inserts/s (~120-byte rows, WAL, FULL): 1 row per txn %.0f, 1000 rows per txn %.0f\n", raw1,
              raw_batch);
  std::printf("ratios: creates@1 / raw 1-row txns = %.2f; creates@16 / raw 1-row txns = %.2f; "
              "creates@16 / raw 1000-row txns = %.3f; durability cost (creates@16 NORMAL / FULL) = %.2fx\n",
              r1.create / raw1, r16.create / raw1, r16.create / raw_batch, n16.create / r16.create);
  std::printf("streams/unary: at 1 client creates %.2f, getattrs %.2f; at 16 creates %.2f, lookups %.2f, "
              "getattrs %.2f, unlinks %.2f\n",
              r1.create / u1.create, r1.getattr / u1.getattr, r16.create / u16.create, r16.lookup / u16.lookup,
              r16.getattr / u16.getattr, r16.unlink / u16.unlink);
  std::printf("targets (FULL, calls as mounts send them: streams): creates@16 >= 10000/s: %s (%.0f); "
              "getattr@16 >= 30000/s: %s (%.0f); MooseFS here: ~1900 creates/s, ~5800 stats/s\n",
              r16.create >= 10000 ? "met" : "MISSED", r16.create, r16.getattr >= 30000 ? "met" : "MISSED",
              r16.getattr);
  std::fflush(stdout);
  if (big_dir > 0) ReadDirScaling(base, big_dir);
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  return 0;
}

}  // namespace
}  // namespace dfs::meta

int main(int argc, char** argv) {
  dfs::common::ConfigureRuntime();
  return dfs::meta::Main(argc, argv);
}
