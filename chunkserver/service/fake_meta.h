// Test-only: a small in-process MetaService that records what chunkservers
// send (Register, the inventory pages, heartbeats) and hands out commands.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/meta.grpc.pb.h"

namespace dfs::chunkserver::testing {

// Thread-safety: every field is guarded by `mu` (handlers run on gRPC threads).
class FakeMeta final : public pb::MetaService::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const pb::RegisterRequest* request,
                        pb::RegisterReply* reply) override {
    std::lock_guard<std::mutex> lock(mu);
    ++registers;
    last_register = *request;
    node_by_address[request->address()] = request->node_id();
    reply->set_heartbeat_interval_ms(register_interval_ms);
    return grpc::Status::OK;
  }
  grpc::Status ReportInventory(grpc::ServerContext*, grpc::ServerReader<pb::InventoryPage>* reader,
                               pb::InventoryReply*) override {
    pb::InventoryPage page;
    std::lock_guard<std::mutex> lock(mu);
    inventory.clear();
    while (reader->Read(&page)) {
      ++pages;
      for (const auto& c : page.chunks()) inventory.push_back(c);
      saw_last = page.last();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const pb::HeartbeatRequest* request,
                         pb::HeartbeatReply* reply) override {
    std::lock_guard<std::mutex> lock(mu);
    heartbeat_times.push_back(std::chrono::steady_clock::now());
    last_heartbeat = *request;
    for (const auto& d : request->damaged()) damaged.push_back(d);
    for (const auto& r : request->replicated()) replicated.push_back(r);
    for (const auto& f : request->copy_failed()) copy_failed.push_back(f);
    if (command_target == 0 || command_target == request->node_id()) {
      for (const auto& c : pending_commands) *reply->add_commands() = c;
      pending_commands.clear();
    }
    if (ask_reregister) {
      reply->set_reregister(true);
      ask_reregister = false;
    }
    return grpc::Status::OK;
  }

  std::mutex mu;
  int registers = 0;
  int pages = 0;
  bool saw_last = false;
  bool ask_reregister = false;
  uint32_t register_interval_ms = 0;
  uint64_t command_target = 0;  // node that gets pending_commands (0 = the next to heartbeat)
  std::map<std::string, uint64_t> node_by_address;  // what RegisterReply.heartbeat_interval_ms says
  pb::RegisterRequest last_register;
  pb::HeartbeatRequest last_heartbeat;
  std::vector<pb::ChunkRef> replicated;   // every copy reported done
  std::vector<pb::ChunkRef> copy_failed;  // every copy reported failed
  std::vector<pb::ChunkRef> inventory;
  std::vector<pb::ChunkRef> damaged;
  std::vector<std::chrono::steady_clock::time_point> heartbeat_times;
  std::vector<pb::Command> pending_commands;
};

struct FakeMetaServer {
  FakeMetaServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&meta);
    server = builder.BuildAndStart();
    address = "127.0.0.1:" + std::to_string(port);
  }
  ~FakeMetaServer() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server->Wait();
  }
  FakeMeta meta;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

}  // namespace dfs::chunkserver::testing
