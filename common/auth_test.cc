#include "common/auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/tls.h"

namespace dfs::common {
namespace {

std::string WriteTemp(const std::string& content) {
  char path[] = "/tmp/dfs-auth-test.XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fd);
  return path;
}

TEST(NodeSecret, IsAStableHexMacOfTheClusterKey) {
  std::string a = NodeSecret("cluster-key-number-one");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(a, NodeSecret("cluster-key-number-one"));
  EXPECT_NE(a, NodeSecret("cluster-key-number-two"));
  EXPECT_NE(a, "cluster-key-number-one");  // the key itself never travels
}

TEST(LoadSecret, TrimsAndRefusesShortSecrets) {
  std::string good = WriteTemp("  0123456789abcdefXYZ\n");
  auto secret = LoadSecret(good);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(*secret, "0123456789abcdefXYZ");
  std::string short_one = WriteTemp("short\n");
  EXPECT_EQ(LoadSecret(short_one).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(LoadSecret("/nonexistent/dfs/secret").ok());
  ::unlink(good.c_str());
  ::unlink(short_one.c_str());
}

TEST(TlsCredentials, MissingOrBadFilesAreInvalidArgumentNamingTheFlag) {
  EXPECT_TRUE(MakeServerCredentials({}).ok());   // plaintext
  EXPECT_TRUE(MakeChannelCredentials({}).ok());  // plaintext
  auto no_key = MakeServerCredentials({"", "/x/cert.pem", "", false});
  EXPECT_NE(no_key.status().message().find("--tls-key"), std::string_view::npos);
  auto no_cert = MakeServerCredentials({"", "", "", true});
  EXPECT_EQ(no_cert.status().code(), StatusCode::kInvalidArgument);
  auto missing = MakeServerCredentials({"", "/nonexistent/cert.pem", "/nonexistent/key.pem", false});
  EXPECT_NE(missing.status().message().find("--tls-cert"), std::string_view::npos);
  std::string not_pem = WriteTemp("this is not a certificate");
  auto bad = MakeChannelCredentials({not_pem, "", "", false});
  EXPECT_NE(bad.status().message().find("not a PEM file"), std::string_view::npos);
  auto cert_without_ca = MakeChannelCredentials({"", not_pem, not_pem, false});
  EXPECT_EQ(cert_without_ca.status().code(), StatusCode::kInvalidArgument);
  ::unlink(not_pem.c_str());
}

TEST(ClientIdentity, TheClusterKeyWinsOverTheClientSecret) {
  std::string secret_file = WriteTemp("the-client-secret-0123\n");
  auto with_key = MakeClientIdentity({}, secret_file, "cluster-key-number-one");
  ASSERT_TRUE(with_key.ok());
  EXPECT_EQ(with_key->auth, NodeSecret("cluster-key-number-one"));
  EXPECT_FALSE(with_key->tls);
  auto client = MakeClientIdentity({}, secret_file, "");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->auth, "the-client-secret-0123");
  EXPECT_FALSE(MakeClientIdentity({}, "/nonexistent/secret", "").ok());
  ::unlink(secret_file.c_str());
}

}  // namespace
}  // namespace dfs::common
