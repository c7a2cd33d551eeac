#include "fuse/command_line.h"

#include <cstdlib>

#include "common/flags.h"

namespace dfs::fuse {

using common::Result;

namespace {

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<double> ParseSeconds(const std::string& key, const std::string& value) {
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || v < 0) {
    return common::InvalidArgumentError("option " + key + "=" + value + ": want a number of seconds");
  }
  return v;
}

// "/projects//a/" -> "/projects/a". '.' and '..' are refused: the subdir is
// where the mount's view of the cluster begins, spelled plainly.
Result<std::string> NormalizeSubdir(const std::string& path) {
  std::string out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "." || part == "..") {
      return common::InvalidArgumentError("SOURCE:" + path + ": the directory may not contain '.' or '..'");
    }
    if (part.size() > 255) return common::InvalidArgumentError("SOURCE:" + path + ": a name is over 255 bytes");
    if (!part.empty()) out += "/" + part;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (out.size() > 4095) return common::InvalidArgumentError("SOURCE: the directory path is over 4095 bytes");
  return out.empty() ? "/" : out;
}

}  // namespace

std::string Usage(const std::string& program) {
  return "usage: " + program + " SOURCE MOUNTPOINT [-o option[,option...]] [-f] [-d]\n"
         "  SOURCE        metadata servers, host:port[,host:port...][:/dir] (dir: mount that directory)\n"
         "  -f            stay in the foreground\n"
         "  -d            debug: foreground, log every FUSE request\n"
         "dfs options (-o):\n"
         "  cache_size=SIZE       client block cache (default 256M); random reads of a larger\n"
         "                        file fetch only the bytes asked for and bypass it\n"
         "  attr_timeout=SECS     kernel attribute cache (default 1)\n"
         "  entry_timeout=SECS    kernel name cache (default 1); the smaller of the two is also\n"
         "                        how old a directory listing may answer stats (0: never)\n"
         "  flush_after=SECS      write out data an open file has buffered this long, so other\n"
         "                        mounts see it and a crash of this machine loses no more\n"
         "                        (default 1; 0: only when the buffer fills, fsync and close)\n"
         "  retry_timeout=DUR     retry a lost cluster (meta, or every copy of a chunk) this long,\n"
         "                        then EIO (default 60s)\n"
         "  connect_timeout=DUR   give up mounting after this long (default 15s)\n"
         "  io_timeout=DUR        one chunk read/write attempt (default 30s)\n"
         "  max_threads=N         FUSE worker threads (default 16)\n"
         "  log_file=PATH|syslog  where a background mount logs (default syslog)\n"
         "  log_level=LEVEL       trace|debug|info|warn|error (default info)\n"
         "  pid_file=PATH         write the daemon's pid here\n"
         "  metrics=HOST:PORT     serve Prometheus metrics at http://HOST:PORT/metrics\n"
         "  ro                    read-only mount\n"
         "  root_squash           local root acts as nobody (65534) on the cluster\n"
         "  noacl                 the kernel checks mode bits only and applies the umask (meta still\n"
         "                        applies stored ACLs): no ACL lookups, no default-ACL umask rule\n"
         "  locks=cluster|local   fcntl and flock locks: kept by meta and seen by every mount\n"
         "                        (cluster, the default; one meta commit per lock call), or kept\n"
         "                        by this machine's kernel for this mount only (local)\n"
         "  meta_streams=on|off   send metadata calls as messages of long-lived streams to meta\n"
         "                        (on, the default: about half a call's cost) or as one gRPC\n"
         "                        call each (off)\n"
         "  notices=on|off        hear from meta what other mounts change and drop cached names\n"
         "                        and attributes at once (on, the default); off: they show\n"
         "                        within attr_timeout/entry_timeout\n"
         "  tls_ca=PEM            connect with TLS, trusting this CA\n"
         "  tls_cert=PEM,tls_key=PEM  client certificate (clusters with mutual TLS)\n"
         "  secret_file=PATH      the cluster's client secret (clusters that require one)\n"
         "Other -o options go to FUSE (allow_other, ...). Example:\n"
         "  " + program + " meta1:7400,meta2:7400,meta3:7400 /mnt/dfs\n";
}

Result<CommandLine> ParseCommandLine(const std::vector<std::string>& argv, bool running_as_root) {
  CommandLine cl;
  std::vector<std::string> positional;
  std::vector<std::string> fuse_opts;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "-h" || a == "--help") {
      cl.show_help = true;
    } else if (a == "-V" || a == "--version") {
      cl.show_version = true;
    } else if (a == "-f") {
      cl.foreground = true;
    } else if (a == "-d" || a == "-odebug") {
      cl.debug = true;
      cl.foreground = true;
    } else if (a == "-s") {
      cl.max_threads = 1;
    } else if (a == "-o" || (a.size() > 2 && a.rfind("-o", 0) == 0)) {
      std::string value;
      if (a == "-o") {
        if (i + 1 >= argv.size()) return common::InvalidArgumentError("-o needs a value");
        value = argv[++i];
      } else {
        value = a.substr(2);
      }
      for (const std::string& opt : SplitComma(value)) {
        size_t eq = opt.find('=');
        std::string key = opt.substr(0, eq);
        std::string val = eq == std::string::npos ? "" : opt.substr(eq + 1);
        if (key == "cache_size") {
          ASSIGN_OR_RETURN(cl.cache_bytes, common::ParseByteSize(val));
        } else if (key == "attr_timeout") {
          ASSIGN_OR_RETURN(cl.attr_timeout_s, ParseSeconds(key, val));
        } else if (key == "entry_timeout") {
          ASSIGN_OR_RETURN(cl.entry_timeout_s, ParseSeconds(key, val));
        } else if (key == "flush_after") {
          ASSIGN_OR_RETURN(cl.flush_after_s, ParseSeconds(key, val));
        } else if (key == "retry_timeout") {
          ASSIGN_OR_RETURN(cl.retry_timeout_ms, common::ParseDurationMs(val));
        } else if (key == "connect_timeout") {
          ASSIGN_OR_RETURN(cl.connect_timeout_ms, common::ParseDurationMs(val));
        } else if (key == "io_timeout") {
          ASSIGN_OR_RETURN(cl.io_timeout_ms, common::ParseDurationMs(val));
        } else if (key == "max_threads") {
          char* end = nullptr;
          long n = std::strtol(val.c_str(), &end, 10);
          if (val.empty() || *end != '\0' || n < 1 || n > 1024) {
            return common::InvalidArgumentError("option max_threads=" + val + ": want 1..1024");
          }
          cl.max_threads = static_cast<unsigned>(n);
        } else if (key == "log_file") {
          cl.log_file = val;
        } else if (key == "log_level") {
          cl.log_level = val;
        } else if (key == "pid_file") {
          cl.pid_file = val;
        } else if (key == "metrics") {
          if (!common::ParseHostPort(val, /*allow_port_zero=*/true).ok()) {
            return common::InvalidArgumentError("option metrics=" + val + ": want HOST:PORT");
          }
          cl.metrics = val;
        } else if (key == "root_squash") {
          cl.root_squash = true;
        } else if (key == "acl" || key == "noacl") {
          cl.posix_acl = key == "acl";
        } else if (key == "locks") {
          if (val != "cluster" && val != "local") {
            return common::InvalidArgumentError("option locks=" + val + ": want cluster or local");
          }
          cl.cluster_locks = val == "cluster";
        } else if (key == "meta_streams") {
          if (val != "on" && val != "off") {
            return common::InvalidArgumentError("option meta_streams=" + val + ": want on or off");
          }
          cl.meta_streams = val == "on";
        } else if (key == "notices") {
          if (val != "on" && val != "off") {
            return common::InvalidArgumentError("option notices=" + val + ": want on or off");
          }
          cl.change_notices = val == "on";
        } else if (key == "tls_ca") {
          cl.tls_ca = val;
        } else if (key == "tls_cert") {
          cl.tls_cert = val;
        } else if (key == "tls_key") {
          cl.tls_key = val;
        } else if (key == "secret_file") {
          cl.secret_file = val;
        } else if (key == "debug") {
          cl.debug = true;
          cl.foreground = true;
        } else if (key == "fsname" || key == "subtype") {
          // dfs sets these itself from SOURCE.
        } else if (key == "_netdev" || key == "defaults" || key == "auto" || key == "noauto" ||
                   key == "nofail" || key == "user" || key == "users" || key == "rw") {
          // mount(8) options that mean nothing to FUSE (mount.fuse3 drops most).
        } else {
          if (key == "ro") cl.read_only = true;
          fuse_opts.push_back(opt);
        }
      }
    } else if (!a.empty() && a[0] == '-') {
      return common::InvalidArgumentError("unknown option '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (cl.show_help || cl.show_version) return cl;
  if (positional.size() != 2) {
    return common::InvalidArgumentError("need SOURCE and MOUNTPOINT (got " + std::to_string(positional.size()) +
                                        " arguments)");
  }
  cl.source = positional[0];
  cl.mount_point = positional[1];
  // SOURCE:/subdir (a path has no ':' before its first '/', an address list
  // has no '/').
  if (size_t colon_slash = cl.source.find(":/"); colon_slash != std::string::npos) {
    ASSIGN_OR_RETURN(cl.subdir, NormalizeSubdir(cl.source.substr(colon_slash + 1)));
    cl.source.resize(colon_slash);
  }
  RETURN_IF_ERROR(common::ParseAddressList(cl.source).status().WithContext("SOURCE"));
  if (!cl.tls_cert.empty() && (cl.tls_ca.empty() || cl.tls_key.empty())) {
    return common::InvalidArgumentError("option tls_cert needs tls_ca and tls_key");
  }

  // A SOURCE of several metadata servers has commas, which separate -o
  // options: libfuse's option parser takes a backslash-escaped comma as a
  // literal one (what fuse_opt_add_opt_escaped produces).
  std::string fsname;
  for (char c : positional[0]) {
    if (c == ',' || c == '\\') fsname += '\\';
    fsname += c;
  }
  fuse_opts.push_back("fsname=" + fsname);
  fuse_opts.push_back("subtype=dfs");
  fuse_opts.push_back("default_permissions");
  // A shared filesystem serves every user; only root may allow that without /etc/fuse.conf.
  if (running_as_root) fuse_opts.push_back("allow_other");
  std::string joined;
  for (const std::string& o : fuse_opts) joined += (joined.empty() ? "" : ",") + o;

  cl.fuse_args = {argv.empty() ? "dfs" : argv[0], "-o", joined};
  if (cl.debug) cl.fuse_args.push_back("-d");
  return cl;
}

}  // namespace dfs::fuse
