#include "tests/integration/fuse/cluster_fixture.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "tests/harness/process.h"

namespace dfs::testing {

CommandResult RunShell(const std::string& command) {
  CommandResult r;
  std::string wrapped = "(" + command + ") 2>&1";
  FILE* p = ::popen(wrapped.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

bool FuseAvailable() { return ::access("/dev/fuse", R_OK | W_OK) == 0; }

namespace {
std::string Tool() { return BinaryPath("DFS_LOCAL_CLUSTER"); }

std::string ValueOf(const std::string& output, const std::string& key) {
  size_t at = output.find("\n" + key + "=");
  size_t start = at == std::string::npos ? (output.rfind(key + "=", 0) == 0 ? 0 : std::string::npos) : at + 1;
  if (start == std::string::npos) return "";
  start += key.size() + 1;
  size_t end = output.find('\n', start);
  return output.substr(start, end == std::string::npos ? std::string::npos : end - start);
}
}  // namespace

namespace {
LocalCluster* g_suite_cluster = nullptr;
}  // namespace

LocalCluster* SuiteCluster() { return g_suite_cluster; }

void MountedClusterTest::SetUpTestSuite() {
  if (!FuseAvailable()) return;
  auto c = LocalCluster::Up(/*mount=*/true);
  if (!c.ok()) {
    std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
    return;
  }
  g_suite_cluster = c->release();
}

void MountedClusterTest::TearDownTestSuite() {
  delete g_suite_cluster;
  g_suite_cluster = nullptr;
}

void MountedClusterTest::SetUp() {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  ASSERT_NE(g_suite_cluster, nullptr) << "the cluster did not start";
}

void MountAndLocalTest::SetUp() {
  MountedClusterTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dfs_ = SuiteCluster()->mount_point() + "/" + info->name();
  local_ = local_root_.path() + "/" + info->name();
  ASSERT_EQ(::mkdir(dfs_.c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_EQ(::mkdir(local_.c_str(), 0755), 0) << std::strerror(errno);
}

common::Result<std::unique_ptr<LocalCluster>> LocalCluster::Up(bool mount, int chunkservers, int metas,
                                                                const DaemonArgs& args) {
  std::unique_ptr<LocalCluster> c(new LocalCluster());
  char tmpl[] = "/tmp/dfs-cluster.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return common::ErrnoStatus(errno, "mkdtemp");
  c->dir_ = tmpl;
  std::string cmd;
  if (!args.meta.empty()) cmd += "DFS_META_ARGS='" + args.meta + "' ";
  if (!args.chunkserver.empty()) cmd += "DFS_CHUNKSERVER_ARGS='" + args.chunkserver + "' ";
  cmd += "timeout 120 " + Tool() + " up " + c->dir_ + " --meta " + std::to_string(metas) + " --chunkservers " +
         std::to_string(chunkservers) + " --replicas 3";
  if (mount) cmd += " --mount " + c->dir_ + "/mnt";
  CommandResult r = RunShell(cmd);
  if (r.exit_code != 0) {
    return common::UnavailableError("local-cluster up failed (" + std::to_string(r.exit_code) + "): " + r.output);
  }
  c->source_ = ValueOf(r.output, "source");
  if (mount) c->mount_point_ = ValueOf(r.output, "mount");
  if (c->source_.empty() || (mount && c->mount_point_.empty())) {
    return common::InternalError("local-cluster printed no source=/mount=: " + r.output);
  }
  return c;
}

int LocalCluster::Pid(const std::string& name) const {
  std::ifstream in(dir_ + "/" + name + ".pid");
  int pid = 0;
  in >> pid;
  return pid;
}

common::Status LocalCluster::Restart(const std::string& name) {
  CommandResult r = RunShell("timeout 60 " + Tool() + " restart " + dir_ + " " + name);
  if (r.exit_code != 0) return common::UnavailableError("local-cluster restart " + name + ": " + r.output);
  return common::Status::Ok();
}

common::Result<std::string> LocalCluster::AddChunkserver() {
  CommandResult r = RunShell("timeout 60 " + Tool() + " add-chunkserver " + dir_);
  const size_t at = r.output.rfind("added ");
  if (r.exit_code != 0 || at == std::string::npos) {
    return common::UnavailableError("local-cluster add-chunkserver: " + r.output);
  }
  std::string name = r.output.substr(at + 6);
  return name.substr(0, name.find('\n'));
}

common::Status LocalCluster::MountAgain(const std::string& path, const std::string& options) {
  std::filesystem::create_directories(path);
  std::string dfs = BinaryPath("DFS_FUSE_BIN");
  const std::string pid_file = dir_ + "/dfs-extra-" + std::to_string(extra_mounts_.size()) + ".pid";
  CommandResult r = RunShell("timeout 60 " + dfs + " " + source_ + " " + path + " -o log_file=" + dir_ +
                             "/dfs-extra.log,pid_file=" + pid_file + (options.empty() ? "" : "," + options));
  if (r.exit_code != 0) return common::UnavailableError("second mount failed: " + r.output);
  extra_mounts_.push_back(path);
  return common::Status::Ok();
}

LocalCluster::~LocalCluster() {
  for (const std::string& m : extra_mounts_) RunShell("fusermount3 -u " + m + " || umount -l " + m);
  // Each extra daemon ends its last calls (releases, unlocks) while meta
  // still runs, within 10 s, or is killed: none outlives the cluster.
  for (size_t i = 0; i < extra_mounts_.size(); ++i) {
    const std::string pid_file = dir_ + "/dfs-extra-" + std::to_string(i) + ".pid";
    RunShell("p=$(cat " + pid_file + " 2>/dev/null); [ -n \"$p\" ] || exit 0; "
             "for i in $(seq 100); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; kill -9 $p");
  }
  RunShell("timeout 60 " + Tool() + " down " + dir_);
  // Whatever `down` did not stop (it was cut off, a pid file was lost): every
  // daemon of this cluster names its folder. CI once found three
  // chunkservers of a removed cluster still running. "[/]" keeps the
  // pattern from matching the shell that runs pkill.
  RunShell("pkill -KILL -f '[/]" + dir_.substr(1) + "/' || true");
  if (std::getenv("DFS_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace dfs::testing
