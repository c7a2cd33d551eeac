// DirPrefetch: listing pages the mount holds before the kernel asks for
// them: the first page of directories a tree walk is about to visit,
// fetched in the background while the walker is busy with the directory
// before them, and the rest of a page meta returned beyond what the
// kernel's buffer took.
//
// Why: find, du, os.walk, rsync and git status list directory after
// directory, and each listing is a meta round trip the walker waits for
// (~0.7 ms here for a directory of 100 files; a tree of 100 such
// directories took ~70 ms, local ext4 5.5 ms). And a kernel READDIRPLUS
// buffer takes ~200 entries, so a directory of 2,000 was ten round trips
// where one meta call of kPageEntries costs little more than one of 200.
//
// When to fetch: only once a walk shows itself. Listed() remembers the
// subdirectories of every listing page; a listing of one of them (a walker
// going down) queues that directory's first look_ahead subdirectories, then
// the look_ahead siblings that follow it in its parent's listing, up to
// max_queue waiting. The window keeps what a walker that stays long in one
// subtree wastes small: pages it reaches too late expire unused, and each
// listing fetches at most 2 x look_ahead; a walker moving on finds the
// window already fetched and adds about one page per directory.
// A single `ls -l` or a listing of an unrelated directory fetches nothing.
// Keep() holds a page the caller fetched itself.
//
// Staleness is what DirListings allows: a page is used at most ttl_ms
// after its fetch, only while this mount started no mutation since the
// fetch and none was in flight when it was sent (the stamps agree), and
// only for the credentials it was fetched for; and, with `remote`, only
// while no notice of another client's change to the directory or to an
// inode it serves came since (RemoteChanges). The caller tells the kernel
// to keep its entries for what is left of ttl_ms. A held page serves every
// call that continues it (from where it starts, or from the cookie of one
// of its entries) until it expires or another page of the directory
// replaces it.
//
// Memory: at most max_pages pages of at most kPageEntries entries; the
// oldest fetch goes first. Threads: `threads` workers run the fetches.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "fuse/client/caller.h"
#include "fuse/client/remote_changes.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class DirPrefetch {
 public:
  struct Options {
    int64_t ttl_ms = 0;  // 0 turns prefetching off (the kernel's attr_timeout)
    size_t max_pages = 64;
    size_t max_queue = 128;
    size_t look_ahead = 16;
    size_t threads = 2;
  };
  struct Fetched {
    pb::ReadDirReply page;  // from cookie 0, with attributes
    uint64_t stamp = 0;     // this mount's mutation count when sent (none in flight)
    uint64_t epoch = 0;     // the AttrOverlay epoch before it was sent
    uint64_t remote = 0;    // the RemoteChanges stamp before it was sent
  };
  // Fetches the first page of `dir` for the credentials; nullopt when it may
  // not be kept (a change of this mount in flight, or the call failed).
  // Must not block for long: it runs on a worker the destructor joins.
  using Fetch = std::function<std::optional<Fetched>(const Caller& c, uint64_t dir)>;

  // `remote` (may be null: no notices) outlives this.
  DirPrefetch(Options options, const common::Clock& clock, Fetch fetch, const RemoteChanges* remote = nullptr);
  // Drops what is queued and joins the workers (after their running fetch).
  ~DirPrefetch();
  DirPrefetch(const DirPrefetch&) = delete;
  DirPrefetch& operator=(const DirPrefetch&) = delete;

  // A page of `dir`'s listing went to the kernel for the caller `c`.
  void Listed(const Caller& c, uint64_t dir, const pb::ReadDirReply& page);
  // Holds `fetched`, a page of `dir` from `start_cookie` fetched for `c`
  // (with attributes, not packed), for the calls that continue it.
  void Keep(const Caller& c, uint64_t dir, uint64_t start_cookie, Fetched fetched);

  // Meta's newer word on an inode (a lookup, getattr or open reply)
  // replaces its attributes in held pages, as in DirListings, so a page
  // never answers older than what this mount has seen since: kept unless
  // its ctime is older.
  void Refresh(const pb::Attr& attr);
  // Drops every held page that names `ino` (meta says it has no name left).
  void DropPagesNaming(uint64_t ino);

  struct Hit {
    pb::ReadDirReply page;
    uint64_t epoch = 0;
    double valid_s = 0;  // what is left of ttl_ms
  };
  // The entries of a held page of `dir` after `cookie` (all of them when
  // the page starts at `cookie`), with its eof, when it may be used now (see
  // above): `stamp` is this mount's mutation count now. Nothing when no page
  // continues from `cookie`, or none of it is left and the directory goes
  // on. For cookie 0, a fetch of `dir` still running is waited for, up to
  // kWaitInFlightMs. A page that may not be used is dropped. At most
  // `max_entries` come (the rest stay held; eof only with the last): a
  // kernel buffer takes ~100 names, and a page holds up to kPageEntries.
  std::optional<Hit> Take(const Caller& c, uint64_t dir, uint64_t cookie, uint64_t stamp,
                          uint32_t max_entries = UINT32_MAX);

  struct Stats {
    uint64_t fetched = 0;  // pages fetched ahead and kept
    uint64_t served = 0;   // calls answered by Take
  };
  Stats stats() const;

  static constexpr int64_t kWaitInFlightMs = 100;
  // Entries a Fetch asks for, and what a caller should ask meta for.
  static constexpr uint32_t kPageEntries = 512;

 private:
  struct Held {
    Fetched fetched;
    Caller caller;
    uint64_t start_cookie = 0;
    int64_t expires_ms = 0;
  };
  struct Job {
    uint64_t dir = 0;
    Caller caller;
  };
  static constexpr size_t kMaxKnownParents = 256;

  int64_t NowMs() const { return clock_.MonotonicNs() / 1'000'000; }
  void Queue(const Caller& c, uint64_t dir) REQUIRES(mu_);
  void Hold(uint64_t dir, Held held) REQUIRES(mu_);
  void Drop(uint64_t dir) REQUIRES(mu_);
  // held_order_'s oldest goes, with its index entries.
  void DropOldest() REQUIRES(mu_);
  void Unindex(uint64_t dir, const Held& held) REQUIRES(mu_);
  void Work();

  const Options options_;
  const common::Clock& clock_;
  const Fetch fetch_;
  const RemoteChanges* const remote_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // a job queued, or stopping
  std::condition_variable landed_cv_;   // a fetch ended
  bool stopping_ GUARDED_BY(mu_) = false;
  // Subdirectories of recent listings, in listing order, and each one's parent.
  std::unordered_map<uint64_t, std::vector<uint64_t>> children_ GUARDED_BY(mu_);
  std::list<uint64_t> parents_order_ GUARDED_BY(mu_);  // oldest first
  std::unordered_map<uint64_t, uint64_t> parent_of_ GUARDED_BY(mu_);
  std::deque<Job> queue_ GUARDED_BY(mu_);
  std::unordered_set<uint64_t> pending_ GUARDED_BY(mu_);  // queued or running
  std::unordered_map<uint64_t, Held> held_ GUARDED_BY(mu_);
  std::list<uint64_t> held_order_ GUARDED_BY(mu_);  // oldest fetch first
  // ino -> the directories whose held page lists it (Refresh, DropPagesNaming).
  std::unordered_multimap<uint64_t, uint64_t> dirs_of_ino_ GUARDED_BY(mu_);
  Stats stats_ GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace dfs::fuse
