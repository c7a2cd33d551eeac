// DirListings: whole listings (names and attributes) of the directories
// this mount looks names up in one by one, so that the next lookups and
// getattrs there are answered without a round trip each ("statahead").
//
// Why: a stat loop, git status, make or rsync look up file after file by
// name, and once the kernel's entry/attribute timeouts have passed each
// lookup is one meta round trip (~0.25 ms here; MooseFS answers a stat in
// ~0.17 ms). A readdirplus page of 2,048 entries costs about as much as ten
// lookups. After `trigger_lookups` lookups in one directory that meta had to
// answer, the caller fetches the listing (MetaClient::FetchListing) and
// later lookups of names in it are answered from here.
//
// Staleness is what the kernel's own caches allow: a listing answers for the
// attribute timeout counted from the fetch, and the kernel is told to keep
// such an answer only for what is left of it. A listing is only ever used
// while this mount has started no mutation since the fetch, and none was in
// flight when it was sent (the caller passes `stamp`s that say so), so this
// mount always sees its own changes; and, with `remote`, only while no
// notice of another client's change to the directory came since, and an
// entry only while none came of its inode (RemoteChanges). Names not in a listing are asked of
// meta (a name another client created is never hidden). A listing that did
// not pay for itself (few answers for its pages) makes the next fetch of
// that directory wait for more lookups; a directory with more than
// `max_entries` is not listed for a minute.
//
// Memory: at most `max_total_entries` entries in all (about 250 bytes
// each), in at most `max_dirs` listings; the oldest fetch goes first. A
// walk that visits many directories in turn (stat of d0/f, d1/f, ... d99/f)
// keeps them all: too few slots made every listing go before its second use.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "fuse/client/remote_changes.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class DirListings {
 public:
  struct Options {
    int64_t ttl_ms = 0;  // 0 turns listings off (the kernel's attr_timeout)
    uint32_t trigger_lookups = 4;
    uint32_t max_trigger_lookups = 4096;
    size_t max_entries = 16384;  // per directory
    size_t max_total_entries = 65536;
    size_t max_dirs = 1024;
    uint32_t page_entries = 2048;  // entries per ReadDirPlus call of a fetch
  };
  // `remote` (may be null: no notices) outlives this.
  DirListings(Options options, const common::Clock& clock, const RemoteChanges* remote = nullptr);
  DirListings(const DirListings&) = delete;
  DirListings& operator=(const DirListings&) = delete;

  const Options& options() const { return options_; }

  // Meta answered a lookup of a name in `dir` (found). True when the caller
  // should fetch the listing now; the directory is then marked in flight
  // and the caller must end with Put or Abandon.
  bool NoteLookup(uint64_t dir);
  // A complete listing of `dir`, fetched with every page sent after `stamp`
  // was taken; `epoch` is the AttrOverlay epoch and `remote` the
  // RemoteChanges stamp noted before the first page.
  void Put(uint64_t dir, std::vector<pb::DirEntry> entries, uint64_t stamp, uint64_t epoch, uint64_t remote = 0);
  // The fetch failed (too_big: `dir` has more than max_entries).
  void Abandon(uint64_t dir, bool too_big);
  // Meta's newer word on an inode (a lookup, getattr or open reply)
  // replaces a listed one, so a listing never answers older than what this
  // mount has seen since: after an open found the file changed, the kernel
  // asks again and must get the new size. Kept unless its ctime is older.
  void Refresh(const pb::Attr& attr);
  // Drops every listing that names `ino`: meta says it has no name left
  // (another mount removed it), so those listings are stale.
  void DropListingsOf(uint64_t ino);
  // Meta answered a lookup of `name` in `dir` with `ino` (0: no such
  // name). A listing of `dir` that names another inode there, or one that
  // is gone, is stale: it goes. (The kernel looks a name up again after
  // meta told it the entry it held is gone, and must not find it here.)
  void Answered(uint64_t dir, std::string_view name, uint64_t ino);

  struct Hit {
    pb::Attr attr;
    double valid_s = 0;   // what is left of the timeout
    uint64_t epoch = 0;   // the fetch's AttrOverlay epoch
  };
  // `name` in a listing of `dir` younger than the timeout whose stamp equals
  // `stamp` (this mount's mutation count now).
  std::optional<Hit> Find(uint64_t dir, std::string_view name, uint64_t stamp);
  // The inode in any such listing.
  std::optional<Hit> FindIno(uint64_t ino, uint64_t stamp);

  // Listings fetched and put here, fetches abandoned (a change of this
  // mount in flight, an error, too many entries), and lookups and getattrs
  // answered from a listing. Monotonic.
  struct Stats {
    uint64_t fetched = 0, abandoned = 0, served = 0;
  };
  Stats stats() const;

  size_t TEST_Listings() const;

 private:
  struct Listing {
    uint64_t stamp = 0, epoch = 0, remote = 0;
    int64_t expires_ms = 0;
    size_t pages = 1;
    uint64_t hits = 0;
    std::unordered_map<std::string, pb::Attr> by_name;
    std::unordered_map<uint64_t, pb::Attr*> by_ino;
    size_t entries = 0;  // by_name.size(), for the total
  };
  struct DirState {
    uint32_t lookups = 0;        // meta answers since the window started
    int64_t window_start_ms = 0;
    uint32_t trigger = 0;        // lookups that start a fetch
    bool in_flight = false;
    int64_t no_listing_until_ms = 0;
    int64_t last_used_ms = 0;
  };
  static constexpr size_t kMaxDirStates = 1024;  // beyond it, idle ones are swept
  static constexpr int64_t kTooBigPauseMs = 60'000;

  int64_t NowMs() const { return clock_.MonotonicNs() / 1'000'000; }
  // Drops `it`'s listing, and makes the directory's next fetch wait for more
  // lookups when this one answered too few.
  void Retire(std::unordered_map<uint64_t, Listing>::iterator it) REQUIRES(mu_);
  // The listing of `dir` if usable now; else retires it and returns null.
  Listing* Usable(uint64_t dir, uint64_t stamp, int64_t now) REQUIRES(mu_);

  const Options options_;
  const common::Clock& clock_;
  const RemoteChanges* const remote_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Listing> listings_ GUARDED_BY(mu_);
  std::list<uint64_t> order_ GUARDED_BY(mu_);  // listed directories, oldest fetch first
  size_t total_entries_ GUARDED_BY(mu_) = 0;
  std::unordered_map<uint64_t, DirState> dirs_ GUARDED_BY(mu_);
  Stats stats_ GUARDED_BY(mu_);
  // ino -> the listed directories that hold it, so FindIno and Refresh
  // (every meta reply) do not visit every listing.
  std::unordered_multimap<uint64_t, uint64_t> dirs_of_ino_ GUARDED_BY(mu_);
  // The listed directories holding `ino` (copied: Usable may retire them).
  std::vector<uint64_t> DirsOf(uint64_t ino) const REQUIRES(mu_);
};

}  // namespace dfs::fuse
