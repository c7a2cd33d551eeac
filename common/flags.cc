#include "common/flags.h"

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <map>
#include <set>

namespace dfs::common {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "12.5G" into 12.5 and "G". False if there is no leading number.
bool SplitNumber(std::string_view text, double* number, std::string_view* unit) {
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  std::string digits(text.substr(0, i));
  char* end = nullptr;
  *number = std::strtod(digits.c_str(), &end);
  if (end != digits.c_str() + digits.size() || !std::isfinite(*number)) return false;
  *unit = Trim(text.substr(i));
  return true;
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero) {
  std::string_view s = Trim(text);
  std::string bad = "bad address '" + std::string(text) + "' (want host:port)";
  HostPort hp;
  std::string_view port_text;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return InvalidArgumentError(bad);
    }
    hp.host = std::string(s.substr(1, close - 1));
    port_text = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) return InvalidArgumentError(bad);
    hp.host = std::string(s.substr(0, colon));
    port_text = s.substr(colon + 1);
  }
  if (hp.host.empty() || port_text.empty()) return InvalidArgumentError(bad);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      (port == 0 && !allow_port_zero)) {
    return InvalidArgumentError(bad + ": port must be 1-65535");
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

Result<std::vector<HostPort>> ParseAddressList(std::string_view text) {
  std::vector<HostPort> out;
  std::set<std::string> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(item));
    if (!seen.insert(hp.ToString()).second) {
      return InvalidArgumentError("address " + hp.ToString() + " listed twice in '" + std::string(text) + "'");
    }
    out.push_back(std::move(hp));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return InvalidArgumentError("empty address list");
  return out;
}

Result<uint64_t> ParseByteSize(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!SplitNumber(Trim(text), &number, &unit)) {
    return InvalidArgumentError("bad size '" + std::string(text) + "' (want e.g. 4096, 64K, 1.5G)");
  }
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KB" || unit == "KiB" || unit == "k") scale = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GiB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TiB") scale = 1024.0 * 1024 * 1024 * 1024;
  else return InvalidArgumentError("bad size unit '" + std::string(unit) + "' in '" + std::string(text) + "'");
  double bytes = number * scale;
  if (bytes >= 18446744073709551615.0) return InvalidArgumentError("size '" + std::string(text) + "' too large");
  return static_cast<uint64_t>(std::llround(bytes));
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!SplitNumber(Trim(text), &number, &unit)) {
    return InvalidArgumentError("bad duration '" + std::string(text) + "' (want e.g. 250ms, 10s, 5m)");
  }
  double scale = 0;
  if (unit.empty() || unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m" || unit == "min") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else return InvalidArgumentError("bad duration unit '" + std::string(unit) + "' in '" + std::string(text) + "'");
  double ms = number * scale;
  if (ms > 9.2e18) return InvalidArgumentError("duration '" + std::string(text) + "' too large");
  return static_cast<int64_t>(std::llround(ms));
}

void AddConfigFileFlag(CLI::App& app) {
  app.set_config("--config", "", "read flags from this TOML/INI file (keys = long flag names)");
}

void AddLogFlags(CLI::App& app, LogOptions& options) {
  app.add_option("--log-level", options.level, "trace|debug|info|warn|error|critical|off")
      ->capture_default_str();
  static const std::map<std::string, LogFormat> kFormats = {{"text", LogFormat::kText},
                                                            {"json", LogFormat::kJson}};
  app.add_option("--log-format", options.format, "text, or json (JSON lines for log shippers)")
      ->transform(CLI::CheckedTransformer(kFormats, CLI::ignore_case));
  app.add_option("--log-file", options.file, "append logs to this file instead of stderr");
}

}  // namespace dfs::common
