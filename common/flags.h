// Command-line and configuration-file values shared by the daemons.
//
// Flags are parsed by CLI11; every daemon also reads `--config FILE` (TOML or
// INI, keys named like the long flags) through AddConfigFileFlag, so an
// operator can keep settings in /etc/dfs/*.toml. Values with units are taken
// as strings and parsed here, so they read the same everywhere:
//   sizes:      "4096", "64K", "64KiB", "1.5G", "2T"   (binary units)
//   durations:  "250ms", "10s", "5m", "1h", "1500"     (a bare number is ms)
//   addresses:  "host:port", "[::1]:port", "a:1,b:2"  (comma-separated lists)
//
// Pure functions, thread-safe. Errors are InvalidArgument naming the input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/logging.h"
#include "common/result.h"

namespace CLI {
class App;
}

namespace dfs::common {

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  // "host:port", bracketing IPv6 hosts.
  std::string ToString() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// port 0 is refused unless allow_port_zero (a listen address asking for any port).
Result<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero = false);
// A non-empty comma-separated list; duplicates are refused.
Result<std::vector<HostPort>> ParseAddressList(std::string_view text);

Result<uint64_t> ParseByteSize(std::string_view text);
Result<int64_t> ParseDurationMs(std::string_view text);

// Adds --config FILE (read before the other flags are validated).
void AddConfigFileFlag(CLI::App& app);
// Adds --log-level, --log-format (text|json) and --log-file to `app`, writing
// into `options`; call InitLogging(options) after parsing.
void AddLogFlags(CLI::App& app, LogOptions& options);

}  // namespace dfs::common
