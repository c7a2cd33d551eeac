// ChunkStore: the chunks of one chunkserver, on one or more data folders
// (one per disk), each chunk version checksummed per 64 KiB block.
//
// ON-DISK FORMAT (format 1; owned here)
//
//   DIR/dfs-folder                         node stamp, see node_id.h
//   DIR/chunks/XX/IIIIIIIIIIIIIIII.V.chunk one chunk version
//   DIR/chunks/XX/IIIIIIIIIIIIIIII.V.tmp   a version being built (never read;
//                                          deleted at start-up)
//   DIR/chunks/XX/IIIIIIIIIIIIIIII.V.damaged  marker: this version failed a
//                                          CRC check (survives restarts)
//   DIR/chunks/XX/IIIIIIIIIIIIIIII.V.delta a version being applied onto its
//                                          base (redo record; finished at
//                                          start-up)
//   where I.. is the chunk id in 16 lower-case hex digits, V the version in
//   decimal, XX the low byte of the chunk id in 2 hex digits (256 fan-out
//   directories so no directory holds millions of entries).
//
//   A .chunk file:
//     [0, 4096)      header: "DFSCHNK1" (8 bytes), le32 format (=1),
//                    le32 block size (=65536), le64 chunk id, le64 version,
//                    le32 CRC32C of bytes [0, 32); zeros up to 4096.
//     [4096, 8192)   CRC table: le32 CRC32C of block i at 4096 + 4 * i for
//                    i < ceil(length / 64 KiB); the rest is zero and ignored.
//     [8192, ...)    the data; the chunk length is file size - 8192. The last
//                    block may be short; its CRC covers only its bytes.
//   A .tmp or .delta of a version built as a delta has the same layout, holds
//   the full CRC table but only the blocks written (the rest is a hole), and
//   at 1024 a delta record: "DFSDELT1", le64 base version, le64 length,
//   128-byte bitmap of the blocks it holds (bit i = byte i/8, 1 << i%8),
//   le32 CRC32C of the record before it.
//   Data starts page-aligned so reads and writes stay aligned to the page cache.
//
// ATOMICITY
//   - A new version (a write whose version is not stored yet, built from
//     `base_version` or from empty, or a replica pulled from a peer) is built
//     in a .tmp file: the base's CRC table as stored (so a bad block stays
//     detectable), the stream's data, and at commit the base's data where
//     the stream did not write; then (durable writes) fdatasync, rename
//     .tmp -> .chunk, fsync the directory, unlink the older versions, fsync
//     the directory. A crash before the rename leaves the old version (the
//     .tmp is deleted at start-up); after it, the new one (leftover older
//     versions are deleted at start-up, finishing the switch). The base's
//     data is copied so (up to 64 MiB) only when the stream rewrote at least
//     half of it or it is under 1 MiB; otherwise the new version is a delta:
//   - A delta build writes only the blocks the stream touches to the .tmp
//     (a block written in part is first filled from the base). Commit writes
//     the delta record, fdatasyncs, renames .tmp -> .delta and fsyncs the
//     directory: from then on the new version is decided. It then writes
//     the delta's blocks, CRC table, length and header into the base file in
//     place, fdatasyncs it, renames it to the new version's .chunk and
//     deletes the .delta. A crash during that leaves the .delta, and
//     start-up applies it again (each step rewrites the same bytes). A base
//     that cannot be patched is deleted with its .delta: this copy is lost
//     (listed damaged until restart, and meta re-replicates the chunk),
//     never left as a mix of two versions under the old name, whose blocks
//     would all pass their CRC checks.
//     Delta commits always sync: a power cut must not leave that mix either.
//   - Writes to a version that is already stored (the same writer's further
//     streams under one lease) go in place: data first, then the CRCs of the
//     touched blocks. A crash between the two leaves blocks whose CRC does
//     not match: the chunk is then reported damaged on read (and meta
//     re-replicates it) — never returned as good data. We chose this over a
//     data journal (which would double every byte written) because a chunk
//     version in the middle of a write is not committed in meta anyway.
//   - Durability: a durable write (WriteHeader.durable) returns only after
//     fdatasync of the file (and, for a new version, the rename and the
//     directory fsync). A non-durable write skips every sync: after a power
//     cut (not a process crash) it may be lost, or its blocks read as
//     damaged; kill -9 loses nothing the page cache holds.
//   - Large aligned data writes go to the disk with O_DIRECT, the rest
//     through the page cache (direct_writer.h); fdatasync covers both.
//   - The space a write stores bytes in is reserved (fallocate KEEP_SIZE)
//     before any byte is written, so a full disk fails the write with
//     RESOURCE_EXHAUSTED before it changes anything; a failing .tmp build is
//     deleted. Zeros are not stored where they can be a hole instead: the gap
//     before a write past the end, whole zero blocks written (past the end,
//     or over stored bytes: those are punched, in a delta when it is
//     applied to the base), and the base's zero blocks a full copy does not
//     hold. So a sparse chunk takes only its data on every replica, and a
//     range a client punches (it writes zeros) frees its room; a later
//     write into a hole reserves it then.
//
// CONCURRENCY: writers of one chunk are serialized (a ChunkWriter holds the
// chunk's writer lock for its life); different chunks proceed in parallel.
// Readers take the chunk's I/O lock shared, and in-place writes take it
// exclusively per applied message, so a reader never sees a half-applied
// message (which would look like a CRC mismatch).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chunkserver/store/direct_writer.h"
#include "chunkserver/store/file_io.h"
#include "common/result.h"
#include "common/thread_annotations.h"

namespace dfs::chunkserver {

inline constexpr uint64_t kChunkHeaderBytes = 4096;
inline constexpr uint64_t kChunkDataOffset = 8192;
inline constexpr int64_t kMaxWriteMessageBytes = 1 << 20;  // data per Write message

struct ChunkMeta {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  uint64_t length = 0;
  bool damaged = false;
  int64_t mtime_unix_ms = 0;
};

struct DiskStats {
  std::string path;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;       // f_blocks - f_bfree
  uint64_t available_bytes = 0;  // f_bavail: outside the filesystem's reserve
  bool healthy = true;
};

// What a Write stream (or a replication) asks for.
struct WriteSpec {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  uint64_t base_version = 0;  // 0 = build a new version from empty
  // Build `version` from empty in a .tmp even if it is stored (replication
  // replacing a damaged copy).
  bool replace = false;
  // How long to wait for another writer of the chunk to finish.
  int64_t lock_timeout_ms = 60'000;
};

// Blocks read and verified by ChunkStore::ReadBlocks.
struct BlockRead {
  uint64_t offset = 0;          // block-aligned offset of the first byte
  std::vector<uint32_t> crcs;   // stored CRC per block, verified
  uint64_t chunk_length = 0;
};

class ChunkStore;

namespace internal {
// Per-chunk locks.
struct ChunkSlot {
  std::timed_mutex writer_mu;  // held by the chunk's ChunkWriter for its life
  std::shared_mutex io_mu;    // exclusive while stored bytes of the chunk change
};
}  // namespace internal

// One write stream into one chunk version. Holds the chunk's writer lock
// until destroyed. Destroying it without Commit drops a version being built
// (.tmp); data already applied in place stays.
class ChunkWriter {
 public:
  ~ChunkWriter();
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Applies `data` at chunk offset `offset`. `piece_crcs` are the CRC32C of
  // the pieces of the range cut at 64 KiB block boundaries; each is verified
  // before a byte is used. A write past the current end first zero-fills the
  // gap. Errors: INVALID_ARGUMENT (range outside the chunk, wrong number of
  // CRCs), DATA_LOSS (a piece does not match its CRC; or the stored block a
  // partial write patches fails its CRC: the chunk is marked damaged),
  // RESOURCE_EXHAUSTED (disk full: this call changed nothing, and an
  // in-place stream's appended bytes are cut off again, back to the length
  // the stream started from), other I/O errors.
  // Blocks on disk I/O.
  common::Status Write(uint64_t offset, std::span<const std::byte> data,
                       std::span<const uint32_t> piece_crcs);
  // Sets the length to exactly `length` (shrinking, or growing with zeros).
  common::Status Truncate(uint64_t length);
  // Makes the version visible (installs a new version atomically) and, if
  // `durable`, fdatasyncs it first (a delta always syncs). Returns the chunk
  // length. Errors: ABORTED (the base was deleted during a delta build),
  // I/O errors (RESOURCE_EXHAUSTED when copying the base meets a full
  // disk). The writer is finished afterwards (further calls fail with
  // FAILED_PRECONDITION).
  common::Result<uint64_t> Commit(bool durable);

  uint64_t length() const { return length_; }
  // After Commit: what the version's data takes on disk (holes take
  // nothing; the header and CRC table not counted); nullopt when unknown.
  std::optional<uint64_t> stored_bytes() const { return stored_bytes_; }
  bool building_new_version() const { return building_; }
  // The stored version a new version is built from (see StartWrite); 0 in
  // place or from nothing.
  uint64_t built_from() const { return built_from_; }

 private:
  friend class ChunkStore;
  ChunkWriter(ChunkStore* store, std::shared_ptr<internal::ChunkSlot> slot,
              std::unique_lock<std::timed_mutex> lock);

  // Applies verified bytes at `offset` <= length_.
  common::Status ApplyVerified(uint64_t offset, std::span<const std::byte> data,
                               std::span<const uint32_t> piece_crcs);
  // ApplyVerified, but whole zero blocks become holes instead of written
  // zeros: at or past the end by ZeroExtend (a replica pulled from a peer,
  // a version built from empty, a writer of zeros), over stored bytes by
  // PunchBlock (a punched range of a file, zeros written over data).
  common::Status ApplyLeavingHoles(uint64_t offset, std::span<const std::byte> data,
                                   std::span<const uint32_t> piece_crcs);
  // Makes whole block at `at` (< length_) zeros by punching it, with a zero
  // block's CRC; writes zeros where the file system cannot punch. In place,
  // punch then CRC, as a write's data then CRC (see ATOMICITY).
  common::Status PunchBlock(uint64_t at);
  // Extends to `target` with zeros: a hole from the first whole block on.
  common::Status ZeroExtend(uint64_t target);
  // Makes length_ the length readers of a stored (in-place) version see.
  void PublishLength();
  // Delta builds: copies what the base holds of `block` into the .tmp
  // (nothing when the .tmp already holds it, or the stream cut it off).
  common::Status Materialize(uint64_t block);
  void MarkWritten(uint64_t first_block, uint64_t end_block);
  // Fills every block the .tmp lacks from the base: the build is then an
  // ordinary full copy.
  common::Status FillFromBase();
  common::Result<uint64_t> CommitDelta();
  // Sets stored_bytes_ from the committed version's file.
  void NoteStoredBytes(int fd, const std::string& path);
  // The crash hook at `step`; a simulated crash leaves the files as they are.
  common::Status Crash(std::string_view step);
  // Lists this finished version in the index in place of the older ones;
  // returns those.
  std::vector<uint64_t> Install();
  common::Status ApplyLocked(uint64_t offset, std::span<const std::byte> data,
                             std::span<const uint32_t> piece_crcs);

  ChunkStore* store_;
  std::shared_ptr<internal::ChunkSlot> slot_;
  std::unique_lock<std::timed_mutex> writer_lock_;
  uint64_t chunk_id_ = 0;
  uint64_t version_ = 0;
  int folder_ = 0;
  bool building_ = false;   // a .tmp is being built
  uint64_t built_from_ = 0;
  bool finished_ = false;
  bool abandoned_ = false;  // a crash point fired: leave the files as they are
  std::string path_;        // the file written (.tmp or .chunk)
  int fd_ = -1;
  DirectWriter data_;       // how data bytes reach fd_
  uint64_t length_ = 0;
  uint64_t start_length_ = 0;  // length when the stream started (in place)
  // Data bytes [writeback_begin_, writeback_end_) written since writeback
  // was last started (see ApplyLocked).
  uint64_t writeback_begin_ = UINT64_MAX;
  uint64_t writeback_end_ = 0;
  // A delta build (see ATOMICITY): the base's file, its length, the lowest
  // length the stream cut the version to (base bytes below it are still
  // the version's), and the blocks the .tmp holds.
  bool delta_ = false;
  int base_fd_ = -1;
  std::string base_path_;
  uint64_t base_length_ = 0;
  uint64_t cut_ = 0;
  std::vector<bool> held_;
  std::optional<uint64_t> stored_bytes_;
};

class ChunkStore {
 public:
  struct Options {
    std::vector<std::string> folders;  // data folders, one per disk; at least one
    FileIo* io = nullptr;              // null = PosixFileIo::Get()
    // Test hook called between the steps of a version switch with the step's
    // name ("tmp_written", "before_rename", "after_rename", "after_unlink_old";
    // delta commits: "tmp_written", "before_rename", "delta_saved",
    // "delta_applied").
    // A non-OK return simulates a crash at that point: the operation stops
    // and leaves the files exactly as they are.
    std::function<common::Status(std::string_view)> crash_hook;
    // Large aligned data writes with O_DIRECT (direct_writer.h); off: every
    // write through the page cache.
    bool direct_io = true;
  };

  // Opens (creating the chunks/ directories) and recovers: deletes .tmp
  // files, finishes interrupted version switches, checks every header (a bad
  // one is listed as damaged). Errors: I/O errors creating or scanning.
  static common::Result<std::unique_ptr<ChunkStore>> Open(Options options);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Starts a write (see WriteSpec). Blocks while another writer holds the
  // chunk, up to spec.lock_timeout_ms (then ABORTED: the chunk is busy).
  // Errors: INVALID_ARGUMENT (version 0, base > version),
  // FAILED_PRECONDITION (a newer version is stored: stale; the base version
  // is not stored and no abandoned version between it and this one is: see
  // StartWrite), NOT_FOUND (base_version given but the chunk is
  // unknown), I/O errors.
  common::Result<std::unique_ptr<ChunkWriter>> StartWrite(const WriteSpec& spec);

  // Reads up to `max_blocks` whole blocks of (chunk_id, version) starting at
  // block `first_block` into `*data` (resized), verifying each stored CRC.
  // Errors: NOT_FOUND (unknown chunk), FAILED_PRECONDITION (stale or future
  // version), INVALID_ARGUMENT (first block past the end), DATA_LOSS naming
  // chunk and block (the version is marked damaged and queued for meta).
  // `readahead_blocks` says how many blocks after these the caller reads
  // next: the kernel starts fetching them while these are sent, since each
  // call opens the file afresh and so gets no readahead of its own.
  common::Status ReadBlocks(uint64_t chunk_id, uint64_t version, uint64_t first_block,
                            uint64_t max_blocks, std::string* data, BlockRead* out,
                            uint64_t readahead_blocks = 0);

  // Looks up a stored version. NOT_FOUND / FAILED_PRECONDITION as ReadBlocks.
  common::Result<ChunkMeta> Find(uint64_t chunk_id, uint64_t version) const;
  // The stored version a read of `version` is served from (as Find): that
  // one, or when it is gone the newest stored one if newer. A newer version is a write meta has
  // not committed (yet, or ever: its writer died), built from `version`, so
  // it holds every byte of it below meta's length, plus writes nobody
  // acknowledged, which a reader may see as it may see any write in flight.
  // Errors as Find.
  common::Result<ChunkMeta> FindReadable(uint64_t chunk_id, uint64_t version) const;
  // Versions of a chunk (all of them when version is 0). NOT_FOUND if none.
  // A version whose file is gone from disk (removed behind our back) is
  // marked damaged here, so `dfsctl fsck` and meta learn of it.
  common::Result<std::vector<ChunkMeta>> Stat(uint64_t chunk_id, uint64_t version);
  // Deletes one version (or all when 0); returns the bytes freed. NOT_FOUND.
  common::Result<uint64_t> Delete(uint64_t chunk_id, uint64_t version);
  // Every stored version, ordered by chunk id then version.
  std::vector<ChunkMeta> List() const;
  uint64_t chunk_count() const;
  // Data bytes written with O_DIRECT since start-up.
  uint64_t direct_bytes_written() const { return direct_bytes_.load(std::memory_order_relaxed); }
  // Whether large writes still go with O_DIRECT (Options::direct_io, until a
  // data folder's file system refused it).
  bool direct_io() const { return direct_io_.load(std::memory_order_relaxed); }
  // Stored versions marked damaged (they stay until meta has them deleted).
  uint64_t damaged_count() const;
  // Damaged versions found since the last call (for the next heartbeat);
  // GiveBackDamaged re-queues them when the heartbeat failed.
  std::vector<ChunkMeta> TakeNewlyDamaged();
  void GiveBackDamaged(const std::vector<ChunkMeta>& damaged);
  // Capacity and use of each data folder's filesystem (statvfs).
  std::vector<DiskStats> Disks() const;
  // Marks a version damaged (persisted marker, queued for meta).
  void MarkDamaged(uint64_t chunk_id, uint64_t version, std::string_view reason);

  // The file of a stored version (for tests that corrupt it on purpose).
  std::string TEST_PathOf(uint64_t chunk_id, uint64_t version) const;

 private:
  friend class ChunkWriter;
  struct Entry {
    int folder = 0;
    uint64_t length = 0;
    bool damaged = false;
    int64_t mtime_unix_ms = 0;
  };
  using Slot = internal::ChunkSlot;

  explicit ChunkStore(Options options);
  common::Status Recover();
  common::Status RecoverFolder(int folder);
  // Finishes (or drops) an interrupted delta commit found at start-up.
  void RecoverDelta(int folder, uint64_t chunk_id, uint64_t version);
  // Writes the delta at `delta_fd` (its record decoded) into the base file
  // and syncs it; the caller renames it.
  common::Status ApplyDelta(int delta_fd, const std::string& delta_path, uint64_t chunk_id, uint64_t version,
                            uint64_t length, const std::vector<bool>& held, const std::string& base_path);
  std::shared_ptr<Slot> SlotFor(uint64_t chunk_id);
  std::string DirOf(int folder, uint64_t chunk_id) const;
  std::string FileOf(int folder, uint64_t chunk_id, uint64_t version, std::string_view ext) const;
  common::Status CrashPoint(std::string_view step);
  int PickFolder() const;
  common::Result<ChunkMeta> FindLocked(uint64_t chunk_id, uint64_t version) const REQUIRES(mu_);
  static ChunkMeta MetaOf(uint64_t chunk_id, uint64_t version, const Entry& e);

  const Options options_;
  FileIo& io_;
  std::atomic<bool> direct_io_;
  std::atomic<uint64_t> direct_bytes_{0};
  mutable std::mutex mu_;  // guards the members below; never held during I/O
  std::map<uint64_t, std::shared_ptr<Slot>> slots_ GUARDED_BY(mu_);
  std::map<uint64_t, std::map<uint64_t, Entry>> index_ GUARDED_BY(mu_);
  std::vector<ChunkMeta> newly_damaged_ GUARDED_BY(mu_);
};

// Whether every byte is zero (what a hole reads as).
bool IsZero(std::span<const std::byte> bytes);

// Header bytes of a chunk version file (exposed for tests of the format).
std::string EncodeChunkHeader(uint64_t chunk_id, uint64_t version);
// OK if `header` (at least 36 bytes) is a valid header naming chunk_id/version.
common::Status CheckChunkHeader(std::string_view header, uint64_t chunk_id, uint64_t version);

}  // namespace dfs::chunkserver
