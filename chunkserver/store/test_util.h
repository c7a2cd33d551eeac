// Helpers shared by the chunkserver unit tests (test-only code).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "chunkserver/store/chunk_store.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::chunkserver::testing {

inline std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::vector<uint32_t> PieceCrcsOf(uint64_t offset, const std::string& data) {
  std::vector<uint32_t> crcs(common::PieceCount(offset, data.size(), common::kBlockSizeBytes));
  common::PieceCrcs(offset, Bytes(data), common::kBlockSizeBytes, crcs);
  return crcs;
}

inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = gen();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// One whole write stream through the store.
inline common::Status WriteOnce(ChunkStore& store, uint64_t chunk_id, uint64_t version, uint64_t base_version,
                                uint64_t offset, const std::string& data, bool durable = true) {
  ASSIGN_OR_RETURN(auto writer, store.StartWrite({chunk_id, version, base_version, false}));
  auto crcs = PieceCrcsOf(offset, data);
  RETURN_IF_ERROR(writer->Write(offset, Bytes(data), crcs));
  return writer->Commit(durable).status();
}

// The whole content of a version, verified block by block.
inline common::Result<std::string> ReadAll(ChunkStore& store, uint64_t chunk_id, uint64_t version) {
  std::string out;
  std::string data;
  BlockRead blocks;
  for (uint64_t block = 0;; block += 16) {
    RETURN_IF_ERROR(store.ReadBlocks(chunk_id, version, block, 16, &data, &blocks));
    out += data;
    if (blocks.crcs.size() < 16) break;
  }
  return out;
}

}  // namespace dfs::chunkserver::testing
