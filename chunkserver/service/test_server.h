// Test-only: a ChunkStore + ChunkServiceImpl served in-process on 127.0.0.1.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "chunkserver/service/chunk_client.h"
#include "chunkserver/service/chunk_service.h"
#include "chunkserver/store/chunk_store.h"
#include "common/leader_channel.h"
#include "common/write_token.h"
#include "proto/chunk.grpc.pb.h"

namespace dfs::chunkserver::testing {

inline constexpr char kTestKey[] = "0123456789abcdef-test-cluster-key";

struct InProcessChunkserver {
  explicit InProcessChunkserver(common::Authorizer::Options auth = {}) {
    char tmpl[] = "/tmp/chunkserver_test.XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ChunkStore::Options options;
    options.folders = {dir};
    auto opened = ChunkStore::Open(options);
    EXPECT_TRUE(opened.ok());
    store = std::move(*opened);
    ChunkServiceImpl::Options service_options;
    service_options.cluster_key = kTestKey;
    service_options.auth = std::move(auth);
    service = std::make_unique<ChunkServiceImpl>(*store, service_options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
    builder.SetMaxSendMessageSize(common::kMaxGrpcMessageBytes);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    EXPECT_NE(port, 0);
    address = "127.0.0.1:" + std::to_string(port);
    stub = pb::ChunkService::NewStub(common::MakeChannel(address));
  }
  ~InProcessChunkserver() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server->Wait();
    std::filesystem::remove_all(dir);
  }

  std::string dir;
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<ChunkServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<pb::ChunkService::Stub> stub;
};

inline pb::WriteHeader Header(uint64_t chunk_id, uint64_t version, uint64_t base_version, uint64_t offset,
                              const std::string& key = kTestKey, int64_t expires_unix_ms = 0) {
  pb::WriteHeader header;
  header.set_chunk_id(chunk_id);
  header.set_version(version);
  header.set_base_version(base_version);
  header.set_offset(offset);
  header.set_durable(true);
  common::WriteGrant grant;
  grant.chunk_id = chunk_id;
  grant.version = version;
  grant.lease_id = 1;
  grant.expires_unix_ms = expires_unix_ms != 0
                              ? expires_unix_ms
                              : std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                        .count() +
                                    600'000;
  common::SignWriteToken(key, grant, header.mutable_token());
  return header;
}

}  // namespace dfs::chunkserver::testing
