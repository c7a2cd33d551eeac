// What every dfs daemon's main() does the same way: take SIGTERM/SIGINT
// synchronously, announce readiness, pick its cluster key.
//
// ShutdownSignals must be constructed in main() before any thread starts, so
// every thread inherits the blocked mask and only Wait() ever sees the
// signals (no async-signal-safety puzzles in handlers).
#pragma once

#include <signal.h>

#include <string>

#include "common/result.h"

namespace dfs::common {

class ShutdownSignals {
 public:
  ShutdownSignals();  // blocks SIGTERM and SIGINT in the calling thread
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;
  // Blocks until SIGTERM or SIGINT arrives; returns its number.
  int Wait();

 private:
  sigset_t signals_;
};

// Writes the ready file tests and tools wait for: "address=HOST:PORT\n",
// atomically, once the daemon serves. Errors as WriteFileAtomic.
Status WriteReadyFile(const std::string& path, const std::string& address);

}  // namespace dfs::common
