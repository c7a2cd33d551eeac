#include "chunkserver/service/chunk_service.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/service/replicator.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"
#include "common/grpc_status.h"
#include "common/write_token.h"

namespace dfs::chunkserver {

using common::kBlockSizeBytes;
using common::kChunkSizeBytes;
using common::Status;

namespace {

constexpr uint64_t kBlocksPerReadMessage = 16;  // 1 MiB
constexpr uint32_t kDefaultListPage = 1000;
constexpr uint32_t kMaxListPage = 10000;

grpc::Status Fail(const Status& s) { return common::ToGrpcStatus(s); }
grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

void FillInfo(const ChunkMeta& m, pb::ChunkInfo* out) {
  out->set_chunk_id(m.chunk_id);
  out->set_version(m.version);
  out->set_length(m.length);
  out->set_damaged(m.damaged);
  out->set_mtime_unix_ms(m.mtime_unix_ms);
}

// An exact read's message: the bytes of [from, to) that `whole` (the
// verified blocks `blocks` describes) holds, with a PieceCheck for each
// block, so that the client checks them against the stored CRCs. False when
// `whole` holds none of them (the chunk shrank under the read).
bool CutExact(const std::string& whole, const BlockRead& blocks, uint64_t from, uint64_t to, pb::ReadReply* reply) {
  const uint64_t lo = std::max(from, blocks.offset);
  const uint64_t hi = std::min(to, blocks.offset + whole.size());
  if (lo >= hi) return false;
  reply->set_offset(lo);
  reply->set_data(whole.data() + (lo - blocks.offset), hi - lo);
  reply->clear_head_crcs();
  reply->clear_tail_terms();
  const auto bytes = std::as_bytes(std::span(whole.data(), whole.size()));
  for (size_t i = 0; i < blocks.crcs.size(); ++i) {
    const uint64_t block_start = blocks.offset + i * kBlockSizeBytes;
    const size_t at = i * kBlockSizeBytes;
    const auto block = bytes.subspan(at, std::min<size_t>(kBlockSizeBytes, whole.size() - at));
    const uint64_t piece_from = std::clamp(lo, block_start, block_start + block.size());
    const uint64_t piece_to = std::clamp(hi, piece_from, block_start + block.size());
    common::PieceCheck check = common::Crc32cPieceCheck(block, piece_from - block_start, piece_to - piece_from);
    reply->add_head_crcs(check.head_crc);
    reply->add_tail_terms(check.tail_term);
  }
  return true;
}

}  // namespace

struct ChunkServiceImpl::Metrics {
  prometheus::Counter* bytes_written = nullptr;
  prometheus::Counter* bytes_read = nullptr;
  prometheus::Counter* write_errors = nullptr;
  prometheus::Counter* read_errors = nullptr;
  prometheus::Counter* crc_errors = nullptr;
};

ChunkServiceImpl::ChunkServiceImpl(ChunkStore& store, Options options)
    : store_(store), options_(std::move(options)), authorizer_(options_.auth), metrics_(std::make_unique<Metrics>()) {
  if (options_.metrics) {
    auto& bytes = prometheus::BuildCounter()
                      .Name("dfs_chunkserver_bytes_total")
                      .Help("Chunk bytes moved by the ChunkService")
                      .Register(*options_.metrics);
    metrics_->bytes_written = &bytes.Add({{"op", "write"}});
    metrics_->bytes_read = &bytes.Add({{"op", "read"}});
    auto& errors = prometheus::BuildCounter()
                       .Name("dfs_chunkserver_errors_total")
                       .Help("Failed ChunkService calls")
                       .Register(*options_.metrics);
    metrics_->write_errors = &errors.Add({{"op", "write"}});
    metrics_->read_errors = &errors.Add({{"op", "read"}});
    metrics_->crc_errors = &errors.Add({{"op", "crc"}});
  }
}

ChunkServiceImpl::~ChunkServiceImpl() = default;

double ChunkServiceImpl::load() const {
  return static_cast<double>(in_flight_.load()) / static_cast<double>(std::max<int64_t>(1, options_.workers));
}

namespace {
struct InFlight {
  explicit InFlight(std::atomic<int64_t>& n) : n_(n) { ++n_; }
  ~InFlight() { --n_; }
  std::atomic<int64_t>& n_;
};
void Inc(prometheus::Counter* c, double v = 1) {
  if (c != nullptr) c->Increment(v);
}
}  // namespace

grpc::Status ChunkServiceImpl::Admit(grpc::ServerContext* context, common::Role needed) const {
  if (grpc::Status s = authorizer_.Check(*context, needed); !s.ok()) return s;
  if (shutting_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "chunkserver is shutting down");
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::Write(grpc::ServerContext* context, grpc::ServerReader<pb::WriteRequest>* reader,
                                     pb::WriteReply* reply) {
  return WriteFrom(context, reader, reply);
}

grpc::Status ChunkServiceImpl::WriteFrom(grpc::ServerContext* context,
                                         grpc::ServerReaderInterface<pb::WriteRequest>* reader, pb::WriteReply* reply) {
  InFlight guard(in_flight_);
  grpc::Status s = DoWrite(context, reader, reply);
  if (!s.ok()) {
    Inc(metrics_->write_errors);
    spdlog::debug("Write failed: {}", s.error_message());
  }
  return s;
}

grpc::Status ChunkServiceImpl::DoWrite(grpc::ServerContext* context,
                                       grpc::ServerReaderInterface<pb::WriteRequest>* reader, pb::WriteReply* reply) {
  if (grpc::Status s = Admit(context, common::Role::kClient); !s.ok()) return s;
  pb::WriteRequest request;
  if (!reader->Read(&request)) return Invalid("empty write stream: the first message must be a WriteHeader");
  if (!request.has_header()) return Invalid("the first message of a write stream must be a WriteHeader");
  const pb::WriteHeader header = request.header();
  const std::string name = fmt::format("chunk {:016x} version {}", header.chunk_id(), header.version());
  if (header.version() == 0) return Invalid(name + ": version 0 is not a version");
  if (header.base_version() > header.version()) {
    return Invalid(fmt::format("{}: base version {} is newer than the version written", name,
                               header.base_version()));
  }
  if (header.offset() > kChunkSizeBytes) {
    return Invalid(fmt::format("{}: offset {} is outside the chunk (64 MiB)", name, header.offset()));
  }
  if (header.truncate() && header.truncate_to() > kChunkSizeBytes) {
    return Invalid(fmt::format("{}: truncate_to {} is beyond 64 MiB", name, header.truncate_to()));
  }
  if (!header.has_token()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, name + ": missing write token");
  }
  Status token = common::VerifyWriteToken(options_.cluster_key, header.token(), header.chunk_id(),
                                          header.version(), options_.clock->UnixNs() / 1'000'000);
  if (!token.ok()) return Fail(token.WithContext(name));

  auto writer = store_.StartWrite({header.chunk_id(), header.version(), header.base_version(), false});
  if (!writer.ok()) return Fail(writer.status());
  uint64_t offset = header.offset();
  uint64_t written = 0;
  while (reader->Read(&request)) {
    if (!request.has_data()) return Invalid(name + ": a second WriteHeader in one write stream");
    const pb::WriteData& data = request.data();
    if (data.data().size() > static_cast<size_t>(kMaxWriteMessageBytes)) {
      return Invalid(fmt::format("{}: data message of {} bytes exceeds the 1 MiB limit", name,
                                 data.data().size()));
    }
    if (data.has_offset()) {
      if (data.offset() > kChunkSizeBytes) {
        return Invalid(fmt::format("{}: data offset {} is outside the chunk (64 MiB)", name, data.offset()));
      }
      offset = data.offset();
    }
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data.data().data()), data.data().size());
    std::span<const uint32_t> crcs(data.piece_crcs().data(), static_cast<size_t>(data.piece_crcs_size()));
    Status s = (*writer)->Write(offset, bytes, crcs);
    if (!s.ok()) {
      if (s.code() == common::StatusCode::kDataLoss) Inc(metrics_->crc_errors);
      return Fail(s);
    }
    offset += bytes.size();
    written += bytes.size();
  }
  if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, name + ": client cancelled");
  if (header.truncate()) {
    Status s = (*writer)->Truncate(header.truncate_to());
    if (!s.ok()) return Fail(s);
  }
  auto length = (*writer)->Commit(header.durable());
  if (!length.ok()) return Fail(length.status());
  Inc(metrics_->bytes_written, static_cast<double>(written));
  reply->set_bytes_written(written);
  reply->set_chunk_length(*length);
  reply->set_durable(header.durable());
  reply->set_built_from_version((*writer)->built_from());
  if (std::optional<uint64_t> stored = (*writer)->stored_bytes()) reply->set_stored_bytes(*stored);
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::Read(grpc::ServerContext* context, const pb::ReadRequest* request,
                                    grpc::ServerWriter<pb::ReadReply>* writer) {
  InFlight guard(in_flight_);
  grpc::Status s = DoRead(context, *request, writer);
  if (!s.ok()) {
    Inc(metrics_->read_errors);
    if (s.error_code() == grpc::StatusCode::DATA_LOSS) Inc(metrics_->crc_errors);
  }
  return s;
}

grpc::Status ChunkServiceImpl::DoRead(grpc::ServerContext* context, const pb::ReadRequest& request,
                                      grpc::ServerWriter<pb::ReadReply>* writer) {
  if (grpc::Status s = Admit(context, common::Role::kClient); !s.ok()) return s;
  const std::string name = fmt::format("chunk {:016x} version {}", request.chunk_id(), request.version());
  if (request.offset() > kChunkSizeBytes || request.length() > kChunkSizeBytes - request.offset()) {
    return Invalid(fmt::format("{}: read of {} bytes at offset {} is outside the chunk (64 MiB)", name,
                               request.length(), request.offset()));
  }
  auto meta = store_.FindReadable(request.chunk_id(), request.version());
  if (!meta.ok()) return Fail(meta.status());
  const uint64_t version = meta->version;
  if (request.offset() > meta->length) {
    return Invalid(fmt::format("{}: offset {} is past the end of the chunk (length {})", name, request.offset(),
                               meta->length));
  }
  const uint64_t end = std::min(request.offset() + request.length(), meta->length);
  pb::ReadReply reply;
  if (end <= request.offset()) {
    // Nothing to send but the length.
    reply.set_offset(request.exact() ? request.offset() : request.offset() / kBlockSizeBytes * kBlockSizeBytes);
    reply.set_chunk_length(meta->length);
    writer->Write(reply);
    return grpc::Status::OK;
  }
  const uint64_t last_block = (end - 1) / kBlockSizeBytes;
  BlockRead blocks;
  std::string whole;  // exact: the verified blocks the reply's bytes are cut from
  for (uint64_t block = request.offset() / kBlockSizeBytes; block <= last_block;) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
    uint64_t count = std::min(kBlocksPerReadMessage, last_block - block + 1);
    // The blocks of the next 8 messages are read from disk while this one is sent.
    uint64_t ahead = std::min(8 * kBlocksPerReadMessage, last_block + 1 - (block + count));
    Status s = store_.ReadBlocks(request.chunk_id(), version, block, count,
                                 request.exact() ? &whole : reply.mutable_data(), &blocks, ahead);
    if (!s.ok()) return Fail(s);
    if (blocks.crcs.empty()) break;  // the chunk shrank under us
    if (request.exact()) {
      if (!CutExact(whole, blocks, request.offset(), end, &reply)) break;  // shrank
    } else {
      reply.set_offset(blocks.offset);
      // Whole zero blocks (a sparse chunk's holes) go as a count.
      const uint64_t n = blocks.crcs.size();
      const bool zeros = request.zero_blocks_ok() && reply.data().size() == n * kBlockSizeBytes &&
                         IsZero(std::as_bytes(std::span(reply.data())));
      reply.set_zero_blocks(zeros ? n : 0);
      if (zeros) reply.clear_data();
    }
    reply.mutable_block_crcs()->Assign(blocks.crcs.begin(), blocks.crcs.end());
    reply.set_chunk_length(blocks.chunk_length);
    Inc(metrics_->bytes_read, static_cast<double>(reply.data().size()));
    if (!writer->Write(reply)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    block += blocks.crcs.size();
  }
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::Stat(grpc::ServerContext* context, const pb::StatRequest* request, pb::StatReply* reply) {
  InFlight guard(in_flight_);
  if (grpc::Status s = Admit(context, common::Role::kNode); !s.ok()) return s;
  auto versions = store_.Stat(request->chunk_id(), request->version());
  if (!versions.ok()) return Fail(versions.status());
  for (const ChunkMeta& m : *versions) FillInfo(m, reply->add_versions());
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::Delete(grpc::ServerContext* context, const pb::DeleteRequest* request,
                                      pb::DeleteReply* reply) {
  InFlight guard(in_flight_);
  if (grpc::Status s = Admit(context, common::Role::kNode); !s.ok()) return s;
  auto freed = store_.Delete(request->chunk_id(), request->version());
  if (!freed.ok()) return Fail(freed.status());
  reply->set_bytes_freed(*freed);
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::ListChunks(grpc::ServerContext* context, const pb::ListChunksRequest* request,
                                          grpc::ServerWriter<pb::ListChunksReply>* writer) {
  InFlight guard(in_flight_);
  if (grpc::Status s = Admit(context, common::Role::kNode); !s.ok()) return s;
  uint32_t page = request->page_size() == 0 ? kDefaultListPage : std::min(request->page_size(), kMaxListPage);
  std::vector<ChunkMeta> all = store_.List();
  pb::ListChunksReply reply;
  for (size_t i = 0; i < all.size(); ++i) {
    FillInfo(all[i], reply.add_chunks());
    if (static_cast<uint32_t>(reply.chunks_size()) == page || i + 1 == all.size()) {
      if (context->IsCancelled() || !writer->Write(reply)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      reply.Clear();
    }
  }
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::ReplicateFrom(grpc::ServerContext* context, const pb::ReplicateFromRequest* request,
                                             pb::ReplicateFromReply* reply) {
  InFlight guard(in_flight_);
  if (grpc::Status s = Admit(context, common::Role::kNode); !s.ok()) return s;
  if (request->version() == 0) return Invalid("replicate: version 0 is not a version");
  if (request->source_address().empty()) return Invalid("replicate: no source address");
  ReplicateSpec spec;
  spec.chunk_id = request->chunk_id();
  spec.version = request->version();
  spec.source_address = request->source_address();
  spec.bandwidth_limit_bytes_per_s = request->bandwidth_limit_bytes_per_s();
  auto deadline = context->deadline();
  auto now = std::chrono::system_clock::now();
  if (deadline > now && deadline < now + std::chrono::hours(1)) {
    spec.timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  }
  auto length = ReplicateChunk(store_, spec);
  if (!length.ok()) return Fail(length.status());
  reply->set_length(*length);
  return grpc::Status::OK;
}

}  // namespace dfs::chunkserver
