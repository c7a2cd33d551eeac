#include "chunkserver/service/replicator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "common/chunk_geometry.h"
#include "common/grpc_status.h"
#include "common/leader_channel.h"
#include "common/rate_limiter.h"
#include "proto/chunk.grpc.pb.h"

namespace dfs::chunkserver {

using common::Result;
using common::Status;

Result<uint64_t> ReplicateChunk(ChunkStore& store, const ReplicateSpec& spec) {
  if (spec.source_address.empty()) return common::InvalidArgumentError("replicate: no source address");
  Result<ChunkMeta> have = store.Find(spec.chunk_id, spec.version);
  if (have.ok() && !have->damaged) return have->length;

  ASSIGN_OR_RETURN(std::unique_ptr<ChunkWriter> writer,
                   store.StartWrite({spec.chunk_id, spec.version, 0, /*replace=*/true}));
  auto stub = pb::ChunkService::NewStub(common::MakeChannel(spec.source_address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(spec.timeout_ms));
  pb::ReadRequest request;
  request.set_chunk_id(spec.chunk_id);
  request.set_version(spec.version);
  request.set_offset(0);
  request.set_length(common::kChunkSizeBytes);
  request.set_zero_blocks_ok(true);
  // What a message of zero blocks stands for (a source that predates
  // zero_blocks sends the bytes).
  static const std::string kZeros(kMaxWriteMessageBytes, '\0');
  std::optional<common::RateLimiter> limiter;
  if (spec.bandwidth_limit_bytes_per_s > 0) {
    double rate = static_cast<double>(spec.bandwidth_limit_bytes_per_s);
    limiter.emplace(rate, std::max(rate, double{1 << 20}));
  }
  auto reader = stub->Read(&context, request);
  pb::ReadReply reply;
  uint64_t expected_offset = 0;
  uint64_t chunk_length = 0;
  bool have_length = false;
  Status local;
  while (reader->Read(&reply)) {
    if (reply.offset() != expected_offset || (have_length && reply.chunk_length() != chunk_length)) {
      local = common::DataLossError(fmt::format("replicate chunk {:016x} from {}: reply out of order",
                                                spec.chunk_id, spec.source_address));
      break;
    }
    chunk_length = reply.chunk_length();
    have_length = true;
    const uint64_t zero_bytes = reply.zero_blocks() * common::kBlockSizeBytes;
    if (reply.zero_blocks() != 0 && (!reply.data().empty() || zero_bytes > kZeros.size())) {
      local = common::DataLossError(fmt::format("replicate chunk {:016x} from {}: malformed zero blocks",
                                                spec.chunk_id, spec.source_address));
      break;
    }
    const std::string_view data =
        reply.zero_blocks() != 0 ? std::string_view(kZeros).substr(0, zero_bytes) : std::string_view(reply.data());
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data.data()), data.size());
    std::span<const uint32_t> crcs(reply.block_crcs().data(), static_cast<size_t>(reply.block_crcs_size()));
    local = writer->Write(reply.offset(), bytes, crcs);
    if (!local.ok()) break;
    expected_offset += data.size();
    // The limit is on the network: zero blocks sent as a count cost nothing.
    if (limiter) limiter->Acquire(static_cast<double>(reply.data().size()));
  }
  if (!local.ok()) {
    context.TryCancel();
    while (reader->Read(&reply)) {
    }
    (void)reader->Finish();
    return local.WithContext("replicate from " + spec.source_address);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return common::FromGrpcStatus(status).WithContext("replicate from " + spec.source_address);
  }
  if (!have_length || expected_offset != chunk_length) {
    return common::DataLossError(fmt::format("replicate chunk {:016x} from {}: got {} of {} bytes",
                                             spec.chunk_id, spec.source_address, expected_offset, chunk_length));
  }
  return writer->Commit(/*durable=*/true);
}

}  // namespace dfs::chunkserver
