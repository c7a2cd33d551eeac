#include "common/tls.h"

#include <CLI/CLI.hpp>

#include "common/auth.h"
#include "common/file_util.h"

namespace dfs::common {
namespace {

Result<std::string> ReadPem(const std::string& path, const char* flag) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return InvalidArgumentError(std::string(flag) + ": " + std::string(text.status().message()));
  if (text->find("-----BEGIN") == std::string::npos) {
    return InvalidArgumentError(std::string(flag) + ": " + path + " is not a PEM file");
  }
  return text;
}

ClientIdentity& Identity() {
  static ClientIdentity identity;
  return identity;
}

}  // namespace

void AddTlsFlags(CLI::App& app, TlsOptions& tls) {
  app.add_option("--tls-ca", tls.ca_file, "PEM CA that signs the cluster's certificates (enables TLS to peers)");
  app.add_option("--tls-cert", tls.cert_file, "PEM certificate of this process (servers then listen with TLS only)");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_flag("--tls-client-auth", tls.client_auth,
               "require a client certificate signed by --tls-ca on every connection (mutual TLS)");
}

Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsOptions& tls) {
  if (tls.cert_file.empty()) {
    if (!tls.key_file.empty()) return InvalidArgumentError("--tls-key needs --tls-cert");
    if (tls.client_auth) return InvalidArgumentError("--tls-client-auth needs --tls-cert, --tls-key and --tls-ca");
    return grpc::InsecureServerCredentials();
  }
  if (tls.key_file.empty()) return InvalidArgumentError("--tls-cert needs --tls-key");
  // With client_auth a certificate is verified when presented but not
  // required by the handshake: the Authorizer (auth.h) then refuses a caller
  // without one with a message it can show, instead of a bare handshake error.
  grpc::SslServerCredentialsOptions options(tls.client_auth ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ASSIGN_OR_RETURN(std::string cert, ReadPem(tls.cert_file, "--tls-cert"));
  ASSIGN_OR_RETURN(std::string key, ReadPem(tls.key_file, "--tls-key"));
  options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  if (tls.client_auth) {
    if (tls.ca_file.empty()) return InvalidArgumentError("--tls-client-auth needs --tls-ca");
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(tls.ca_file, "--tls-ca"));
  }
  return grpc::SslServerCredentials(options);
}

Result<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsOptions& tls) {
  if (tls.ca_file.empty()) {
    if (!tls.cert_file.empty()) return InvalidArgumentError("a TLS client certificate needs the cluster CA (--tls-ca)");
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(tls.ca_file, "--tls-ca"));
  if (!tls.cert_file.empty()) {
    if (tls.key_file.empty()) return InvalidArgumentError("--tls-cert needs --tls-key");
    ASSIGN_OR_RETURN(options.pem_cert_chain, ReadPem(tls.cert_file, "--tls-cert"));
    ASSIGN_OR_RETURN(options.pem_private_key, ReadPem(tls.key_file, "--tls-key"));
  }
  return grpc::SslCredentials(options);
}

Result<ClientIdentity> MakeClientIdentity(const TlsOptions& tls, const std::string& secret_file,
                                          const std::string& cluster_key) {
  ClientIdentity identity;
  ASSIGN_OR_RETURN(identity.credentials, MakeChannelCredentials(tls));
  identity.tls = !tls.ca_file.empty();
  if (!cluster_key.empty()) {
    identity.auth = NodeSecret(cluster_key);
  } else if (!secret_file.empty()) {
    auto secret = LoadSecret(secret_file);
    if (!secret.ok()) return InvalidArgumentError("secret file: " + std::string(secret.status().message()));
    identity.auth = std::move(*secret);
  }
  return identity;
}

void SetClientIdentity(ClientIdentity identity) { Identity() = std::move(identity); }

const ClientIdentity& GetClientIdentity() { return Identity(); }

}  // namespace dfs::common
