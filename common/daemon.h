// What every dfs daemon's main() does the same way: take SIGTERM/SIGINT
// synchronously, announce readiness, pick its cluster key.
//
// ShutdownSignals must be constructed in main() before any thread starts, so
// every thread inherits the blocked mask and only Wait() ever sees the
// signals (no async-signal-safety puzzles in handlers).
#pragma once

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <string>

#include "common/auth.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/result.h"
#include "common/tls.h"

namespace CLI {
class App;
}

namespace dfs::common {

// The flags every daemon takes, with the same names and meaning.
struct DaemonFlags {
  std::string listen;            // --listen HOST:PORT (port 0: any)
  std::string metrics;           // --metrics HOST:PORT (empty: none)
  std::string ready_file;        // --ready-file PATH
  std::string cluster_key_file;  // --cluster-key-file PATH
  bool insecure_dev_key = false; // --insecure-dev-key
  TlsOptions tls;                // --tls-ca, --tls-cert, --tls-key, --tls-client-auth
  std::string client_secret_file;  // --client-secret-file PATH: mounts must present it (auth.h)
  LogOptions log;                // --log-level, --log-format, --log-file
};

// Adds them (and --config) to `app`; `listen_help` says what listens.
void AddDaemonFlags(CLI::App& app, DaemonFlags& flags, const std::string& listen_help);
// Checks them after parsing; InvalidArgument naming the flag. Returns the
// parsed listen address.
Result<HostPort> ValidateDaemonFlags(const DaemonFlags& flags);

// What the TLS and secret flags amount to: the credentials to listen with
// and who the daemon admits.
struct DaemonSecurity {
  std::shared_ptr<grpc::ServerCredentials> server_credentials;
  Authorizer::Options auth;
};
// Reads the files `flags` names and sets the process's ClientIdentity (the
// TLS CA and certificate, and the node secret of `cluster_key`) for the
// daemon's own calls to meta and peers. InvalidArgument naming the flag.
Result<DaemonSecurity> SetUpSecurity(const DaemonFlags& flags, const std::string& cluster_key);

// Bounds what callers can make a daemon's gRPC server hold: message size
// (kMaxGrpcMessageBytes), concurrent streams per connection, handler
// threads and buffer memory (a gRPC ResourceQuota named `name`).
void SetServerLimits(grpc::ServerBuilder& builder, const std::string& name);

class ShutdownSignals {
 public:
  ShutdownSignals();  // blocks SIGTERM and SIGINT in the calling thread
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;
  // Blocks until SIGTERM or SIGINT arrives; returns its number.
  int Wait();

 private:
  sigset_t signals_;
};

// Writes the ready file tests and tools wait for: "address=HOST:PORT\n",
// then "metrics=HOST:PORT\n" when a metrics endpoint is served, atomically,
// once the daemon serves. Errors as WriteFileAtomic.
Status WriteReadyFile(const std::string& path, const std::string& address, const std::string& metrics = "");

}  // namespace dfs::common
