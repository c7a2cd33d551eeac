#include "chunkserver/service/chunk_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "common/chunk_geometry.h"
#include "common/crc32c.h"
#include "common/grpc_status.h"

namespace dfs::chunkserver {

using common::kBlockSizeBytes;
using common::Result;
using common::Status;

Result<WriteOutcome> WriteChunk(pb::ChunkService::StubInterface& stub, const pb::WriteHeader& header,
                                std::span<const std::byte> data, int64_t timeout_ms, size_t message_bytes) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  pb::WriteReply reply;
  auto writer = stub.Write(&context, &reply);
  pb::WriteRequest request;
  *request.mutable_header() = header;
  bool open = writer->Write(request);
  uint64_t offset = header.offset();
  std::vector<uint32_t> crcs;
  for (size_t pos = 0; open && pos < data.size();) {
    size_t n = std::min(message_bytes, data.size() - pos);
    auto piece = data.subspan(pos, n);
    crcs.resize(common::PieceCount(offset, n, kBlockSizeBytes));
    common::PieceCrcs(offset, piece, kBlockSizeBytes, crcs);
    pb::WriteData* msg = request.mutable_data();
    msg->set_data(reinterpret_cast<const char*>(piece.data()), piece.size());
    msg->mutable_piece_crcs()->Assign(crcs.begin(), crcs.end());
    open = writer->Write(request);
    pos += n;
    offset += n;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return common::FromGrpcStatus(status);
  WriteOutcome out;
  out.bytes_written = reply.bytes_written();
  out.chunk_length = reply.chunk_length();
  out.durable = reply.durable();
  return out;
}

Result<std::string> ReadChunk(pb::ChunkService::StubInterface& stub, uint64_t chunk_id, uint64_t version,
                              uint64_t offset, uint64_t length, int64_t timeout_ms, uint64_t* chunk_length) {
  std::string out;
  RETURN_IF_ERROR(ReadChunkInto(stub, chunk_id, version, offset, length, &out, timeout_ms, chunk_length));
  return out;
}

Status ReadChunkInto(pb::ChunkService::StubInterface& stub, uint64_t chunk_id, uint64_t version, uint64_t offset,
                     uint64_t length, std::string* out, int64_t timeout_ms, uint64_t* chunk_length) {
  out->clear();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  pb::ReadRequest request;
  request.set_chunk_id(chunk_id);
  request.set_version(version);
  request.set_offset(offset);
  request.set_length(length);
  auto reader = stub.Read(&context, request);
  pb::ReadReply reply;
  Status verify;
  uint64_t length_seen = 0;
  bool reserved = false;
  while (reader->Read(&reply)) {
    length_seen = reply.chunk_length();
    if (!reserved) {
      // One allocation for the whole range instead of regrowing per message.
      uint64_t end = std::min<uint64_t>(offset + length, length_seen);
      if (end > offset) out->reserve(end - offset);
      reserved = true;
    }
    const std::string& data = reply.data();
    size_t blocks = static_cast<size_t>(common::BlockCount(data.size()));
    if (reply.offset() % kBlockSizeBytes != 0 || static_cast<size_t>(reply.block_crcs_size()) != blocks) {
      verify = common::DataLossError("malformed read reply");
      context.TryCancel();
      break;
    }
    for (size_t i = 0; i < blocks; ++i) {
      size_t n = std::min<size_t>(kBlockSizeBytes, data.size() - i * kBlockSizeBytes);
      if (common::Crc32c(data.data() + i * kBlockSizeBytes, n) != reply.block_crcs(static_cast<int>(i))) {
        verify = common::DataLossError(fmt::format("chunk {:016x} version {}: block {} failed its CRC check "
                                                   "on arrival",
                                                   chunk_id, version, reply.offset() / kBlockSizeBytes + i));
        break;
      }
    }
    if (!verify.ok()) {
      context.TryCancel();
      break;
    }
    // Keep the requested part of the whole blocks.
    uint64_t begin = std::max(offset, reply.offset());
    uint64_t end = std::min<uint64_t>(offset + length, reply.offset() + data.size());
    if (end > begin) out->append(data, begin - reply.offset(), end - begin);
  }
  if (!verify.ok()) {
    while (reader->Read(&reply)) {
    }
    (void)reader->Finish();
    return verify;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return common::FromGrpcStatus(status);
  if (chunk_length != nullptr) *chunk_length = length_seen;
  return Status::Ok();
}

}  // namespace dfs::chunkserver
