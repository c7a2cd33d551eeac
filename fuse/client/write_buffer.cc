#include "fuse/client/write_buffer.h"

#include <algorithm>
#include <cstring>

namespace dfs::fuse {

void WriteBuffer::Write(uint64_t offset, std::string_view data, bool append) {
  if (data.empty()) return;
  appends_only_ = append && (extents_.empty() || (appends_only() && offset == end_offset()));
  uint64_t start = offset;
  uint64_t end = offset + data.size();

  // Collect every extent that overlaps or touches [start, end) and merge.
  auto it = extents_.upper_bound(start);
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() >= start) it = prev;
  }
  // The common cases (appending to an extent, overwriting inside one) touch a
  // single extent that starts at or before the write: patch it in place,
  // growing its string amortized, instead of copying it whole every time.
  if (it != extents_.end() && it->first <= start) {
    auto next = std::next(it);
    if (next == extents_.end() || next->first > end) {
      std::string& bytes = it->second;
      uint64_t at = start - it->first;
      if (at == bytes.size()) {  // appending: no zero-fill first
        buffered_bytes_ += data.size();
        bytes.append(data);
        return;
      }
      if (at + data.size() > bytes.size()) {
        buffered_bytes_ += at + data.size() - bytes.size();
        bytes.resize(at + data.size());
      }
      std::memcpy(bytes.data() + at, data.data(), data.size());
      return;
    }
  }
  uint64_t merged_start = start;
  uint64_t merged_end = end;
  auto first = it;
  while (it != extents_.end() && it->first <= end) {
    merged_start = std::min(merged_start, it->first);
    merged_end = std::max(merged_end, it->first + it->second.size());
    ++it;
  }
  std::string merged(merged_end - merged_start, '\0');
  for (auto e = first; e != it; ++e) {
    std::memcpy(merged.data() + (e->first - merged_start), e->second.data(), e->second.size());
    buffered_bytes_ -= e->second.size();
  }
  std::memcpy(merged.data() + (start - merged_start), data.data(), data.size());
  extents_.erase(first, it);
  buffered_bytes_ += merged.size();
  extents_.emplace(merged_start, std::move(merged));
}

uint64_t WriteBuffer::Overlay(uint64_t offset, std::string& out) const {
  uint64_t end = offset + out.size();
  uint64_t last = 0;
  auto it = extents_.upper_bound(offset);
  if (it != extents_.begin()) --it;
  for (; it != extents_.end() && it->first < end; ++it) {
    uint64_t e_start = it->first;
    uint64_t e_end = e_start + it->second.size();
    uint64_t from = std::max(e_start, offset);
    uint64_t to = std::min(e_end, end);
    if (from >= to) continue;
    std::memcpy(out.data() + (from - offset), it->second.data() + (from - e_start), to - from);
    last = std::max(last, to);
  }
  return last;
}

void WriteBuffer::Truncate(uint64_t size) {
  if (end_offset() > size) appends_only_ = false;  // the file's end moved: a truncate goes to meta first
  auto it = extents_.lower_bound(size);
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() > size) {
      buffered_bytes_ -= prev->second.size() - (size - prev->first);
      prev->second.resize(size - prev->first);
    }
  }
  for (auto e = it; e != extents_.end(); ++e) buffered_bytes_ -= e->second.size();
  extents_.erase(it, extents_.end());
}

uint64_t WriteBuffer::end_offset() const {
  if (extents_.empty()) return 0;
  auto last = std::prev(extents_.end());
  return last->first + last->second.size();
}

void WriteBuffer::Clear() {
  extents_.clear();
  buffered_bytes_ = 0;
  appends_only_ = false;
}

void WriteBuffer::MoveTo(uint64_t offset) {
  if (!appends_only()) return;
  auto run = extents_.extract(extents_.begin());
  run.key() = offset;
  extents_.insert(std::move(run));
}

}  // namespace dfs::fuse
