// dfs: the FUSE client daemon. `dfs SOURCE MOUNTPOINT [-o opts] [-f]`.
//
// Threads:
//  - main: parses the command line; in the background mode it forks first
//    (before any gRPC or FUSE state exists) and the parent waits on a pipe
//    until the child reports "mounted" or an error, so `dfs` and
//    `mount -t fuse.dfs` return only once the mount is usable.
//  - libfuse workers (fuse_session_loop_mt, at most max_threads): every
//    kernel request, blocking on meta and chunkserver RPCs.
//  - MetaClient's keep-alive thread: renews the session lease.
//  - ChangeWatcher's thread: drops cached names and attributes other
//    clients changed, as meta tells of them.
//  - gRPC's own threads.
#include <fcntl.h>
#include <linux/fuse.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <climits>
#include <unistd.h>

#include <prometheus/registry.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/tls.h"
#include "fuse/client/change_watcher.h"
#include "fuse/client_metrics.h"
#include "fuse/command_line.h"
#include "fuse/fuse_ops.h"
#include "fuse/session_io.h"

namespace {

using dfs::common::Status;

// The inode of `subdir` ("/a/b"), looked up as root; NotFound or
// NotADirectory as the lookup answers.
dfs::common::Result<uint64_t> ResolveSubdir(dfs::fuse::FileSystem& fs, const std::string& subdir) {
  uint64_t ino = 1;
  size_t start = 1;
  while (start < subdir.size()) {
    size_t slash = subdir.find('/', start);
    std::string name = subdir.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    ASSIGN_OR_RETURN(dfs::pb::Attr attr, fs.meta().Lookup(dfs::fuse::Caller{0, 0, 0, {}}, ino, name));
    if (!S_ISDIR(attr.mode())) return dfs::common::Status(dfs::common::StatusCode::kNotADirectory, name + " is not a directory");
    ino = attr.ino();
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return ino;
}

// Runs the mount in this process. `ready_fd` (or -1) gets "ok\n" once the
// mount is usable, or the error message; returns the exit code.
int RunMount(const dfs::fuse::CommandLine& cl, int ready_fd) {
  auto report = [&](const std::string& message) {
    if (ready_fd >= 0) {
      (void)!::write(ready_fd, message.data(), message.size());
      ::close(ready_fd);
      ready_fd = -1;
    } else if (message != "ok\n") {
      std::fprintf(stderr, "dfs: %s", message.c_str());
    }
  };

  dfs::common::LogOptions log;
  log.name = "dfs";
  log.level = cl.log_level;
  log.file = !cl.log_file.empty() ? cl.log_file : (cl.foreground ? "" : "syslog");
  if (Status s = dfs::common::InitLogging(log); !s.ok()) {
    report(s.ToString() + "\n");
    return 2;
  }

  dfs::common::TlsOptions tls{cl.tls_ca, cl.tls_cert, cl.tls_key, false};
  auto identity = dfs::common::MakeClientIdentity(tls, cl.secret_file, "");
  if (!identity.ok()) {
    report(std::string(identity.status().message()) + "\n");
    return 2;
  }
  dfs::common::SetClientIdentity(std::move(*identity));

  dfs::fuse::MetaClient::Options meta_options;
  meta_options.source = cl.source;
  meta_options.retry_timeout_ms = cl.retry_timeout_ms;
  meta_options.attempt_timeout_ms = std::min<int64_t>(10'000, cl.retry_timeout_ms);
  meta_options.mount_point = cl.mount_point;
  meta_options.dir_attr_ttl_ms = static_cast<int64_t>(cl.attr_timeout_s * 1000);
  meta_options.listing_ttl_ms = static_cast<int64_t>(std::min(cl.attr_timeout_s, cl.entry_timeout_s) * 1000);
  meta_options.call_streams = cl.meta_streams;
  auto meta = dfs::fuse::MetaClient::Connect(meta_options, cl.connect_timeout_ms);
  if (!meta.ok()) {
    report(meta.status().ToString() + "\n");
    return 1;
  }

  dfs::fuse::FileSystemOptions fs_options;
  fs_options.cache_bytes = cl.cache_bytes;
  fs_options.io_timeout_ms = cl.io_timeout_ms;
  fs_options.retry_timeout_ms = cl.retry_timeout_ms;
  fs_options.capability_cache_ms = static_cast<int64_t>(cl.attr_timeout_s * 1000);
  fs_options.open_attr_ms = static_cast<int64_t>(cl.attr_timeout_s * 1000);
  fs_options.flush_after_ms = static_cast<int64_t>(cl.flush_after_s * 1000);
  dfs::fuse::FileSystem fs(std::move(*meta), fs_options);
  auto root_ino = ResolveSubdir(fs, cl.subdir);
  if (!root_ino.ok()) {
    report("SOURCE:" + cl.subdir + ": " + std::string(root_ino.status().message()) + "\n");
    return 1;
  }
  dfs::fuse::Adapter adapter{&fs, {cl.attr_timeout_s, cl.entry_timeout_s, cl.read_only, cl.root_squash, *root_ino,
                                   cl.posix_acl, cl.cluster_locks}};

  // -o metrics=: the endpoint, per-operation metrics, and the cache figures
  // refreshed every 2 s.
  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<dfs::common::MetricsServer> metrics_server;
  std::unique_ptr<dfs::fuse::ClientMetrics> metrics;
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;  // guarded by refresh_mu
  const dfs::fuse::ChangeWatcher* watching = nullptr;  // guarded by refresh_mu: the watcher, once started
  std::thread refresher;
  if (!cl.metrics.empty()) {
    metrics = std::make_unique<dfs::fuse::ClientMetrics>(*registry);
    auto server = dfs::common::MetricsServer::Start(cl.metrics, registry);
    if (!server.ok()) {
      report("metrics: " + server.status().ToString() + "\n");
      return 1;
    }
    metrics_server = std::move(*server);
    adapter.metrics = metrics.get();
    refresher = std::thread([&] {
      std::unique_lock<std::mutex> lock(refresh_mu);
      do {
        metrics->Refresh(fs.cache(), fs.meta().prefetch_stats(), fs.meta().listing_stats(),
                         watching != nullptr && watching->watching(), fs.appends_moved());
      } while (!refresh_cv.wait_for(lock, std::chrono::seconds(2), [&] { return stopping; }));
    });
    spdlog::info("metrics at http://{}/metrics",
                 dfs::common::MetricsAddress(cl.metrics, metrics_server.get()));
  }
  struct StopRefresher {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& stopping;
    std::thread& thread;
    ~StopRefresher() {
      if (!thread.joinable()) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        stopping = true;
      }
      cv.notify_all();
      thread.join();
    }
  } stop_refresher{refresh_mu, refresh_cv, stopping, refresher};

  std::vector<char*> argv;
  for (const std::string& a : cl.fuse_args) argv.push_back(const_cast<char*>(a.c_str()));
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &dfs::fuse::Operations(), sizeof(fuse_lowlevel_ops), &adapter);
  if (se == nullptr) {
    report("cannot create the FUSE session (bad -o option?)\n");
    return 1;
  }
  adapter.session = se;
  auto lock_waiters = std::make_unique<dfs::fuse::LockWaiters>();
  adapter.lock_waiters = lock_waiters.get();
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    report("cannot install signal handlers\n");
    return 1;
  }
  if (fuse_session_mount(se, cl.mount_point.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    report("cannot mount at " + cl.mount_point + " (does it exist? is /dev/fuse usable?)\n");
    return 1;
  }
  // KILLPRIV_V2: the kernel stops asking for security.capability before
  // every write (4 KiB random writes: +30-40%, README) and leaves
  // setuid/setgid to us (fuse_ops.cc DropSuidSgid), which needs a meta that
  // can drop them; without one the kernel keeps doing it as before.
  // DIRECT_IO_ALLOW_MMAP (kernel 6.6+; not in Debian 12's headers): a
  // MAP_SHARED mapping of a direct I/O file, as an O_APPEND open is here,
  // works instead of failing with ENODEV.
  constexpr uint64_t kDirectIoAllowMmap = uint64_t{1} << 36;
  uint64_t init_flags = FUSE_PARALLEL_DIROPS | kDirectIoAllowMmap;
  if (fs.meta().Supports(dfs::pb::FEATURE_KILL_SUIDGID)) init_flags |= FUSE_HANDLE_KILLPRIV_V2;
  if (!dfs::fuse::AddInitReplyFlags(se, init_flags)) {
    spdlog::warn("cannot pass FUSE_PARALLEL_DIROPS to the kernel: lookups in one directory stay serialized");
  }
  if (!cl.pid_file.empty()) {
    if (Status s = dfs::common::WriteFileAtomic(cl.pid_file, std::to_string(::getpid()) + "\n"); !s.ok()) {
      spdlog::warn("pid file: {}", s.ToString());
    }
  }
  // Other clients' changes, heard from meta, drop this mount's cached
  // copies at once (fuse_ops.h ForgetChanged); the timeouts stay the bound.
  std::unique_ptr<dfs::fuse::ChangeWatcher> watcher;
  if (cl.change_notices && fs.meta().Supports(dfs::pb::FEATURE_CHANGE_NOTICES)) {
    auto started = dfs::fuse::ChangeWatcher::Start(
        {.source = cl.source, .client_id = fs.meta().client_id()},
        [&adapter](const dfs::pb::ChangeNotices& notices) { dfs::fuse::ForgetChanged(adapter, notices); });
    if (started.ok()) {
      watcher = std::move(started).value();
      std::lock_guard<std::mutex> lock(refresh_mu);
      watching = watcher.get();
    } else {
      spdlog::warn("change notices: {}", started.status().ToString());
    }
  }
  spdlog::info("mounted {} at {}", cl.source, cl.mount_point);
  report("ok\n");

  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, cl.max_threads);
  fuse_loop_cfg_set_clone_fd(config, 0);
  int rc = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  {
    std::lock_guard<std::mutex> lock(refresh_mu);
    watching = nullptr;
  }
  watcher.reset();  // no notice may reach the session once it goes
  lock_waiters.reset();  // answers calls still waiting for a lock while the session exists

  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  if (!cl.pid_file.empty()) ::unlink(cl.pid_file.c_str());
  spdlog::info("unmounted {}", cl.mount_point);
  return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  dfs::common::ConfigureRuntime();
  std::vector<std::string> args(argv, argv + argc);
  auto cl = dfs::fuse::ParseCommandLine(args, ::geteuid() == 0);
  if (!cl.ok()) {
    std::fprintf(stderr, "dfs: %s\n%s", std::string(cl.status().message()).c_str(),
                 dfs::fuse::Usage("dfs").c_str());
    return 2;
  }
  if (cl->show_help) {
    std::printf("%s", dfs::fuse::Usage("dfs").c_str());
    return 0;
  }
  if (cl->show_version) {
    std::printf("dfs 0.1.0 (FUSE %d)\n", fuse_version());
    return 0;
  }
  // The background daemon runs in "/": relative paths mean the caller's
  // folder. Before, `dfs SOURCE mnt` mounted over /mnt.
  auto absolute = [](std::string* path) {
    char cwd[PATH_MAX];
    if (!path->empty() && (*path)[0] != '/' && ::getcwd(cwd, sizeof cwd) != nullptr) {
      *path = std::string(cwd) + "/" + *path;
    }
  };
  for (std::string* path : {&cl->tls_ca, &cl->tls_cert, &cl->tls_key, &cl->secret_file, &cl->pid_file}) absolute(path);
  if (cl->log_file != "syslog") absolute(&cl->log_file);
  struct stat st{};
  char resolved[PATH_MAX];
  if (::stat(cl->mount_point.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      ::realpath(cl->mount_point.c_str(), resolved) == nullptr) {
    std::fprintf(stderr, "dfs: mount point %s is not a directory\n", cl->mount_point.c_str());
    return 1;
  }
  cl->mount_point = resolved;  // as libfuse's own mount helpers do
  if (cl->foreground) return RunMount(*cl, -1);

  // Background: fork before any gRPC or FUSE state exists; the parent waits
  // for the child's verdict so the command returns once the mount is usable.
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    std::perror("dfs: pipe");
    return 1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("dfs: fork");
    return 1;
  }
  if (pid > 0) {
    ::close(pipe_fds[1]);
    std::string verdict;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0) verdict.append(buf, static_cast<size_t>(n));
    if (verdict == "ok\n") return 0;
    std::fprintf(stderr, "dfs: %s", verdict.empty() ? "the mount daemon died while starting\n" : verdict.c_str());
    return 1;
  }
  ::close(pipe_fds[0]);
  ::setsid();
  if (::chdir("/") != 0) return 1;
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    if (devnull > STDERR_FILENO) ::close(devnull);
  }
  return RunMount(*cl, pipe_fds[1]);
}
