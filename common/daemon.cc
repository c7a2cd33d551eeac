#include "common/daemon.h"

#include "common/file_util.h"

namespace dfs::common {

ShutdownSignals::ShutdownSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGTERM);
  sigaddset(&signals_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

int ShutdownSignals::Wait() {
  int signal_number = 0;
  while (sigwait(&signals_, &signal_number) != 0) {
  }
  return signal_number;
}

Status WriteReadyFile(const std::string& path, const std::string& address) {
  return WriteFileAtomic(path, "address=" + address + "\n");
}

}  // namespace dfs::common
