#include "common/runtime.h"

#include <absl/synchronization/mutex.h>

namespace dfs::common {

void ConfigureRuntime() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace dfs::common
