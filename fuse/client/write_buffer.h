// WriteBuffer: the bytes an open file has written but not yet flushed to the
// chunkservers, as non-overlapping extents of the file. A later write over
// an earlier one replaces those bytes; adjacent writes merge, so a stream of
// small sequential writes flushes as a few large pieces. It also knows
// whether it holds nothing but one run of O_APPEND writes, which the flush
// may move to the file's real end (FileSystem::PlaceAppends).
//
// Thread-safety: none; the owning file handle serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace dfs::fuse {

class WriteBuffer {
 public:
  // Records `data` at file offset `offset`. `append`: an O_APPEND write,
  // put where this mount took the end of the file to be.
  void Write(uint64_t offset, std::string_view data, bool append = false);

  // Whether the buffer holds one run of O_APPEND writes, each at the end of
  // the one before, and nothing else: a run that may move whole to where
  // the file really ends when it is flushed (another mount appended).
  bool appends_only() const { return appends_only_ && extents_.size() == 1; }
  // Moves an appends_only() run to start at `offset`; otherwise a no-op.
  void MoveTo(uint64_t offset);

  // Overlays buffered bytes onto `out`, which holds file bytes
  // [offset, offset + out.size()). Returns the end offset of the last
  // buffered byte inside that range (0 if none) so callers can extend a read
  // past the committed file size.
  uint64_t Overlay(uint64_t offset, std::string& out) const;

  // Drops buffered bytes at and after `size` (a truncate).
  void Truncate(uint64_t size);

  bool empty() const { return extents_.empty(); }
  uint64_t buffered_bytes() const { return buffered_bytes_; }
  // One past the last buffered byte (0 if empty).
  uint64_t end_offset() const;

  // The extents, ordered by offset; cleared by Clear() after a flush.
  const std::map<uint64_t, std::string>& extents() const { return extents_; }
  void Clear();

 private:
  std::map<uint64_t, std::string> extents_;  // offset -> bytes; never overlapping or adjacent
  uint64_t buffered_bytes_ = 0;
  bool appends_only_ = false;  // every write since the buffer was empty was an append at its end
};

}  // namespace dfs::fuse
