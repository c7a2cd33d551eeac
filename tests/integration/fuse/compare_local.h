// What the FUSE tests compare a dfs directory with: the same steps on a
// local directory. Helpers for the bytes written and read, the tree left
// behind, and a seeded random sequence of file operations run on both.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace dfs::testing {

// Whether this kernel lets a FUSE file system allow MAP_SHARED mappings of
// files it opened for direct I/O (FUSE_DIRECT_IO_ALLOW_MMAP, Linux 6.6):
// dfs asks for it, and opens O_APPEND files that way.
bool KernelMapsDirectIo();

// The names in directory `path` (with . and ..), sorted and hashed; -1 with
// errno set when it cannot be listed.
long ListingHash(const std::string& path);

// `n` bytes from a generator seeded with `seed`.
std::string RandomBytes(size_t n, uint64_t seed);
// The whole file, or "<open failed: ...>".
std::string ReadFile(const std::string& path);

// An entry of a tree as the comparison sees it (not times, not a
// directory's size or link count, which differ by design).
struct TreeEntry {
  std::string type;  // dir, link, file
  uint64_t size = 0;
  uint64_t nlink = 0;
  mode_t mode = 0;
  std::string content;
  bool operator==(const TreeEntry&) const = default;
};
// Every entry under `root`, by path relative to it.
std::map<std::string, TreeEntry> Snapshot(const std::string& root);

// The seeded sequence of DifferentialRandomOpsWithOpenFiles: files held open
// across steps (written, read, truncated, fsynced, fstat'ed, punched, copied
// from and mapped through the handle while other steps rename, link and
// unlink their names), O_TRUNC, O_APPEND and O_EXCL opens, sizes around the
// small-file limit and past a 64 KiB block, chmod, user xattrs, listings
// and utimens. Each step runs on `dfs_root`, then on `local_root`; results
// and errno must agree (a fatal gtest failure names seed and step).
// `trace` 1 prints each step, 2 also the open files' sizes after it.
struct SequenceOptions {
  uint64_t seed = 0;
  uint64_t steps = 0;
  uint64_t trace = 0;
};
struct SequenceStats {
  int succeeded = 0;        // steps that succeeded on the local side
  int through_handles = 0;  // of them, steps through an open file
};
void RunOpenFilesSequence(const std::string& dfs_root, const std::string& local_root, const SequenceOptions& options,
                          SequenceStats* stats);

}  // namespace dfs::testing
