#include "chunkserver/store/chunk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/check.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::chunkserver {

using common::kBlockSizeBytes;
using common::kChunkSizeBytes;
using common::Result;
using common::Status;

namespace {

constexpr char kMagic[] = "DFSCHNK1";
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kCrcTableOffset = kChunkHeaderBytes;
constexpr size_t kHeaderFieldsBytes = 32;  // magic .. version; the CRC follows
constexpr size_t kCopyBufferBytes = 1 << 20;
constexpr uint64_t kWritebackBytes = 8 << 20;  // see ChunkWriter::ApplyLocked
constexpr uint64_t kMaxBlocks = kChunkSizeBytes / kBlockSizeBytes;
constexpr char kDeltaMagic[] = "DFSDELT1";
constexpr uint64_t kDeltaRecordOffset = 1024;
constexpr size_t kDeltaRecordBytes = 8 + 8 + 8 + kMaxBlocks / 8;  // the CRC follows
// A base smaller than this, or a stream that rewrote half of it or more, is
// copied whole: a delta commit writes each block twice and syncs twice.
constexpr uint64_t kMinDeltaBaseBlocks = 16;

void PutLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutLe64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t GetLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ChunkName(uint64_t chunk_id, uint64_t version) {
  return fmt::format("chunk {:016x} version {}", chunk_id, version);
}

// Parses "IIIIIIIIIIIIIIII.V.ext".
bool ParseFileName(const std::string& name, uint64_t* chunk_id, uint64_t* version, std::string* ext) {
  if (name.size() < 20 || name[16] != '.') return false;
  size_t dot = name.find('.', 17);
  if (dot == std::string::npos || dot == 17) return false;
  char* end = nullptr;
  std::string id_text = name.substr(0, 16);
  errno = 0;
  *chunk_id = std::strtoull(id_text.c_str(), &end, 16);
  if (errno != 0 || *end != '\0') return false;
  std::string ver_text = name.substr(17, dot - 17);
  *version = std::strtoull(ver_text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || *version == 0) return false;
  *ext = name.substr(dot + 1);
  return true;
}

std::string EncodeDeltaRecord(uint64_t base_version, uint64_t length, const std::vector<bool>& held) {
  std::string record(kDeltaRecordBytes + 4, '\0');
  std::memcpy(record.data(), kDeltaMagic, 8);
  PutLe64(record.data() + 8, base_version);
  PutLe64(record.data() + 16, length);
  for (uint64_t b = 0; b < kMaxBlocks; ++b) {
    if (held[b]) record[24 + b / 8] = static_cast<char>(record[24 + b / 8] | (1 << (b % 8)));
  }
  PutLe32(record.data() + kDeltaRecordBytes, common::Crc32c(record.data(), kDeltaRecordBytes));
  return record;
}

Status DecodeDeltaRecord(std::string_view record, uint64_t* base_version, uint64_t* length,
                         std::vector<bool>* held) {
  if (record.size() < kDeltaRecordBytes + 4 || std::memcmp(record.data(), kDeltaMagic, 8) != 0) {
    return common::DataLossError("no delta record");
  }
  if (common::Crc32c(record.data(), kDeltaRecordBytes) != GetLe32(record.data() + kDeltaRecordBytes)) {
    return common::DataLossError("delta record CRC mismatch");
  }
  *base_version = GetLe64(record.data() + 8);
  *length = GetLe64(record.data() + 16);
  if (*base_version == 0 || *length > kChunkSizeBytes) return common::DataLossError("impossible delta record");
  held->assign(kMaxBlocks, false);
  for (uint64_t b = 0; b < kMaxBlocks; ++b) (*held)[b] = (record[24 + b / 8] >> (b % 8)) & 1;
  return Status::Ok();
}

// Calls copy(begin, end) for the byte ranges below `length` of the runs of
// blocks whose `held` bit is `want`, at most kCopyBufferBytes each.
Status ForEachRun(const std::vector<bool>& held, bool want, uint64_t length,
                  const std::function<Status(uint64_t, uint64_t)>& copy) {
  const uint64_t blocks = common::BlockCount(length);
  for (uint64_t b = 0; b < blocks;) {
    if (held[b] != want) {
      ++b;
      continue;
    }
    uint64_t e = b;
    while (e < blocks && held[e] == want && (e - b) * kBlockSizeBytes < kCopyBufferBytes) ++e;
    RETURN_IF_ERROR(copy(b * kBlockSizeBytes, std::min(e * kBlockSizeBytes, length)));
    b = e;
  }
  return Status::Ok();
}

// The file system's unit of allocation (and of a hole) on the disks we
// know; a copy skips zeros in units of it.
constexpr size_t kPageBytes = 4096;

// Splits `buffer` into runs of its `unit`-sized pieces (from its start) that
// are all zeros or not, and calls `run(begin, end, zeros)` for each, in
// order: copies leave zeros a hole.
Status ForEachRunOfZeros(std::string_view buffer, size_t unit,
                         const std::function<Status(size_t, size_t, bool)>& run) {
  const std::span<const std::byte> bytes = AsBytes(buffer);
  size_t begin = 0;
  bool zeros = false;
  for (size_t pos = 0; pos < bytes.size(); pos += unit) {
    const bool zero = IsZero(bytes.subspan(pos, std::min<size_t>(unit, bytes.size() - pos)));
    if (pos == 0) zeros = zero;
    if (zero == zeros) continue;
    RETURN_IF_ERROR(run(begin, pos, zeros));
    begin = pos;
    zeros = zero;
  }
  if (begin < bytes.size()) return run(begin, bytes.size(), zeros);
  return Status::Ok();
}

// Zeros [offset, offset + length) of a file that stores bytes there: a hole
// punched, or zeros written where the file system cannot punch.
Status ZeroRange(FileIo& io, int fd, uint64_t offset, uint64_t length, const std::string& path) {
  Status s = io.PunchHole(fd, offset, length, path);
  if (s.code() != common::StatusCode::kUnimplemented) return s;
  const std::string zeros(length, '\0');
  return io.PwriteFull(fd, zeros.data(), zeros.size(), offset, path);
}

}  // namespace

bool IsZero(std::span<const std::byte> bytes) {
  return bytes.empty() ||
         (bytes[0] == std::byte{0} && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

std::string EncodeChunkHeader(uint64_t chunk_id, uint64_t version) {
  std::string header(kChunkHeaderBytes, '\0');
  std::memcpy(header.data(), kMagic, 8);
  PutLe32(header.data() + 8, kFormatVersion);
  PutLe32(header.data() + 12, static_cast<uint32_t>(kBlockSizeBytes));
  PutLe64(header.data() + 16, chunk_id);
  PutLe64(header.data() + 24, version);
  PutLe32(header.data() + 32, common::Crc32c(header.data(), kHeaderFieldsBytes));
  return header;
}

Status CheckChunkHeader(std::string_view header, uint64_t chunk_id, uint64_t version) {
  if (header.size() < kHeaderFieldsBytes + 4) return common::DataLossError("chunk header too short");
  if (std::memcmp(header.data(), kMagic, 8) != 0) return common::DataLossError("bad chunk header magic");
  if (common::Crc32c(header.data(), kHeaderFieldsBytes) != GetLe32(header.data() + 32)) {
    return common::DataLossError("chunk header CRC mismatch");
  }
  if (GetLe32(header.data() + 8) != kFormatVersion) {
    return common::DataLossError(fmt::format("unknown chunk format {}", GetLe32(header.data() + 8)));
  }
  if (GetLe32(header.data() + 12) != kBlockSizeBytes) return common::DataLossError("unexpected block size");
  if (GetLe64(header.data() + 16) != chunk_id || GetLe64(header.data() + 24) != version) {
    return common::DataLossError("chunk header names another chunk or version");
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ ChunkWriter

ChunkWriter::ChunkWriter(ChunkStore* store, std::shared_ptr<internal::ChunkSlot> slot,
                         std::unique_lock<std::timed_mutex> lock)
    : store_(store),
      slot_(std::move(slot)),
      writer_lock_(std::move(lock)),
      data_(store->io_, &store->direct_io_, &store->direct_bytes_) {}

ChunkWriter::~ChunkWriter() {
  if (fd_ >= 0) store_->io_.Close(fd_);
  if (base_fd_ >= 0) store_->io_.Close(base_fd_);
  if (building_ && !abandoned_ && !path_.empty()) {
    Status s = store_->io_.Unlink(path_);
    if (!s.ok() && s.code() != common::StatusCode::kNotFound) {
      spdlog::warn("dropping unfinished {}: {}", path_, s.ToString());
    }
  }
}

Status ChunkWriter::Write(uint64_t offset, std::span<const std::byte> data,
                          std::span<const uint32_t> piece_crcs) {
  if (finished_) return common::FailedPreconditionError("write after commit");
  if (offset > kChunkSizeBytes || data.size() > kChunkSizeBytes - offset) {
    return common::InvalidArgumentError(
        fmt::format("{}: write of [{}, {}) is outside the chunk (64 MiB)", ChunkName(chunk_id_, version_),
                    offset, offset + data.size()));
  }
  size_t pieces = common::PieceCount(offset, data.size(), kBlockSizeBytes);
  if (piece_crcs.size() != pieces) {
    return common::InvalidArgumentError(fmt::format("{}: {} bytes at offset {} need {} piece CRCs, got {}",
                                                    ChunkName(chunk_id_, version_), data.size(), offset,
                                                    pieces, piece_crcs.size()));
  }
  size_t pos = 0;
  for (size_t i = 0; i < pieces; ++i) {
    uint64_t in_block = (offset + pos) % kBlockSizeBytes;
    size_t n = std::min(data.size() - pos, static_cast<size_t>(kBlockSizeBytes - in_block));
    uint32_t crc = common::Crc32c(data.subspan(pos, n));
    if (crc != piece_crcs[i]) {
      return common::DataLossError(fmt::format(
          "{}: incoming data for block {} (bytes [{}, {})) does not match its CRC (sent {:08x}, "
          "computed {:08x})",
          ChunkName(chunk_id_, version_), (offset + pos) / kBlockSizeBytes, offset + pos, offset + pos + n,
          piece_crcs[i], crc));
    }
    pos += n;
  }
  if (data.empty()) return Status::Ok();
  Status s = ApplyLeavingHoles(offset, data, piece_crcs);
  if (s.code() == common::StatusCode::kResourceExhausted && !building_ && length_ > start_length_) {
    // Disk full part-way through an in-place stream: drop what it appended.
    Status undo = Truncate(start_length_);
    if (!undo.ok()) spdlog::error("{}: cannot undo a partial append: {}", ChunkName(chunk_id_, version_), undo.ToString());
  }
  return s;
}

Status ChunkWriter::ApplyLeavingHoles(uint64_t offset, std::span<const std::byte> data,
                                      std::span<const uint32_t> piece_crcs) {
  size_t run = 0;  // data[run, pos) is not applied yet
  size_t run_piece = 0;
  auto apply = [&](size_t end, size_t end_piece) -> Status {
    if (run == end) return Status::Ok();
    const uint64_t at = offset + run;
    if (at > length_) RETURN_IF_ERROR(ZeroExtend(at));
    return ApplyVerified(at, data.subspan(run, end - run), piece_crcs.subspan(run_piece, end_piece - run_piece));
  };
  size_t pos = 0;
  for (size_t i = 0; i < piece_crcs.size(); ++i) {
    const uint64_t at = offset + pos;
    const size_t n = std::min(data.size() - pos, static_cast<size_t>(kBlockSizeBytes - at % kBlockSizeBytes));
    // A whole zero block at or past the end (the bytes before it applied):
    // ZeroExtend makes it a hole. Over stored bytes: PunchBlock.
    const bool past_end = at >= length_;
    if (n == kBlockSizeBytes && (past_end || at + n <= length_) && IsZero(data.subspan(pos, n))) {
      RETURN_IF_ERROR(apply(pos, i));
      if (!past_end) RETURN_IF_ERROR(PunchBlock(at));
      run = pos + n;
      run_piece = i + 1;
    }
    pos += n;
  }
  RETURN_IF_ERROR(apply(data.size(), piece_crcs.size()));
  const uint64_t end = offset + data.size();
  return end > length_ ? ZeroExtend(end) : Status::Ok();
}

Status ChunkWriter::PunchBlock(uint64_t at) {
  static const std::vector<std::byte> zeros(kBlockSizeBytes);
  static const uint32_t kZeroBlockCrc = common::Crc32c(zeros.data(), zeros.size());
  const uint64_t block = at / kBlockSizeBytes;
  FileIo& io = store_->io_;
  {
    std::unique_lock<std::shared_mutex> io_lock(slot_->io_mu, std::defer_lock);
    if (!building_) io_lock.lock();
    Status s = io.PunchHole(fd_, kChunkDataOffset + at, kBlockSizeBytes, path_);
    if (s.ok()) {
      // The .tmp's zeros replace the base's bytes (a delta, ApplyDelta).
      if (delta_) MarkWritten(block, block + 1);
      char crc[4];
      PutLe32(crc, kZeroBlockCrc);
      s = io.PwriteFull(fd_, crc, sizeof(crc), kCrcTableOffset + block * 4, path_);
      if (!s.ok() && !building_) store_->MarkDamaged(chunk_id_, version_, "punch failed half-way: " + s.ToString());
      if (s.ok() && !building_) {
        std::lock_guard<std::mutex> lock(store_->mu_);
        auto it = store_->index_.find(chunk_id_);
        if (it != store_->index_.end() && it->second.count(version_) != 0) {
          it->second[version_].mtime_unix_ms = NowUnixMs();
        }
      }
      return s.WithContext(ChunkName(chunk_id_, version_));
    }
    if (s.code() != common::StatusCode::kUnimplemented) return s.WithContext(ChunkName(chunk_id_, version_));
  }
  // The file system cannot punch: write the zeros.
  const uint32_t crc = kZeroBlockCrc;
  return ApplyVerified(at, zeros, std::span<const uint32_t>(&crc, 1));
}

Status ChunkWriter::ZeroExtend(uint64_t target) {
  static const std::vector<std::byte> zeros(kBlockSizeBytes);
  if (length_ >= target) return Status::Ok();
  // Extend the file, so the new range is a hole that reads as zeros and
  // takes no room (the partial last block's tail too: a file's bytes past
  // its end read as zeros once it is extended), and store the CRCs: of zero
  // blocks, and for a partial last block its stored CRC extended over the
  // zeros, so a bad stored block stays bad. A later write into the hole
  // reserves what it writes (ApplyLocked), so a full disk fails that write
  // cleanly, as on ext4. A delta need not hold that block: the base's
  // bytes stand, and applying extends the base's file likewise.
  FileIo& io = store_->io_;
  std::unique_lock<std::shared_mutex> io_lock(slot_->io_mu, std::defer_lock);
  if (!building_) io_lock.lock();
  const uint64_t first_block = length_ / kBlockSizeBytes;
  const uint64_t count = common::BlockCount(target) - first_block;
  const bool partial = length_ % kBlockSizeBytes != 0;
  static const uint32_t kZeroBlockCrc = common::Crc32c(zeros.data(), zeros.size());
  std::string table(count * 4, '\0');
  if (partial) {
    RETURN_IF_ERROR(io.PreadFull(fd_, table.data(), 4, kCrcTableOffset + first_block * 4, path_)
                        .WithContext(ChunkName(chunk_id_, version_)));
    const uint64_t block_end = std::min((first_block + 1) * kBlockSizeBytes, target);
    PutLe32(table.data(), common::Crc32cExtend(GetLe32(table.data()),
                                               std::span<const std::byte>(zeros.data(), block_end - length_)));
  }
  for (uint64_t i = partial ? 1 : 0; i < count; ++i) {
    uint64_t len = common::BlockLength(target, first_block + i);
    PutLe32(table.data() + 4 * i, len == kBlockSizeBytes ? kZeroBlockCrc : common::Crc32c(zeros.data(), len));
  }
  RETURN_IF_ERROR(io.Ftruncate(fd_, kChunkDataOffset + target, path_));
  Status s = io.PwriteFull(fd_, table.data(), table.size(), kCrcTableOffset + first_block * 4, path_);
  if (!s.ok()) {
    (void)io.Ftruncate(fd_, kChunkDataOffset + length_, path_);
    if (partial && !building_) store_->MarkDamaged(chunk_id_, version_, "extension failed half-way: " + s.ToString());
    return s.WithContext(ChunkName(chunk_id_, version_));
  }
  length_ = target;
  PublishLength();
  return Status::Ok();
}

void ChunkWriter::PublishLength() {
  // A version being built is not in the index yet; Commit installs it.
  if (building_) return;
  std::lock_guard<std::mutex> lock(store_->mu_);
  auto it = store_->index_.find(chunk_id_);
  if (it == store_->index_.end()) return;
  auto v = it->second.find(version_);
  if (v != it->second.end()) v->second.length = length_;
}

Status ChunkWriter::ApplyVerified(uint64_t offset, std::span<const std::byte> data,
                                  std::span<const uint32_t> piece_crcs) {
  CHECK(offset <= length_);
  if (delta_) {
    // Only the first and last block can be written in part.
    const uint64_t first = offset / kBlockSizeBytes;
    const uint64_t last = (offset + data.size() - 1) / kBlockSizeBytes;
    if (offset % kBlockSizeBytes != 0 || offset + data.size() < (first + 1) * kBlockSizeBytes) {
      RETURN_IF_ERROR(Materialize(first));
    }
    if (last != first && offset + data.size() < (last + 1) * kBlockSizeBytes) RETURN_IF_ERROR(Materialize(last));
    RETURN_IF_ERROR(ApplyLocked(offset, data, piece_crcs));
    MarkWritten(first, last + 1);
    return Status::Ok();
  }
  if (building_) return ApplyLocked(offset, data, piece_crcs);
  std::unique_lock<std::shared_mutex> io(slot_->io_mu);
  Status s = ApplyLocked(offset, data, piece_crcs);
  std::lock_guard<std::mutex> lock(store_->mu_);
  auto it = store_->index_.find(chunk_id_);
  if (it != store_->index_.end()) {
    auto v = it->second.find(version_);
    if (v != it->second.end()) {
      v->second.length = length_;
      v->second.mtime_unix_ms = NowUnixMs();
    }
  }
  return s;
}

Status ChunkWriter::ApplyLocked(uint64_t offset, std::span<const std::byte> data,
                                std::span<const uint32_t> piece_crcs) {
  FileIo& io = store_->io_;
  const uint64_t end = offset + data.size();
  const uint64_t old_length = length_;
  // Reserve the space first: a full disk fails here, before anything changed.
  // The whole range, not only past the end: it may cover a hole (~1 us when
  // it does not).
  RETURN_IF_ERROR(io.Reserve(fd_, kChunkDataOffset + offset, data.size(), path_)
                      .WithContext(ChunkName(chunk_id_, version_)));
  const uint64_t first_block = offset / kBlockSizeBytes;
  const size_t nblocks = piece_crcs.size();
  std::string table(nblocks * 4, '\0');
  RETURN_IF_ERROR(io.PreadFull(fd_, table.data(), table.size(), kCrcTableOffset + first_block * 4, path_));
  std::string old;
  size_t pos = 0;
  for (size_t i = 0; i < nblocks; ++i) {
    const uint64_t block = first_block + i;
    const uint64_t in_block = (offset + pos) % kBlockSizeBytes;
    const size_t n = std::min(data.size() - pos, static_cast<size_t>(kBlockSizeBytes - in_block));
    const uint64_t old_len = common::BlockLength(old_length, block);
    uint32_t crc = piece_crcs[i];
    if (in_block != 0 || n < old_len) {
      // A partial block: patch the stored block, after verifying it.
      old.resize(old_len);
      RETURN_IF_ERROR(io.PreadFull(fd_, old.data(), old_len, kChunkDataOffset + block * kBlockSizeBytes, path_));
      uint32_t stored = GetLe32(table.data() + 4 * i);
      uint32_t actual = common::Crc32c(old.data(), old.size());
      if (stored != actual) {
        std::string what = fmt::format("{}: block {} failed its CRC check (stored {:08x}, computed {:08x})",
                                       ChunkName(chunk_id_, version_), block, stored, actual);
        if (!building_) store_->MarkDamaged(chunk_id_, version_, what);
        return common::DataLossError(what);
      }
      crc = common::Crc32cPatched(AsBytes(old), in_block, data.subspan(pos, n));
    }
    PutLe32(table.data() + 4 * i, crc);
    pos += n;
  }
  bool direct = false;
  Status s = data_.Write(fd_, path_, data, kChunkDataOffset + offset, &direct);
  if (s.ok()) s = io.PwriteFull(fd_, table.data(), table.size(), kCrcTableOffset + first_block * 4, path_);
  if (!s.ok()) {
    if (end > old_length) (void)io.Ftruncate(fd_, kChunkDataOffset + old_length, path_);
    if (!building_ && offset < old_length) {
      store_->MarkDamaged(chunk_id_, version_, "write failed half-way: " + s.ToString());
    }
    return s.WithContext(ChunkName(chunk_id_, version_));
  }
  length_ = std::max(length_, end);
  if (direct) return Status::Ok();  // on the disk already
  // Write-behind: the disk starts on each 8 MiB written while the stream
  // goes on, instead of taking the whole chunk at Commit's fdatasync after
  // the last byte arrived (durable streams finish that much sooner).
  writeback_begin_ = std::min(writeback_begin_, offset);
  writeback_end_ = std::max(writeback_end_, end);
  if (writeback_end_ - writeback_begin_ >= kWritebackBytes) {
    io.StartWriteback(fd_, kChunkDataOffset + writeback_begin_, writeback_end_ - writeback_begin_);
    writeback_begin_ = UINT64_MAX;
    writeback_end_ = 0;
  }
  return Status::Ok();
}

Status ChunkWriter::Truncate(uint64_t length) {
  if (finished_) return common::FailedPreconditionError("truncate after commit");
  if (length > kChunkSizeBytes) {
    return common::InvalidArgumentError(
        fmt::format("{}: truncate to {} is beyond 64 MiB", ChunkName(chunk_id_, version_), length));
  }
  if (length >= length_) return ZeroExtend(length);
  FileIo& io = store_->io_;
  std::unique_lock<std::shared_mutex> io_lock(slot_->io_mu, std::defer_lock);
  if (!building_) io_lock.lock();
  if (delta_ && length % kBlockSizeBytes != 0) RETURN_IF_ERROR(Materialize(length / kBlockSizeBytes));
  const uint64_t old_count = common::BlockCount(length_);
  uint64_t first_entry = common::BlockCount(length);
  std::string table;
  if (length % kBlockSizeBytes != 0) {
    const uint64_t block = length / kBlockSizeBytes;
    first_entry = block;
    const uint64_t old_len = common::BlockLength(length_, block);
    std::string old(old_len, '\0');
    char stored_bytes[4];
    RETURN_IF_ERROR(io.PreadFull(fd_, old.data(), old_len, kChunkDataOffset + block * kBlockSizeBytes, path_));
    RETURN_IF_ERROR(io.PreadFull(fd_, stored_bytes, 4, kCrcTableOffset + block * 4, path_));
    uint32_t stored = GetLe32(stored_bytes);
    uint32_t actual = common::Crc32c(old.data(), old.size());
    if (stored != actual) {
      std::string what = fmt::format("{}: block {} failed its CRC check (stored {:08x}, computed {:08x})",
                                     ChunkName(chunk_id_, version_), block, stored, actual);
      if (!building_) {
        io_lock.unlock();
        store_->MarkDamaged(chunk_id_, version_, what);
      }
      return common::DataLossError(what);
    }
    table.assign(4, '\0');
    PutLe32(table.data(), common::Crc32c(old.data(), length % kBlockSizeBytes));
  }
  table.resize((old_count - first_entry) * 4, '\0');
  RETURN_IF_ERROR(io.Ftruncate(fd_, kChunkDataOffset + length, path_));
  RETURN_IF_ERROR(io.PwriteFull(fd_, table.data(), table.size(), kCrcTableOffset + first_entry * 4, path_));
  length_ = length;
  if (delta_ && length < cut_) {
    // The base's bytes from here on are no longer the version's; the .tmp's
    // (zeros, or what is written later) replace them.
    cut_ = length;
    MarkWritten(length / kBlockSizeBytes, common::BlockCount(base_length_));
  }
  PublishLength();
  return Status::Ok();
}

Status ChunkWriter::Materialize(uint64_t block) {
  if (block >= kMaxBlocks || held_[block]) return Status::Ok();
  const uint64_t begin = block * kBlockSizeBytes;
  const uint64_t end = std::min({begin + kBlockSizeBytes, base_length_, cut_});
  if (begin < end) {
    std::string buffer(end - begin, '\0');
    FileIo& io = store_->io_;
    RETURN_IF_ERROR(io.PreadFull(base_fd_, buffer.data(), buffer.size(), kChunkDataOffset + begin, base_path_));
    // The .tmp is a hole here (it never held the block): zeros stay one.
    RETURN_IF_ERROR(ForEachRunOfZeros(buffer, kPageBytes, [&](size_t b, size_t e, bool zeros) {
      if (zeros) return Status::Ok();
      return io.PwriteFull(fd_, buffer.data() + b, e - b, kChunkDataOffset + begin + b, path_);
    }));
  }
  held_[block] = true;
  return Status::Ok();
}

void ChunkWriter::MarkWritten(uint64_t first_block, uint64_t end_block) {
  for (uint64_t b = first_block; b < std::min(end_block, kMaxBlocks); ++b) held_[b] = true;
}

Status ChunkWriter::Crash(std::string_view step) {
  Status s = store_->CrashPoint(step);
  if (!s.ok()) abandoned_ = true;
  return s;
}

Status ChunkWriter::FillFromBase() {
  FileIo& io = store_->io_;
  const uint64_t live = std::min(base_length_, cut_);
  std::string buffer;
  RETURN_IF_ERROR(ForEachRun(held_, false, live, [&](uint64_t begin, uint64_t end) {
    buffer.resize(end - begin);
    RETURN_IF_ERROR(io.PreadFull(base_fd_, buffer.data(), buffer.size(), kChunkDataOffset + begin, base_path_));
    // The .tmp is a hole where it holds no block: the base's zero blocks
    // stay holes in the copy.
    return ForEachRunOfZeros(buffer, kPageBytes, [&](size_t b, size_t e, bool zeros) {
      if (zeros) return Status::Ok();
      return data_.Write(fd_, path_, AsBytes(buffer).subspan(b, e - b), kChunkDataOffset + begin + b);
    });
  }));
  delta_ = false;
  return Status::Ok();
}

Result<uint64_t> ChunkWriter::Commit(bool durable) {
  if (finished_) return common::FailedPreconditionError("commit twice");
  finished_ = true;
  FileIo& io = store_->io_;
  if (!building_) {
    if (durable) RETURN_IF_ERROR(io.Fdatasync(fd_, path_));
    NoteStoredBytes(fd_, path_);
    return length_;
  }
  if (delta_) {
    const uint64_t base_blocks = common::BlockCount(std::min(base_length_, cut_));
    const auto held = static_cast<uint64_t>(std::count(held_.begin(), held_.end(), true));
    if (base_blocks >= kMinDeltaBaseBlocks && 2 * held <= base_blocks) return CommitDelta();
    RETURN_IF_ERROR(FillFromBase());
  }
  RETURN_IF_ERROR(Crash("tmp_written"));
  if (durable) RETURN_IF_ERROR(io.Fdatasync(fd_, path_));
  RETURN_IF_ERROR(Crash("before_rename"));
  const std::string dir = store_->DirOf(folder_, chunk_id_);
  const std::string final_path = store_->FileOf(folder_, chunk_id_, version_, "chunk");
  std::vector<uint64_t> removed;  // older versions, deleted once this one is in place
  {
    std::unique_lock<std::shared_mutex> io_lock(slot_->io_mu);
    RETURN_IF_ERROR(io.Rename(path_, final_path));
    building_ = false;
    path_ = final_path;
    removed = Install();
  }
  // A marker of a damaged copy this version replaced.
  (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version_, "damaged"));
  RETURN_IF_ERROR(Crash("after_rename"));
  if (durable) RETURN_IF_ERROR(io.FsyncDir(dir));
  for (uint64_t version : removed) {
    (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version, "chunk"));
    (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version, "damaged"));
  }
  RETURN_IF_ERROR(Crash("after_unlink_old"));
  if (durable && !removed.empty()) RETURN_IF_ERROR(io.FsyncDir(dir));
  NoteStoredBytes(fd_, path_);
  return length_;
}

void ChunkWriter::NoteStoredBytes(int fd, const std::string& path) {
  // The header and CRC table take the first 8 KiB of every version.
  Result<uint64_t> allocated = store_->io_.AllocatedBytes(fd, path);
  if (allocated.ok()) stored_bytes_ = *allocated - std::min(*allocated, kChunkDataOffset);
}

std::vector<uint64_t> ChunkWriter::Install() {
  std::lock_guard<std::mutex> lock(store_->mu_);
  auto& versions = store_->index_[chunk_id_];
  std::vector<uint64_t> removed;
  // Writers of the chunk are serialized, so nothing newer exists.
  for (auto it = versions.begin(); it != versions.end() && it->first <= version_;) {
    if (it->first != version_) removed.push_back(it->first);
    it = versions.erase(it);
  }
  ChunkStore::Entry entry;
  entry.folder = folder_;
  entry.length = length_;
  entry.mtime_unix_ms = NowUnixMs();
  versions[version_] = entry;
  return removed;
}

Result<uint64_t> ChunkWriter::CommitDelta() {
  FileIo& io = store_->io_;
  RETURN_IF_ERROR(Crash("tmp_written"));
  const std::string record = EncodeDeltaRecord(built_from_, length_, held_);
  RETURN_IF_ERROR(io.PwriteFull(fd_, record.data(), record.size(), kDeltaRecordOffset, path_));
  // What applying writes into the base is reserved in it now: once the
  // delta is saved, applying it must not meet a full disk. That is the
  // held blocks (the base may have holes under them too), not the growth:
  // a gap the delta extends over stays a hole.
  RETURN_IF_ERROR(ForEachRun(held_, true, length_, [&](uint64_t begin, uint64_t end) {
                    return io.Reserve(base_fd_, kChunkDataOffset + begin, end - begin, base_path_);
                  }).WithContext(ChunkName(chunk_id_, version_)));
  RETURN_IF_ERROR(io.Fdatasync(fd_, path_));
  RETURN_IF_ERROR(Crash("before_rename"));
  const std::string dir = store_->DirOf(folder_, chunk_id_);
  const std::string delta_path = store_->FileOf(folder_, chunk_id_, version_, "delta");
  const std::string final_path = store_->FileOf(folder_, chunk_id_, version_, "chunk");
  std::vector<uint64_t> removed;
  {
    std::unique_lock<std::shared_mutex> io_lock(slot_->io_mu);
    {
      // Only Delete can have taken the base (writers of the chunk wait for us).
      std::lock_guard<std::mutex> lock(store_->mu_);
      auto it = store_->index_.find(chunk_id_);
      if (it == store_->index_.end() || it->second.count(built_from_) == 0) {
        return common::Status(common::StatusCode::kAborted,
                              fmt::format("{}: its base version {} was deleted during the write",
                                          ChunkName(chunk_id_, version_), built_from_));
      }
    }
    RETURN_IF_ERROR(io.Rename(path_, delta_path));
    path_ = delta_path;
    // Failing here, the base is untouched (the destructor deletes the .delta).
    RETURN_IF_ERROR(io.FsyncDir(dir));
    RETURN_IF_ERROR(Crash("delta_saved"));
    Status s = store_->ApplyDelta(fd_, path_, chunk_id_, version_, length_, held_, base_path_);
    if (s.ok()) s = io.Rename(base_path_, final_path);
    if (!s.ok()) {
      // The base may hold part of the delta: it is no copy of either
      // version. Its file goes; the version stays listed, damaged, so that
      // meta hears of it at the next heartbeat and copies the chunk back.
      (void)io.Unlink(base_path_);
      store_->MarkDamaged(chunk_id_, built_from_,
                          fmt::format("dropped: its delta to version {} failed: {}", version_, s.ToString()));
      return s.WithContext(ChunkName(chunk_id_, version_));  // the destructor deletes the .delta
    }
    building_ = false;
    removed = Install();
  }
  (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version_, "damaged"));
  RETURN_IF_ERROR(Crash("delta_applied"));
  RETURN_IF_ERROR(io.FsyncDir(dir));
  (void)io.Unlink(delta_path);
  for (uint64_t version : removed) {
    if (version != built_from_) (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version, "chunk"));
    (void)io.Unlink(store_->FileOf(folder_, chunk_id_, version, "damaged"));
  }
  NoteStoredBytes(base_fd_, final_path);  // the base file is the version now
  return length_;
}

// ------------------------------------------------------------------- ChunkStore

ChunkStore::ChunkStore(Options options)
    : options_(std::move(options)),
      io_(options_.io ? *options_.io : PosixFileIo::Get()),
      direct_io_(options_.direct_io) {}

ChunkStore::~ChunkStore() = default;

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(Options options) {
  if (options.folders.empty()) return common::InvalidArgumentError("no data folder");
  std::unique_ptr<ChunkStore> store(new ChunkStore(std::move(options)));
  RETURN_IF_ERROR(store->Recover());
  return store;
}

std::string ChunkStore::DirOf(int folder, uint64_t chunk_id) const {
  return fmt::format("{}/chunks/{:02x}", options_.folders[static_cast<size_t>(folder)], chunk_id & 0xff);
}

std::string ChunkStore::FileOf(int folder, uint64_t chunk_id, uint64_t version, std::string_view ext) const {
  return fmt::format("{}/{:016x}.{}.{}", DirOf(folder, chunk_id), chunk_id, version, ext);
}

std::string ChunkStore::TEST_PathOf(uint64_t chunk_id, uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(chunk_id);
  if (it == index_.end()) return "";
  auto v = it->second.find(version);
  if (v == it->second.end()) return "";
  return FileOf(v->second.folder, chunk_id, version, "chunk");
}

Status ChunkStore::CrashPoint(std::string_view step) {
  if (!options_.crash_hook) return Status::Ok();
  return options_.crash_hook(step);
}

Status ChunkStore::ApplyDelta(int delta_fd, const std::string& delta_path, uint64_t chunk_id, uint64_t version,
                              uint64_t length, const std::vector<bool>& held, const std::string& base_path) {
  ASSIGN_OR_RETURN(int fd, io_.Open(base_path, O_RDWR, 0));
  std::string buffer;
  Status s = ForEachRun(held, true, length, [&](uint64_t begin, uint64_t end) {
    buffer.resize(end - begin);
    RETURN_IF_ERROR(io_.PreadFull(delta_fd, buffer.data(), buffer.size(), kChunkDataOffset + begin, delta_path));
    // Zero pages (zeros the stream wrote over stored bytes, a punched
    // range, the rest of a block a small write went into) free the base's
    // room rather than fill it with zeros.
    return ForEachRunOfZeros(buffer, kPageBytes, [&](size_t b, size_t e, bool zeros) {
      const uint64_t at = kChunkDataOffset + begin + b;
      if (zeros) return ZeroRange(io_, fd, at, e - b, base_path);
      return io_.PwriteFull(fd, buffer.data() + b, e - b, at, base_path);
    });
  });
  if (s.ok()) s = io_.Ftruncate(fd, kChunkDataOffset + length, base_path);
  if (s.ok()) {
    buffer.resize(kChunkDataOffset - kCrcTableOffset);
    s = io_.PreadFull(delta_fd, buffer.data(), buffer.size(), kCrcTableOffset, delta_path);
  }
  if (s.ok()) s = io_.PwriteFull(fd, buffer.data(), buffer.size(), kCrcTableOffset, base_path);
  if (s.ok()) {
    std::string header = EncodeChunkHeader(chunk_id, version);
    header.resize(kChunkHeaderBytes, '\0');
    s = io_.PwriteFull(fd, header.data(), header.size(), 0, base_path);
  }
  if (s.ok()) s = io_.Fdatasync(fd, base_path);
  io_.Close(fd);
  return s;
}

void ChunkStore::RecoverDelta(int folder, uint64_t chunk_id, uint64_t version) {
  const std::string path = FileOf(folder, chunk_id, version, "delta");
  const std::string final_path = FileOf(folder, chunk_id, version, "chunk");
  struct stat st {};
  if (::stat(final_path.c_str(), &st) == 0) {
    spdlog::info("recovery: {} was applied; removing it", path);
    (void)io_.Unlink(path);
    return;
  }
  auto fd = io_.Open(path, O_RDONLY, 0);
  if (!fd.ok()) {
    spdlog::error("recovery: cannot open {}: {}", path, fd.status().ToString());
    return;
  }
  std::string head(kChunkHeaderBytes, '\0');
  uint64_t base_version = 0;
  uint64_t length = 0;
  std::vector<bool> held;
  Status s = io_.PreadFull(*fd, head.data(), head.size(), 0, path);
  if (s.ok()) s = CheckChunkHeader(head, chunk_id, version);
  if (s.ok()) {
    s = DecodeDeltaRecord(std::string_view(head).substr(kDeltaRecordOffset), &base_version, &length, &held);
  }
  if (!s.ok()) {
    io_.Close(*fd);
    spdlog::error("recovery: removing {}, which is unreadable: {}", path, s.ToString());
    (void)io_.Unlink(path);
    return;
  }
  const std::string base_path = FileOf(folder, chunk_id, base_version, "chunk");
  if (::stat(base_path.c_str(), &st) != 0) {
    io_.Close(*fd);
    spdlog::error("recovery: removing {}: its base {} is gone", path, base_path);
    (void)io_.Unlink(path);
    return;
  }
  s = ApplyDelta(*fd, path, chunk_id, version, length, held, base_path);
  io_.Close(*fd);
  if (s.ok()) s = io_.Rename(base_path, final_path);
  if (s.ok()) s = io_.FsyncDir(DirOf(folder, chunk_id));
  if (!s.ok()) {
    // Half applied, the base is no copy of either version.
    spdlog::error("recovery: dropping {} and {}: applying the delta failed: {}", base_path, path, s.ToString());
    (void)io_.Unlink(base_path);
  } else {
    spdlog::info("recovery: applied {} onto version {}", path, base_version);
  }
  (void)io_.Unlink(path);
}

Status ChunkStore::Recover() {
  for (size_t f = 0; f < options_.folders.size(); ++f) RETURN_IF_ERROR(RecoverFolder(static_cast<int>(f)));
  // Finish interrupted version switches: only the newest version survives.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [chunk_id, versions] : index_) {
    while (versions.size() > 1) {
      auto oldest = versions.begin();
      std::string path = FileOf(oldest->second.folder, chunk_id, oldest->first, "chunk");
      spdlog::info("recovery: removing {} (superseded by version {})", path, versions.rbegin()->first);
      (void)io_.Unlink(path);
      (void)io_.Unlink(FileOf(oldest->second.folder, chunk_id, oldest->first, "damaged"));
      versions.erase(oldest);
    }
  }
  size_t damaged = 0;
  for (const auto& [chunk_id, versions] : index_) {
    for (const auto& [version, entry] : versions) {
      if (entry.damaged) {
        ++damaged;
        newly_damaged_.push_back(MetaOf(chunk_id, version, entry));
      }
    }
  }
  spdlog::info("chunk store: {} chunks in {} folders, {} damaged", index_.size(), options_.folders.size(),
               damaged);
  return Status::Ok();
}

Status ChunkStore::RecoverFolder(int folder) {
  const std::string root = options_.folders[static_cast<size_t>(folder)] + "/chunks";
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) return IoError(errno, "mkdir " + root);
  std::set<std::pair<uint64_t, uint64_t>> markers;
  for (int xx = 0; xx < 256; ++xx) {
    const std::string dir = fmt::format("{}/{:02x}", root, xx);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return IoError(errno, "mkdir " + dir);
    auto list = [&dir](std::vector<std::string>* names) -> Status {
      names->clear();
      DIR* d = ::opendir(dir.c_str());
      if (d == nullptr) return IoError(errno, "opendir " + dir);
      while (struct dirent* ent = ::readdir(d)) {
        std::string name = ent->d_name;
        if (name != "." && name != "..") names->push_back(std::move(name));
      }
      ::closedir(d);
      return Status::Ok();
    };
    std::vector<std::string> names;
    RETURN_IF_ERROR(list(&names));
    // Interrupted delta commits first: each turns a base into a new version.
    bool applied = false;
    for (const std::string& name : names) {
      uint64_t chunk_id = 0;
      uint64_t version = 0;
      std::string ext;
      if (ParseFileName(name, &chunk_id, &version, &ext) && ext == "delta" &&
          (chunk_id & 0xff) == static_cast<uint64_t>(xx)) {
        RecoverDelta(folder, chunk_id, version);
        applied = true;
      }
    }
    if (applied) RETURN_IF_ERROR(list(&names));
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      uint64_t chunk_id = 0;
      uint64_t version = 0;
      std::string ext;
      if (!ParseFileName(name, &chunk_id, &version, &ext) || (chunk_id & 0xff) != static_cast<uint64_t>(xx)) {
        spdlog::warn("recovery: ignoring unexpected file {}", path);
        continue;
      }
      if (ext == "tmp") {
        spdlog::info("recovery: removing unfinished version {}", path);
        (void)io_.Unlink(path);
        continue;
      }
      if (ext == "damaged") {
        markers.insert({chunk_id, version});
        continue;
      }
      if (ext != "chunk") {
        spdlog::warn("recovery: ignoring unexpected file {}", path);
        continue;
      }
      Entry entry;
      entry.folder = folder;
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) return IoError(errno, "stat " + path);
      entry.mtime_unix_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      uint64_t size = static_cast<uint64_t>(st.st_size);
      entry.length = size > kChunkDataOffset ? size - kChunkDataOffset : 0;
      std::string header(kHeaderFieldsBytes + 4, '\0');
      Status header_status;
      if (size < kChunkDataOffset || entry.length > kChunkSizeBytes) {
        header_status = common::DataLossError(fmt::format("file size {} is impossible", size));
      } else {
        auto fd = io_.Open(path, O_RDONLY, 0);
        if (!fd.ok()) {
          header_status = fd.status();
        } else {
          header_status = io_.PreadFull(*fd, header.data(), header.size(), 0, path);
          io_.Close(*fd);
          if (header_status.ok()) header_status = CheckChunkHeader(header, chunk_id, version);
        }
      }
      if (!header_status.ok()) {
        spdlog::error("recovery: {} is damaged: {}", path, header_status.ToString());
        entry.damaged = true;
      }
      std::lock_guard<std::mutex> lock(mu_);
      auto& versions = index_[chunk_id];
      if (versions.count(version) != 0) {
        spdlog::warn("recovery: {} duplicates a copy in another folder; ignored", path);
        continue;
      }
      versions[version] = entry;
    }
  }
  // The directories themselves must survive a power cut before any chunk
  // renamed into them can.
  RETURN_IF_ERROR(io_.FsyncDir(root));
  RETURN_IF_ERROR(io_.FsyncDir(options_.folders[static_cast<size_t>(folder)]));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [chunk_id, version] : markers) {
    auto it = index_.find(chunk_id);
    if (it == index_.end() || it->second.count(version) == 0) {
      (void)io_.Unlink(FileOf(folder, chunk_id, version, "damaged"));
      continue;
    }
    it->second[version].damaged = true;
  }
  return Status::Ok();
}

std::shared_ptr<ChunkStore::Slot> ChunkStore::SlotFor(uint64_t chunk_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = slots_[chunk_id];
  if (!slot) slot = std::make_shared<Slot>();
  return slot;
}

int ChunkStore::PickFolder() const {
  int best = 0;
  uint64_t best_free = 0;
  for (size_t f = 0; f < options_.folders.size(); ++f) {
    struct statvfs vfs {};
    if (::statvfs(options_.folders[f].c_str(), &vfs) != 0) continue;
    uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes > best_free) {
      best_free = free_bytes;
      best = static_cast<int>(f);
    }
  }
  return best;
}

ChunkMeta ChunkStore::MetaOf(uint64_t chunk_id, uint64_t version, const Entry& e) {
  ChunkMeta m;
  m.chunk_id = chunk_id;
  m.version = version;
  m.length = e.length;
  m.damaged = e.damaged;
  m.mtime_unix_ms = e.mtime_unix_ms;
  return m;
}

Result<std::unique_ptr<ChunkWriter>> ChunkStore::StartWrite(const WriteSpec& spec) {
  if (spec.version == 0) return common::InvalidArgumentError("chunk version 0 is not a version");
  if (spec.base_version > spec.version) {
    return common::InvalidArgumentError(fmt::format("{}: base version {} is newer than the version written",
                                                    ChunkName(spec.chunk_id, spec.version), spec.base_version));
  }
  const int picked_folder = PickFolder();
  std::shared_ptr<Slot> slot = SlotFor(spec.chunk_id);
  std::unique_lock<std::timed_mutex> writer_lock(slot->writer_mu, std::defer_lock);
  if (!writer_lock.try_lock_for(std::chrono::milliseconds(spec.lock_timeout_ms))) {
    return common::Status(common::StatusCode::kAborted,
                          fmt::format("chunk {:016x}: another write is in progress (waited {} ms)", spec.chunk_id,
                                      spec.lock_timeout_ms));
  }
  std::unique_ptr<ChunkWriter> writer(new ChunkWriter(this, slot, std::move(writer_lock)));
  writer->chunk_id_ = spec.chunk_id;
  writer->version_ = spec.version;
  bool in_place = false;
  bool copy_base = false;
  uint64_t copy_from = 0;  // the stored version a new one is built from
  uint64_t base_length = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(spec.chunk_id);
    const bool known = it != index_.end() && !it->second.empty();
    const uint64_t newest = known ? it->second.rbegin()->first : 0;
    writer->folder_ = known ? it->second.rbegin()->second.folder : picked_folder;
    if (newest > spec.version) {
      return common::FailedPreconditionError(fmt::format(
          "{}: stale version, version {} is stored", ChunkName(spec.chunk_id, spec.version), newest));
    }
    if (newest == spec.version && !spec.replace) {
      in_place = true;
      writer->length_ = it->second.rbegin()->second.length;
      writer->start_length_ = writer->length_;
    } else if (spec.base_version != 0 && !spec.replace) {
      if (!known) {
        return common::NotFoundError(fmt::format("chunk {:016x} is not stored (base version {} needed)",
                                                 spec.chunk_id, spec.base_version));
      }
      // A version between the base and this one is a write meta never
      // committed: its writer died after we finished it, and finishing it
      // dropped the base. It was built from the base, so it holds every byte
      // of it plus writes nobody acknowledged; build from it (the client
      // cuts the copy to meta's length first). Anything else is a mismatch.
      if (newest != spec.base_version && !(newest > spec.base_version && newest < spec.version)) {
        return common::FailedPreconditionError(
            fmt::format("{}: base version {} is not stored (version {} is)",
                        ChunkName(spec.chunk_id, spec.version), spec.base_version, newest));
      }
      copy_base = true;
      copy_from = newest;
      base_length = it->second.rbegin()->second.length;
    }
  }
  if (in_place) {
    writer->path_ = FileOf(writer->folder_, spec.chunk_id, spec.version, "chunk");
    ASSIGN_OR_RETURN(writer->fd_, io_.Open(writer->path_, O_RDWR, 0));
    return writer;
  }
  writer->building_ = true;
  writer->path_ = FileOf(writer->folder_, spec.chunk_id, spec.version, "tmp");
  ASSIGN_OR_RETURN(writer->fd_, io_.Open(writer->path_, O_RDWR | O_CREAT | O_TRUNC, 0644));
  std::string head = EncodeChunkHeader(spec.chunk_id, spec.version);
  head.resize(kChunkDataOffset, '\0');
  if (copy_base) {
    // Start as a delta: the base's CRC table as stored (so a bad block stays
    // detectable), its length, and no data; blocks come from the base as the
    // stream needs them (ChunkWriter::Materialize) or at Commit.
    writer->base_path_ = FileOf(writer->folder_, spec.chunk_id, copy_from, "chunk");
    // Read-write: Commit reserves growth in it.
    ASSIGN_OR_RETURN(writer->base_fd_, io_.Open(writer->base_path_, O_RDWR, 0));
    RETURN_IF_ERROR(io_.PreadFull(writer->base_fd_, head.data() + kCrcTableOffset,
                                  kChunkDataOffset - kCrcTableOffset, kCrcTableOffset, writer->base_path_));
    RETURN_IF_ERROR(io_.Ftruncate(writer->fd_, kChunkDataOffset + base_length, writer->path_));
    writer->delta_ = true;
    writer->base_length_ = base_length;
    writer->cut_ = base_length;
    writer->held_.assign(kMaxBlocks, false);
    writer->length_ = base_length;
    writer->built_from_ = copy_from;
  }
  RETURN_IF_ERROR(io_.PwriteFull(writer->fd_, head.data(), head.size(), 0, writer->path_));
  return writer;
}

Result<ChunkMeta> ChunkStore::FindLocked(uint64_t chunk_id, uint64_t version) const {
  if (version == 0) return common::InvalidArgumentError("chunk version 0 is not a version");
  auto it = index_.find(chunk_id);
  if (it == index_.end() || it->second.empty()) {
    return common::NotFoundError(fmt::format("chunk {:016x} is not stored here", chunk_id));
  }
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    uint64_t newest = it->second.rbegin()->first;
    return common::FailedPreconditionError(
        fmt::format("{}: {} version, version {} is stored", ChunkName(chunk_id, version),
                    version > newest ? "future" : "stale", newest));
  }
  return MetaOf(chunk_id, version, v->second);
}

Result<ChunkMeta> ChunkStore::FindReadable(uint64_t chunk_id, uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  Result<ChunkMeta> found = FindLocked(chunk_id, version);
  if (found.ok()) return found;
  auto it = index_.find(chunk_id);
  if (it == index_.end() || it->second.empty() || it->second.rbegin()->first < version) return found.status();
  return FindLocked(chunk_id, it->second.rbegin()->first);
}

Result<ChunkMeta> ChunkStore::Find(uint64_t chunk_id, uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  return FindLocked(chunk_id, version);
}

Status ChunkStore::ReadBlocks(uint64_t chunk_id, uint64_t version, uint64_t first_block, uint64_t max_blocks,
                              std::string* data, BlockRead* out, uint64_t readahead_blocks) {
  std::shared_ptr<Slot> slot = SlotFor(chunk_id);
  std::shared_lock<std::shared_mutex> io_lock(slot->io_mu);
  int folder = 0;
  uint64_t length = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(ChunkMeta meta, FindLocked(chunk_id, version));
    length = meta.length;
    folder = index_.at(chunk_id).at(version).folder;
  }
  const uint64_t total_blocks = common::BlockCount(length);
  if (first_block > total_blocks) {
    return common::InvalidArgumentError(fmt::format("{}: block {} is past the end (length {})",
                                                    ChunkName(chunk_id, version), first_block, length));
  }
  const uint64_t count = std::min(max_blocks, total_blocks - first_block);
  const uint64_t start = first_block * kBlockSizeBytes;
  // At the end of a chunk whose last block is short, end < start.
  const uint64_t end = std::max(start, std::min(length, (first_block + count) * kBlockSizeBytes));
  out->offset = start;
  out->chunk_length = length;
  out->crcs.resize(count);
  data->resize(end - start);
  if (count == 0) return Status::Ok();
  const std::string path = FileOf(folder, chunk_id, version, "chunk");
  ASSIGN_OR_RETURN(int fd, io_.Open(path, O_RDONLY, 0));
  std::string table(count * 4, '\0');
  Status s = io_.PreadFull(fd, data->data(), data->size(), kChunkDataOffset + start, path);
  if (s.ok()) s = io_.PreadFull(fd, table.data(), table.size(), kCrcTableOffset + first_block * 4, path);
  if (s.ok() && readahead_blocks > 0 && end < length) {
    io_.WillNeed(fd, kChunkDataOffset + end, std::min(length - end, readahead_blocks * kBlockSizeBytes));
  }
  io_.Close(fd);
  if (!s.ok()) {
    io_lock.unlock();
    MarkDamaged(chunk_id, version, "unreadable: " + s.ToString());
    return s.WithContext(ChunkName(chunk_id, version));
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t block = first_block + i;
    const uint64_t off = i * kBlockSizeBytes;
    const uint64_t len = common::BlockLength(length, block);
    uint32_t stored = GetLe32(table.data() + 4 * i);
    uint32_t actual = common::Crc32c(data->data() + off, len);
    if (stored != actual) {
      std::string what = fmt::format("{}: block {} (bytes [{}, {})) failed its CRC check (stored {:08x}, computed {:08x})",
                                     ChunkName(chunk_id, version), block, block * kBlockSizeBytes,
                                     block * kBlockSizeBytes + len, stored, actual);
      io_lock.unlock();
      MarkDamaged(chunk_id, version, what);
      data->clear();
      return common::DataLossError(what);
    }
    out->crcs[i] = stored;
  }
  return Status::Ok();
}

Result<std::vector<ChunkMeta>> ChunkStore::Stat(uint64_t chunk_id, uint64_t version) {
  std::vector<ChunkMeta> out;
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(chunk_id);
    if (it != index_.end()) {
      for (const auto& [v, entry] : it->second) {
        if (version != 0 && v != version) continue;
        out.push_back(MetaOf(chunk_id, v, entry));
        paths.push_back(FileOf(entry.folder, chunk_id, v, "chunk"));
      }
    }
    if (out.empty()) {
      if (version != 0 && it != index_.end() && !it->second.empty()) return FindLocked(chunk_id, version).status();
      return common::NotFoundError(fmt::format("chunk {:016x} is not stored here", chunk_id));
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    struct stat st {};
    if (out[i].damaged || ::stat(paths[i].c_str(), &st) == 0 || errno != ENOENT) continue;
    MarkDamaged(chunk_id, out[i].version, "its file is missing from disk");
    out[i].damaged = true;
  }
  return out;
}

Result<uint64_t> ChunkStore::Delete(uint64_t chunk_id, uint64_t version) {
  std::shared_ptr<Slot> slot = SlotFor(chunk_id);
  std::unique_lock<std::shared_mutex> io_lock(slot->io_mu);
  std::vector<std::pair<uint64_t, Entry>> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(chunk_id);
    if (it != index_.end()) {
      for (auto v = it->second.begin(); v != it->second.end();) {
        if (version == 0 || v->first == version) {
          victims.emplace_back(v->first, v->second);
          v = it->second.erase(v);
        } else {
          ++v;
        }
      }
      if (it->second.empty()) index_.erase(it);
    }
  }
  if (victims.empty()) {
    return common::NotFoundError(version == 0 ? fmt::format("chunk {:016x} is not stored here", chunk_id)
                                              : ChunkName(chunk_id, version) + " is not stored here");
  }
  uint64_t freed = 0;
  Status first_error;
  for (const auto& [v, entry] : victims) {
    Status s = io_.Unlink(FileOf(entry.folder, chunk_id, v, "chunk"));
    // Already gone (removed behind our back, then found by Stat): done.
    if (!s.ok() && s.code() != common::StatusCode::kNotFound && first_error.ok()) first_error = s;
    (void)io_.Unlink(FileOf(entry.folder, chunk_id, v, "damaged"));
    freed += entry.length + kChunkDataOffset;
  }
  RETURN_IF_ERROR(first_error);
  RETURN_IF_ERROR(io_.FsyncDir(DirOf(victims.front().second.folder, chunk_id)));
  return freed;
}

std::vector<ChunkMeta> ChunkStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ChunkMeta> out;
  for (const auto& [chunk_id, versions] : index_) {
    for (const auto& [version, entry] : versions) out.push_back(MetaOf(chunk_id, version, entry));
  }
  return out;
}

uint64_t ChunkStore::damaged_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& [chunk_id, versions] : index_) {
    for (const auto& [version, entry] : versions) n += entry.damaged;
  }
  return n;
}

uint64_t ChunkStore::chunk_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
}

std::vector<ChunkMeta> ChunkStore::TakeNewlyDamaged() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ChunkMeta> out;
  out.swap(newly_damaged_);
  return out;
}

void ChunkStore::GiveBackDamaged(const std::vector<ChunkMeta>& damaged) {
  std::lock_guard<std::mutex> lock(mu_);
  newly_damaged_.insert(newly_damaged_.begin(), damaged.begin(), damaged.end());
}

std::vector<DiskStats> ChunkStore::Disks() const {
  std::vector<DiskStats> out;
  for (const std::string& folder : options_.folders) {
    DiskStats d;
    d.path = folder;
    struct statvfs vfs {};
    if (::statvfs(folder.c_str(), &vfs) != 0) {
      d.healthy = false;
    } else {
      d.capacity_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
      d.used_bytes = static_cast<uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
      d.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    }
    out.push_back(d);
  }
  return out;
}

void ChunkStore::MarkDamaged(uint64_t chunk_id, uint64_t version, std::string_view reason) {
  int folder = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(chunk_id);
    if (it == index_.end()) return;
    auto v = it->second.find(version);
    if (v == it->second.end() || v->second.damaged) return;
    v->second.damaged = true;
    folder = v->second.folder;
    newly_damaged_.push_back(MetaOf(chunk_id, version, v->second));
  }
  spdlog::error("{} is damaged: {}", ChunkName(chunk_id, version), reason);
  auto fd = io_.Open(FileOf(folder, chunk_id, version, "damaged"), O_WRONLY | O_CREAT, 0644);
  if (fd.ok()) io_.Close(*fd);
}

}  // namespace dfs::chunkserver
