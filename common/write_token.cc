#include "common/write_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <spdlog/spdlog.h>

#include "common/file_util.h"
#include "proto/chunk.pb.h"

namespace dfs::common {
namespace {

void AppendLe64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string Mac(const std::string& key, const WriteGrant& g) {
  std::string msg = "dfs-write-token-v1";
  AppendLe64(g.chunk_id, &msg);
  AppendLe64(g.version, &msg);
  AppendLe64(g.lease_id, &msg);
  AppendLe64(static_cast<uint64_t>(g.expires_unix_ms), &msg);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &out_len);
  return std::string(reinterpret_cast<char*>(out), out_len);
}

}  // namespace

void SignWriteToken(const std::string& key, const WriteGrant& grant, pb::WriteToken* out) {
  out->set_chunk_id(grant.chunk_id);
  out->set_version(grant.version);
  out->set_lease_id(grant.lease_id);
  out->set_expires_unix_ms(grant.expires_unix_ms);
  out->set_mac(Mac(key, grant));
}

Status VerifyWriteToken(const std::string& key, const pb::WriteToken& token, uint64_t chunk_id,
                        uint64_t version, int64_t now_unix_ms) {
  if (token.mac().empty()) return PermissionDeniedError("write without a write token");
  WriteGrant grant{token.chunk_id(), token.version(), token.lease_id(), token.expires_unix_ms()};
  std::string expected = Mac(key, grant);
  if (token.mac().size() != expected.size() ||
      CRYPTO_memcmp(token.mac().data(), expected.data(), expected.size()) != 0) {
    return PermissionDeniedError("write token MAC does not verify (not issued by this cluster's meta)");
  }
  if (token.chunk_id() != chunk_id || token.version() != version) {
    return PermissionDeniedError("write token is for chunk " + std::to_string(token.chunk_id()) + " v" +
                                 std::to_string(token.version()) + ", not chunk " + std::to_string(chunk_id) +
                                 " v" + std::to_string(version));
  }
  if (now_unix_ms > token.expires_unix_ms()) {
    return PermissionDeniedError("write token expired " + std::to_string(now_unix_ms - token.expires_unix_ms()) +
                                 " ms ago");
  }
  return Status::Ok();
}

Result<std::string> LoadClusterKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string key, ReadFileToString(path));
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ' || key.back() == '\r')) key.pop_back();
  size_t start = key.find_first_not_of(" \t\n");
  key = start == std::string::npos ? "" : key.substr(start);
  if (key.size() < 16) return InvalidArgumentError("cluster key in " + path + " is shorter than 16 bytes");
  return key;
}

Result<std::string> ResolveClusterKey(const std::string& key_file, bool insecure_dev_key) {
  if (!key_file.empty()) return LoadClusterKey(key_file);
  if (!insecure_dev_key) {
    return InvalidArgumentError("--cluster-key-file is required (or --insecure-dev-key for a development cluster)");
  }
  spdlog::warn("using the well-known INSECURE development cluster key: anyone can forge write tokens");
  return std::string(kInsecureDevClusterKey);
}

}  // namespace dfs::common
