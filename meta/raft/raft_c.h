// libraft's C headers for C++: they lack extern "C" (toolchain notes §2.1),
// so without this wrapper every raft_* call fails to link.
#pragma once

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}
