#include "common/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string_view>

#include "common/file_util.h"

namespace dfs::common {
namespace {

bool SameSecret(std::string_view a, const std::string& b) {
  return !b.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string NodeSecret(const std::string& cluster_key) {
  static constexpr char kLabel[] = "dfs-node-auth-v1";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), cluster_key.data(), static_cast<int>(cluster_key.size()),
       reinterpret_cast<const unsigned char*>(kLabel), sizeof(kLabel) - 1, mac, &mac_len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xf]);
  }
  return hex;
}

Result<std::string> LoadSecret(const std::string& path) {
  ASSIGN_OR_RETURN(std::string secret, ReadFileToString(path));
  size_t end = secret.find_last_not_of(" \t\r\n");
  size_t start = secret.find_first_not_of(" \t\r\n");
  secret = start == std::string::npos ? "" : secret.substr(start, end - start + 1);
  if (secret.size() < 16) return InvalidArgumentError("the secret in " + path + " is shorter than 16 bytes");
  return secret;
}

Authorizer::Authorizer(Options options)
    : client_secret_(std::move(options.client_secret)),
      node_secret_(options.cluster_key.empty() ? "" : NodeSecret(options.cluster_key)),
      mutual_tls_(options.mutual_tls),
      enforcing_(!client_secret_.empty() || mutual_tls_) {}

Role Authorizer::RoleOf(const grpc::ServerContextBase& ctx) const {
  if (!enforcing_) return Role::kNode;
  Role role = Role::kNone;
  auto [begin, end] = ctx.client_metadata().equal_range(kAuthHeader);
  for (auto it = begin; it != end; ++it) {
    std::string_view value(it->second.data(), it->second.size());
    if (SameSecret(value, node_secret_)) return Role::kNode;
    if (SameSecret(value, client_secret_)) role = Role::kClient;
  }
  if (mutual_tls_) {
    // The handshake already verified the chain against our CA.
    std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    if (auth != nullptr && auth->IsPeerAuthenticated()) {
      for (const grpc::string_ref& cn : auth->FindPropertyValues("x509_common_name")) {
        std::string_view name(cn.data(), cn.size());
        if (name == "node" || name.starts_with("node.")) return Role::kNode;
      }
      role = Role::kClient;
    }
  }
  return role;
}

grpc::Status Authorizer::Check(const grpc::ServerContextBase& ctx, Role needed) const {
  Role role = RoleOf(ctx);
  if (role >= needed) return grpc::Status::OK;
  if (role == Role::kNone) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        mutual_tls_ ? "this cluster admits only callers with a certificate signed by its CA"
                                    : "this cluster needs its client secret (dfs -o secret_file=PATH, "
                                      "dfsctl --secret-file PATH)");
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      "this call needs the node role: the cluster key (dfsctl --cluster-key-file PATH) or a node "
                      "certificate");
}

}  // namespace dfs::common
