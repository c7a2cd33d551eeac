// ChunkServiceImpl: the gRPC face of a ChunkStore (proto/chunk.proto).
//
// Thin handlers: they check the request (sizes, ranges, the write token),
// translate to the store's calls and back, and count what they did. All
// logic about bytes on disk lives in the store.
//
// Details the proto leaves open, decided here:
//  - Read with length 0, or at offset == chunk length, answers one message
//    without data that carries chunk_length (how a peer learns the length).
//  - Read of [offset, offset + length) beyond 64 MiB is INVALID_ARGUMENT; past
//    the chunk's length (but inside 64 MiB) it is clipped, except an offset
//    past the length, which is INVALID_ARGUMENT.
//  - A data message over 1 MiB is INVALID_ARGUMENT (gRPC itself refuses
//    anything over common::kMaxGrpcMessageBytes with RESOURCE_EXHAUSTED).
//  - Incoming data whose piece CRC does not match is DATA_LOSS naming the
//    block; nothing of that message is written.
//  - A second writer of a chunk waits up to 60 s for the first, then ABORTED.
//
// Thread-safety: gRPC calls handlers from its thread pool concurrently; the
// store serializes what must be serialized. BeginShutdown may be called from
// any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "chunkserver/store/chunk_store.h"
#include "common/auth.h"
#include "common/clock.h"
#include "proto/chunk.grpc.pb.h"

namespace prometheus {
class Registry;
}

namespace dfs::chunkserver {

class ChunkServiceImpl final : public pb::ChunkService::Service {
 public:
  struct Options {
    std::string cluster_key;        // verifies WriteHeader.token (common/write_token.h)
    // Who may call: Write and Read need kClient, the rest kNode
    // (common/auth.h). Default: open.
    common::Authorizer::Options auth;
    common::Clock* clock = &common::SystemClock::Get();
    int64_t workers = 8;            // the denominator of load()
    std::shared_ptr<prometheus::Registry> metrics;  // optional
  };
  ChunkServiceImpl(ChunkStore& store, Options options);
  ~ChunkServiceImpl() override;
  ChunkServiceImpl(const ChunkServiceImpl&) = delete;
  ChunkServiceImpl& operator=(const ChunkServiceImpl&) = delete;

  grpc::Status Write(grpc::ServerContext* context, grpc::ServerReader<pb::WriteRequest>* reader,
                     pb::WriteReply* reply) override;
  // Write's work on any source of messages (Write passes its gRPC stream;
  // the fuzz target tests/fuzz/chunk_write_fuzz.cc a fuzzed one).
  grpc::Status WriteFrom(grpc::ServerContext* context, grpc::ServerReaderInterface<pb::WriteRequest>* reader,
                         pb::WriteReply* reply);
  grpc::Status Read(grpc::ServerContext* context, const pb::ReadRequest* request,
                    grpc::ServerWriter<pb::ReadReply>* writer) override;
  grpc::Status Stat(grpc::ServerContext* context, const pb::StatRequest* request,
                    pb::StatReply* reply) override;
  grpc::Status Delete(grpc::ServerContext* context, const pb::DeleteRequest* request,
                      pb::DeleteReply* reply) override;
  grpc::Status ListChunks(grpc::ServerContext* context, const pb::ListChunksRequest* request,
                          grpc::ServerWriter<pb::ListChunksReply>* writer) override;
  grpc::Status ReplicateFrom(grpc::ServerContext* context, const pb::ReplicateFromRequest* request,
                             pb::ReplicateFromReply* reply) override;

  // New calls fail with UNAVAILABLE from now on.
  void BeginShutdown() { shutting_down_ = true; }
  // Requests in flight / workers.
  double load() const;

 private:
  struct Metrics;
  // The caller's role (auth_), then UNAVAILABLE once shutting down.
  grpc::Status Admit(grpc::ServerContext* context, common::Role needed) const;
  grpc::Status DoWrite(grpc::ServerContext* context, grpc::ServerReaderInterface<pb::WriteRequest>* reader,
                       pb::WriteReply* reply);
  grpc::Status DoRead(grpc::ServerContext* context, const pb::ReadRequest& request,
                      grpc::ServerWriter<pb::ReadReply>* writer);

  ChunkStore& store_;
  const Options options_;
  const common::Authorizer authorizer_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace dfs::chunkserver
