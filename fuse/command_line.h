// The `dfs` command line: `dfs SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]`
// with SOURCE = host:port[,host:port...][:/subdir],
// which is also what mount(8) runs for `mount -t fuse.dfs SOURCE MNT -o opts`
// and for an fstab line (mount.fuse3 turns the type fuse.dfs into `dfs`).
//
// libfuse's parser takes the first plain argument as the mount point and
// refuses a second one, so SOURCE is taken out here, and the options dfs
// itself understands are split from those handed to libfuse. dfs adds
// fsname=SOURCE and subtype=dfs (so the mount table names the cluster and
// `mount -a` does not mount twice) and default_permissions (the kernel checks
// mode bits; meta enforces what the kernel cannot see).
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace dfs::fuse {

struct CommandLine {
  std::string source;
  std::string mount_point;
  bool foreground = false;
  bool debug = false;
  bool show_help = false;
  bool show_version = false;
  bool read_only = false;
  // dfs's own -o options.
  uint64_t cache_bytes = 256ull << 20;       // cache_size=256M
  double attr_timeout_s = 1.0;               // attr_timeout=1
  double entry_timeout_s = 1.0;              // entry_timeout=1
  double flush_after_s = 1.0;                // flush_after=1: buffered writes this old go out (0: never by age)
  int64_t retry_timeout_ms = 60'000;         // retry_timeout=60s: then EIO
  int64_t connect_timeout_ms = 15'000;       // connect_timeout=15s: give up mounting
  int64_t io_timeout_ms = 30'000;            // io_timeout=30s: one chunk I/O attempt
  unsigned max_threads = 16;                 // max_threads=16
  std::string log_file;                      // log_file=PATH|syslog (default: syslog in background)
  std::string log_level = "info";            // log_level=
  std::string pid_file;                      // pid_file=PATH
  std::string metrics;                       // metrics=HOST:PORT (Prometheus endpoint)
  std::string subdir = "/";                  // SOURCE:/path mounts that directory as the root
  bool root_squash = false;                  // root_squash: local root acts as nobody
  bool posix_acl = true;                     // noacl: the kernel checks mode bits only
  bool cluster_locks = true;                 // locks=local: fcntl/flock locks stay on this mount
  bool meta_streams = true;                  // meta_streams=off: metadata calls as unary calls
  bool change_notices = true;                // notices=off: no Watch; other mounts' changes show by timeout
  std::string tls_ca, tls_cert, tls_key;     // tls_ca=PEM[,tls_cert=PEM,tls_key=PEM]
  std::string secret_file;                   // secret_file=PATH: the cluster's client secret
  // Everything for fuse_session_new: argv[0], -o options, -d (the mount
  // point goes to fuse_session_mount).
  std::vector<std::string> fuse_args;
};

// Parses argv. InvalidArgument with a message fit for the user on a bad
// command line (missing SOURCE or MOUNTPOINT, a bad option value).
common::Result<CommandLine> ParseCommandLine(const std::vector<std::string>& argv, bool running_as_root);

// The usage text.
std::string Usage(const std::string& program);

}  // namespace dfs::fuse
