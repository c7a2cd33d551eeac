// Who may call what on a dfs gRPC port.
//
// Every RPC needs a role:
//   kClient - the namespace and chunk reads/writes: a mounted client, and
//             dfsctl's read-only commands;
//   kNode   - chunkserver registration, heartbeats and inventories, peer
//             copies and the chunkservers' Stat/Delete/ListChunks/
//             ReplicateFrom, and admin calls (drain, weight, replication,
//             membership, fsck).
// A caller proves a role with the "dfs-auth" request header (tls.h puts it on
// every call of a process): the client secret, a file the operator hands to
// the machines allowed to mount, proves kClient; the node secret, hex
// HMAC-SHA256(cluster key, "dfs-node-auth-v1"), which only holders of the
// cluster key can compute, proves kNode. Under mutual TLS the verified client
// certificate proves a role too: common name "node" or "node.<anything>" is
// kNode, any other kClient.
//
// A server with neither a client secret nor mutual TLS is open: every caller
// is kNode (development clusters, unit tests). The header travels in clear
// without TLS: a client secret on an untrusted network needs TLS too.
//
// Thread-safety: const after construction; Check may run on any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "common/result.h"

namespace dfs::common {

inline constexpr char kAuthHeader[] = "dfs-auth";

enum class Role { kNone = 0, kClient = 1, kNode = 2 };

// The node secret for `cluster_key` (64 hex digits).
std::string NodeSecret(const std::string& cluster_key);

// Reads a secret file: at least 16 bytes once surrounding whitespace is
// trimmed. InvalidArgument naming the file otherwise.
Result<std::string> LoadSecret(const std::string& path);

class Authorizer {
 public:
  struct Options {
    std::string client_secret;  // empty: no secret admits clients
    std::string cluster_key;    // the node secret derives from it
    bool mutual_tls = false;    // the port verifies client certificates
  };
  explicit Authorizer(Options options);

  // False when the server is open (see above).
  bool enforcing() const { return enforcing_; }
  // The strongest role the caller of `ctx` proves; kNone if none.
  Role RoleOf(const grpc::ServerContextBase& ctx) const;
  // OK if the caller holds `needed` (or more). UNAUTHENTICATED when it
  // proves no role, PERMISSION_DENIED when it proves kClient but the call
  // needs kNode; messages say what to configure.
  grpc::Status Check(const grpc::ServerContextBase& ctx, Role needed) const;

 private:
  const std::string client_secret_;
  const std::string node_secret_;
  const bool mutual_tls_;
  const bool enforcing_;
};

}  // namespace dfs::common
