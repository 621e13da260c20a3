// Keeps the payload objects of branches waiting in a join store held (PROTOCOL §4a and §10
// "Lifetime").
//
// A branch whose payload is a reference is acknowledged once the join store has it, and may then
// wait there for its siblings far longer than a queue wait (up to ASYA_JOIN_TIMEOUT, or for ever
// without one). Its object is held by the branch's id; nothing releases that id before the group
// ends, but a hold that is never rewritten becomes an orphan after ASYA_PAYLOAD_ORPHAN_AGE, and
// branch 0's id is the envelope that fanned out, whose release may come while a group is
// published again. So while a group is not finished, every sidecar of its join actor rewrites the
// holds of its waiting reference branches every `interval` (payload::renewal_interval of
// ASYA_PAYLOAD_GRACE, as for an input in flight, hold_renewer.hpp). The list comes from the join
// store (JoinStore::held_branches, recorded by put_branch), not from memory: a sidecar that
// restarts, or another replica, goes on where a dead one stopped, with its first pass at start.
// When the group is finished the join releases those ids (JoinActor), so the objects are deleted
// after the grace period, also when the group timed out or failed.
//
// Rewrites use the hold key and record of payload/lifetime.hpp (holds/<id-hash>/<sha256>), so
// every sweeper, older ones too, honours them.
//
// While no replica of the join actor runs (all stopped, or scaled to zero with groups waiting),
// nothing rewrites: the holds age, and ASYA_PAYLOAD_ORPHAN_AGE must exceed that time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.hpp"
#include "payload/payload_store.hpp"
#include "sidecar/join/join_store.hpp"

namespace asya::sidecar::join {

// The id branch `index` of `group` travelled under: the envelope that fanned out for index 0,
// envelope::fanout_child_id(source, hop, index) for the others (PROTOCOL §4a).
std::string branch_id(std::string_view group, std::size_t index);

class JoinHolds {
 public:
  // Rewrites on its own thread, which it starts: one pass at once, then one every `interval`
  // (a tenth of it after a pass that failed). `joins` and `payloads` must outlive this.
  JoinHolds(JoinStore& joins, payload::PayloadStore& payloads, std::string actor,
            std::chrono::milliseconds interval);
  // Stops and joins the thread (a pass under way ends after its current page).
  ~JoinHolds();
  JoinHolds(const JoinHolds&) = delete;
  JoinHolds& operator=(const JoinHolds&) = delete;

  struct Pass {
    std::size_t rewritten = 0;  // holds written
    std::size_t failed = 0;     // holds the payload store refused (logged)
  };

  // One pass: rewrites the hold of every branch that joins.held_branches(actor) lists, reading
  // it a page at a time (the join store is not held while the payload store is written). An
  // Error when the join store could not be read. Blocking; the thread calls it, a test may too.
  Result<Pass> renew_all();

 private:
  void run();

  JoinStore& joins_;
  payload::PayloadStore& payloads_;
  const std::string actor_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace asya::sidecar::join
