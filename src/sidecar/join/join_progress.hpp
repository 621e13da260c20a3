// Which branch counts a join actor's sidecar reports to the gateway while a group's branches
// arrive (PROTOCOL §4a, §7: "joined k of n"), so a job's progress rises with its branches while a
// 10,000-way fan-out still costs a few dozen gateway requests, not 10,000.
//
// The rule, per group and per sidecar process: the first branch this process stores, then at most
// one count per `interval` (the count stored at that moment), and always the branch that completes
// the group. A count is never reported after a higher one (workers storing branches of one group
// at once race), so the reports one process queues for a group rise. Replicas report on their
// own; the gateway ignores a count that would lower the job's progress.
//
// Memory: one entry per group this process stored a branch of, at most `max_groups` (when full,
// entries not reported for a minute go first, then all: the cost is an extra report).
//
// Threads: on_stored() may be called from every worker at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace asya::sidecar::join {

class JoinProgress {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kDefaultInterval{250};

  explicit JoinProgress(std::chrono::milliseconds interval = kDefaultInterval,
                        std::size_t max_groups = 4096);

  // A branch of `group` was stored; `stored` of its `count` branches are in the store now. Calls
  // `report()` when the rule above says this count is reported, under this object's lock (so
  // reports it queues keep the order of their counts), and returns whether it did.
  bool on_stored(std::string_view group, std::size_t stored, std::size_t count,
                 Clock::time_point now, const std::function<void()>& report);

  // Groups remembered (for tests).
  std::size_t groups() const;

 private:
  struct Entry {
    std::size_t reported = 0;
    Clock::time_point at;
  };
  void make_room(Clock::time_point now);

  std::chrono::milliseconds interval_;
  std::size_t max_groups_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> groups_;
};

// The body of POST /envelopes/{fanout_source_id(group)}/progress for a join's running count
// (PROTOCOL §7): status "received" at the join's index, "branches_joined" and "branches_total",
// and the message "joined <stored> of <count> branches of <source id>".
std::string join_progress_body(const std::vector<std::string>& actors, std::size_t join_index,
                               std::string_view source_id, std::size_t stored, std::size_t count);

}  // namespace asya::sidecar::join
