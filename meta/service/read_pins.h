// ReadPins: the leader's memory of which client sessions may still read a
// regular file that has no name left (an orphan, meta/state_machine/schema.h)
// through a lazy read open - one that wrote nothing to the log
// (OpenRequest.lazy_read) - and so when an orphan may be freed.
//
// Why it is safe: a client adds a pin before it sends the open and reports
// its pins (KeepAliveRequest) after it received the reply carrying
// `pin_epoch`, so a report with epoch e holds every pin added before the
// leader sent e. An orphan first seen at epoch E (after the op that orphaned
// it applied; no lazy open is answered for a file without a name) is freed
// once every session that may pin has reported with an epoch newer than E and
// without it. A leader knows nothing of its predecessors: the sessions it
// takes over pin everything until they report, and epochs carry the leader's
// incarnation in their top 32 bits so another leader's count for nothing.
//
// Thread-safety: all methods lock `mu_`; callable from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "proto/meta.pb.h"

namespace dfs::meta {

class ReadPins {
 public:
  ReadPins() { Reset(); }

  // Forgets every session and orphan and takes a new random incarnation
  // (a new leadership).
  void Reset();
  // A session from the replicated state this leader did not see open. One
  // that reports pins (`reports_pins`, kept in the log) pins everything
  // until its first report to this leader; one that does not, nothing.
  void TookOver(uint64_t client_id, bool reports_pins);
  // A session opened through this leader.
  void Opened(uint64_t client_id, bool reports_pins);
  // A KeepAlive of a known session (others are ignored).
  void Reported(const pb::KeepAliveRequest& report);
  void Closed(uint64_t client_id);
  // Whether a lazy open may be answered for `client_id`: a live session
  // whose pins this leader hears about.
  bool MayPin(uint64_t client_id);
  // The epoch a KeepAliveReply carries now.
  uint64_t Epoch();
  // Of `orphans`, those no session may still read. Records when the others
  // were first seen, then advances the epoch.
  std::vector<uint64_t> Freeable(const std::vector<uint64_t>& orphans);
  // The orphans a FreeOrphansOp freed.
  void Freed(const std::vector<uint64_t>& inos);

 private:
  struct Session {
    bool unknown = false;        // taken over, not heard from yet
    bool reports = false;        // sends read_pins (may pin)
    uint32_t epoch = 0;          // counter of its newest report of this leader
    std::vector<uint64_t> pins;  // sorted
  };

  std::mutex mu_;  // guards everything below; leaf lock
  uint32_t incarnation_ = 0;
  uint32_t counter_ = 1;
  std::map<uint64_t, Session> sessions_;
  std::map<uint64_t, uint32_t> first_seen_;  // orphan -> counter when first seen
};

}  // namespace dfs::meta
