#include "meta/raft/framing.h"

#include <cstring>

namespace dfs::meta::raft {

namespace {
constexpr size_t kHeader = 8;
void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
}  // namespace

raft_buffer EncodeEntry(std::string_view payload) {
  raft_buffer buf{};
  const size_t len = (kHeader + payload.size() + 7) / 8 * 8;
  auto* p = static_cast<char*>(raft_malloc(len));
  if (p == nullptr) return buf;
  PutU32(p, kEntryMagic);
  PutU32(p + 4, static_cast<uint32_t>(payload.size()));
  std::memcpy(p + kHeader, payload.data(), payload.size());
  std::memset(p + kHeader + payload.size(), 0, len - kHeader - payload.size());
  buf.base = p;
  buf.len = len;
  return buf;
}

common::Result<std::string_view> DecodeEntry(const raft_buffer& buf) {
  const char* p = static_cast<const char*>(buf.base);
  if (buf.len < kHeader || buf.len % 8 != 0 || GetU32(p) != kEntryMagic) {
    return common::DataLossError("raft entry: bad frame");
  }
  const uint32_t n = GetU32(p + 4);
  if (n > buf.len - kHeader || buf.len - kHeader - n >= 8) return common::DataLossError("raft entry: bad length");
  return std::string_view(p + kHeader, n);
}

}  // namespace dfs::meta::raft
