// Write tokens: meta's permission, carried by a client, to write one chunk
// version until a deadline. A chunkserver accepts a write only with a token
// whose MAC it can verify with the cluster key, so a client that talks to
// chunkservers directly cannot write what meta did not grant.
//
// Format: proto dfs.pb.WriteToken {chunk_id, version, lease_id,
// expires_unix_ms, mac}; mac = HMAC-SHA256(cluster_key, "dfs-write-token-v1"
// ++ le64(chunk_id) ++ le64(version) ++ le64(lease_id) ++ le64(expires_unix_ms)).
// The cluster key is a secret shared by meta and the chunkservers
// (--cluster-key-file); LoadClusterKey reads it.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace dfs::pb {
class WriteToken;
}

namespace dfs::common {

struct WriteGrant {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  uint64_t lease_id = 0;
  int64_t expires_unix_ms = 0;
};

// Fills `out` with the grant and its MAC under `key`.
void SignWriteToken(const std::string& key, const WriteGrant& grant, pb::WriteToken* out);

// OK if `token` carries a valid MAC under `key`, names `chunk_id` and
// `version`, and has not expired at `now_unix_ms`. PermissionDenied otherwise,
// with a message saying which check failed.
Status VerifyWriteToken(const std::string& key, const pb::WriteToken& token, uint64_t chunk_id,
                        uint64_t version, int64_t now_unix_ms);

// Reads a cluster key file: at least 16 bytes of secret (surrounding
// whitespace is trimmed). InvalidArgument if it is shorter.
Result<std::string> LoadClusterKey(const std::string& path);

// The well-known key of development clusters (--insecure-dev-key): anyone can
// forge write tokens with it.
inline constexpr char kInsecureDevClusterKey[] = "dfs-insecure-development-cluster-key";

// The daemons' key: from `key_file`, or the development key (logging a
// warning) when `key_file` is empty and `insecure_dev_key` is set;
// InvalidArgument when neither is given.
Result<std::string> ResolveClusterKey(const std::string& key_file, bool insecure_dev_key);

}  // namespace dfs::common
