#include "tests/harness/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/file_util.h"

namespace dfs::testing {

using common::Result;
using common::Status;

Result<std::unique_ptr<Process>> Process::Start(const std::vector<std::string>& argv,
                                                const std::string& log_path) {
  if (argv.empty()) return common::InvalidArgumentError("empty argv");
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return common::ErrnoStatus(errno, "open " + log_path);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    ::close(log_fd);
    return common::ErrnoStatus(saved, "fork");
  }
  if (pid == 0) {
    ::setpgid(0, 0);  // own group: Kill() reaches helpers the daemon starts
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, to win the race with Kill()
  ::close(log_fd);
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() { Kill(); }

void Process::Signal(int signal) {
  if (!reaped_) ::kill(pid_, signal);
}

void Process::Kill() {
  if (reaped_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

bool Process::Running() {
  if (reaped_) return false;
  pid_t r = ::waitpid(pid_, &wait_status_, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    ::kill(-pid_, SIGKILL);  // leftovers of its group
    return false;
  }
  return true;
}

Result<int> Process::Wait(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return common::DeadlineExceededError("pid " + std::to_string(pid_) + " still running");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return wait_status_;
}

Result<std::string> WaitForReadyFile(const std::string& path, Process& process, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto content = common::ReadFileToString(path);
    if (content.ok()) {
      const std::string key = "address=";
      size_t at = content->find(key);
      if (at != std::string::npos) {
        size_t end = content->find('\n', at);
        return content->substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
      }
    }
    if (!process.Running()) {
      return common::UnavailableError("process " + std::to_string(process.pid()) +
                                      " exited before it was ready; see " + process.log_path());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return common::DeadlineExceededError("no ready file " + path + " after " + std::to_string(timeout_ms) +
                                       " ms; see " + process.log_path());
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/" + prefix + ".XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  if (std::getenv("DFS_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string BinaryPath(const char* env_var) {
  const char* value = std::getenv(env_var);
  if (value == nullptr || *value == '\0') {
    std::fprintf(stderr, "%s is not set: run this test through `meson test`\n", env_var);
    std::abort();
  }
  return value;
}

namespace {
bool Bindable(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // As the daemons bind (gRPC and libuv set it): a port whose last
  // connections linger in TIME_WAIT is free to them.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Claims `port` machine-wide for kReservationS (see PickFreePort): a file
// named after it in kReservationDir, made with O_EXCL, or one older than
// that, refreshed. The same files and age as packaging/local-cluster and
// tests/harness/tap.py.
constexpr const char* kReservationDir = "/tmp/dfs-port-reservations";
constexpr int64_t kReservationS = 120;
bool Reserve(int port) {
  ::mkdir(kReservationDir, 01777);
  const std::string path = std::string(kReservationDir) + "/" + std::to_string(port);
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  struct stat st{};
  if (errno != EEXIST || ::stat(path.c_str(), &st) != 0) return false;
  if (::time(nullptr) - st.st_mtime < kReservationS) return false;
  return ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) == 0;
}
}  // namespace

int PickFreePort() {
  // Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
  // default): a port taken from that range and bound only later can be
  // taken meanwhile as the source port of an outgoing connection (seen in
  // CI: a meta member's raft port, while the other members were already
  // dialling each other). Random, checked free, never the same twice in
  // one process, and reserved for a while against the other test programs
  // that meson runs at the same time: a port is only bound once its daemon
  // starts, and until then another program's check finds it free too.
  static std::mutex mu;
  static std::set<int> given;
  static std::mt19937 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  std::uniform_int_distribution<int> pick(20'000, 32'000);
  for (int attempt = 0; attempt < 2'000; ++attempt) {
    const int port = pick(rng);
    if (given.count(port) == 0 && Bindable(port) && Reserve(port)) {
      given.insert(port);
      return port;
    }
  }
  std::fprintf(stderr, "PickFreePort: no free port in 20000-32000\n");
  std::abort();
}

}  // namespace dfs::testing
