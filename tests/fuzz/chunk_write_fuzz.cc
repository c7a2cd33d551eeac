// libFuzzer target: the chunkserver's Write handler (ChunkServiceImpl::
// WriteFrom) fed a fuzzed stream of WriteRequests, on a real ChunkStore in a
// temp folder.
//
// Input: records [u8 flags][u16 LE length][length bytes]; each record's bytes
// parse as a pb::WriteRequest (unparsable: an empty message). Flags let the
// stream get past the checks a fuzzer cannot forge: bit 0 on a header signs
// a valid write token for its chunk and version (ids kept small so streams
// meet each other's chunks), bit 1 on data puts the correct piece CRCs.
// Whatever the handler answers, a write it accepted must read back: every
// block of the chunk version it reports passes its CRC check.
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <cstdlib>
#include <string>
#include <vector>

#include "chunkserver/service/chunk_service.h"
#include "chunkserver/store/chunk_store.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"
#include "common/write_token.h"

namespace {

namespace pb = dfs::pb;
using dfs::chunkserver::ChunkServiceImpl;
using dfs::chunkserver::ChunkStore;

constexpr char kKey[] = "fuzz-cluster-key-0123456789";

// Hands WriteFrom a prepared list of messages.
class ListReader final : public grpc::ServerReaderInterface<pb::WriteRequest> {
 public:
  explicit ListReader(std::vector<pb::WriteRequest> messages) : messages_(std::move(messages)) {}
  void SendInitialMetadata() override {}
  bool NextMessageSize(uint32_t* size) override {
    if (next_ >= messages_.size()) return false;
    *size = static_cast<uint32_t>(messages_[next_].ByteSizeLong());
    return true;
  }
  bool Read(pb::WriteRequest* message) override {
    if (next_ >= messages_.size()) return false;
    *message = messages_[next_++];
    return true;
  }

 private:
  std::vector<pb::WriteRequest> messages_;
  size_t next_ = 0;
};

struct Server {
  Server() {
    // Under $TMPDIR: run-fuzz points it at a folder it removes afterwards
    // (libFuzzer's exits run no destructors).
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dfs-fuzz-chunks.XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) std::abort();
    ChunkStore::Options options;
    options.folders = {dir};
    auto opened = ChunkStore::Open(options);
    if (!opened.ok()) std::abort();
    store = std::move(*opened);
    ChunkServiceImpl::Options service_options;
    service_options.cluster_key = kKey;
    service = std::make_unique<ChunkServiceImpl>(*store, service_options);
  }
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<ChunkServiceImpl> service;
};

Server& TheServer() {
  static Server* server = new Server();
  return *server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Server& server = TheServer();
  std::vector<pb::WriteRequest> messages;
  uint64_t offset = 0;
  size_t at = 0;
  while (at + 3 <= size && messages.size() < 64) {
    uint8_t flags = data[at];
    size_t length = data[at + 1] | (size_t{data[at + 2]} << 8);
    at += 3;
    length = std::min(length, size - at);
    pb::WriteRequest message;
    if (!message.ParseFromArray(data + at, static_cast<int>(length))) message.Clear();
    at += length;
    if (message.has_header()) {
      pb::WriteHeader* header = message.mutable_header();
      header->set_chunk_id(header->chunk_id() % 8);
      header->set_version(header->version() % 8);
      header->set_base_version(header->base_version() % 8);
      offset = header->offset();
      if (flags & 1) {
        dfs::common::WriteGrant grant;
        grant.chunk_id = header->chunk_id();
        grant.version = header->version();
        grant.lease_id = 1;
        grant.expires_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count() +
                                60'000;
        dfs::common::SignWriteToken(kKey, grant, header->mutable_token());
      }
    } else if (message.has_data()) {
      pb::WriteData* piece = message.mutable_data();
      if (piece->has_offset()) offset = piece->offset();
      if ((flags & 2) && offset <= dfs::common::kChunkSizeBytes) {
        std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(piece->data().data()),
                                         piece->data().size());
        std::vector<uint32_t> crcs(
            dfs::common::PieceCount(offset, bytes.size(), dfs::common::kBlockSizeBytes));
        dfs::common::PieceCrcs(offset, bytes, dfs::common::kBlockSizeBytes, crcs);
        piece->clear_piece_crcs();
        for (uint32_t crc : crcs) piece->add_piece_crcs(crc);
      }
      offset += piece->data().size();
    }
    messages.push_back(std::move(message));
  }
  if (messages.empty()) return 0;
  const pb::WriteRequest first = messages.front();
  ListReader reader(std::move(messages));
  grpc::ServerContext context;
  pb::WriteReply reply;
  grpc::Status status = server.service->WriteFrom(&context, &reader, &reply);
  if (status.ok()) {
    // An accepted write is there, whole and checksummed.
    const pb::WriteHeader& header = first.header();
    if (!server.store->Find(header.chunk_id(), header.version()).ok()) std::abort();
    std::string bytes;
    dfs::chunkserver::BlockRead blocks;
    // The first 2 MiB: enough for what a fuzz input writes, bounded in time.
    dfs::common::Status read = server.store->ReadBlocks(header.chunk_id(), header.version(), 0, 32, &bytes, &blocks);
    if (!read.ok() && read.code() != dfs::common::StatusCode::kInvalidArgument) std::abort();
  }
  // Keep the folder small: start over once it holds many chunk versions.
  if (server.store->List().size() > 32) {
    for (const auto& meta : server.store->List()) (void)server.store->Delete(meta.chunk_id, meta.version);
  }
  return 0;
}
