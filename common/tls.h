// Transport security for every dfs gRPC port, and the identity a process
// presents when it calls another dfs process.
//
// Servers: with --tls-cert and --tls-key a daemon serves TLS only; with
// --tls-client-auth it also verifies client certificates against --tls-ca
// (mutual TLS; auth.h refuses callers without one). Clients: with a CA
// (--tls-ca, or -o tls_ca= for dfs) every channel is TLS and the server's
// certificate must name the address dialled (an IP or DNS subject
// alternative name); a client certificate and key are presented when given. Without any of these, plaintext (development).
//
// The process-wide ClientIdentity is set once in main() before any channel
// exists; MakeChannel (leader_channel.h) builds every channel with it, so
// chunk, meta and peer channels all carry the same credentials and the same
// "dfs-auth" header (auth.h). Thread-safety: SetClientIdentity before
// threads start; everything else is safe from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/result.h"

namespace CLI {
class App;
}

namespace dfs::common {

struct TlsOptions {
  std::string ca_file;       // PEM CA bundle that signs the peers' certificates
  std::string cert_file;     // PEM certificate (chain) of this process
  std::string key_file;      // PEM private key of cert_file
  bool client_auth = false;  // servers: verify client certificates (mutual TLS)
};

// Adds --tls-ca, --tls-cert, --tls-key and --tls-client-auth to `app`.
void AddTlsFlags(CLI::App& app, TlsOptions& tls);

// A daemon's listening credentials: TLS when cert_file is set (key_file is
// then required; ca_file too with client_auth), else insecure.
// InvalidArgument naming the flag or file that is missing or unreadable.
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsOptions& tls);

// A caller's channel credentials: TLS when ca_file is set (with the client
// certificate when cert_file is set), else insecure. InvalidArgument as above.
Result<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsOptions& tls);

struct ClientIdentity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: insecure
  bool tls = false;  // credentials are TLS
  std::string auth;  // value of the "dfs-auth" header on every call; empty: none
};
// The identity of a process with these TLS files that proves its role
// (auth.h) with the node secret of `cluster_key` when that is set, else
// with the client secret in `secret_file` when that is set, else by its
// certificate alone. InvalidArgument naming what is wrong.
Result<ClientIdentity> MakeClientIdentity(const TlsOptions& tls, const std::string& secret_file,
                                          const std::string& cluster_key);
void SetClientIdentity(ClientIdentity identity);
const ClientIdentity& GetClientIdentity();

}  // namespace dfs::common
