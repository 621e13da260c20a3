#include "sidecar/join/join_progress.hpp"

#include <fmt/format.h>

#include "envelope/envelope.hpp"
#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar::join {

JoinProgress::JoinProgress(std::chrono::milliseconds interval, std::size_t max_groups)
    : interval_(interval), max_groups_(std::max<std::size_t>(max_groups, 1)) {}

bool JoinProgress::on_stored(std::string_view group, std::size_t stored, std::size_t count,
                             Clock::time_point now, const std::function<void()>& report) {
  std::lock_guard lock(mutex_);
  const bool completes = stored >= count;
  auto it = groups_.find(std::string(group));
  if (it != groups_.end()) {
    if (stored <= it->second.reported) return false;  // a higher count was reported already
    if (!completes && now - it->second.at < interval_) return false;
  } else {
    make_room(now);
    it = groups_.emplace(std::string(group), Entry{}).first;
  }
  report();
  // Kept after the group completed too, so a racing worker's lower count is not reported after.
  it->second = Entry{stored, now};
  return true;
}

std::size_t JoinProgress::groups() const {
  std::lock_guard lock(mutex_);
  return groups_.size();
}

void JoinProgress::make_room(Clock::time_point now) {
  if (groups_.size() < max_groups_) return;
  // Groups completed by another replica, or abandoned, are never erased by on_stored.
  std::erase_if(
      groups_, [&](const auto& entry) { return now - entry.second.at >= std::chrono::minutes(1); });
  if (groups_.size() >= max_groups_) groups_.clear();
}

std::string join_progress_body(const std::vector<std::string>& actors, std::size_t join_index,
                               std::string_view source_id, std::size_t stored, std::size_t count) {
  std::string out = progress_body(
      actors, join_index, "received",
      fmt::format("joined {} of {} branches of {}", stored, count, source_id), std::nullopt);
  out.pop_back();  // the closing brace: the join's members follow
  out += fmt::format(",\"branches_joined\":{},\"branches_total\":{}}}", stored, count);
  return out;
}

}  // namespace asya::sidecar::join
