// Logging for the daemons, on top of spdlog: code logs with spdlog's own
// calls (spdlog::info("..."), SPDLOG_WARN), and main() calls InitLogging once.
//
// Two formats: human text, and JSON lines for log shippers (one object per
// line: ts in UTC RFC 3339 with microseconds, level, logger, pid, thread,
// msg; the message is JSON-escaped). Output goes to stderr, a file or syslog
// (daemonized processes have no stderr).
//
// Thread-safety: InitLogging before starting threads; logging calls are safe
// from any thread (spdlog's _mt sinks).
#pragma once

#include <string>

#include "common/status.h"

namespace dfs::common {

enum class LogFormat { kText, kJson };

struct LogOptions {
  std::string name = "dfs";        // logger name: the daemon ("dfs-meta")
  std::string level = "info";      // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::kText;
  std::string file;                // empty = stderr; "syslog" = the system log
};

// Installs the default logger. InvalidArgument for an unknown level,
// an errno-derived error if the file cannot be opened.
Status InitLogging(const LogOptions& options);

// Appends `text` to `out` escaped for a JSON string (quotes, backslash,
// control characters as \n, \t or \u00XX). Invalid UTF-8 passes through.
void AppendJsonEscaped(std::string_view text, std::string* out);

}  // namespace dfs::common
