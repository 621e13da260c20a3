#include "gateway/store/cancellation_log.hpp"

#include <algorithm>

#include "gateway/store/job_document.hpp"

namespace asya::gateway {

Status log_cancellation(StorageBackend& backend, CancellationPruning& pruning,
                        const std::string& job_id, Clock::time_point now) {
  const std::int64_t now_ms = to_ms(now);
  std::optional<std::int64_t> prune_before;
  std::int64_t last = pruning.last_pruned_ms.load();
  if (now_ms - last >= 60'000 && pruning.last_pruned_ms.compare_exchange_strong(last, now_ms))
    prune_before =
        now_ms -
        std::chrono::duration_cast<std::chrono::milliseconds>(kCancellationRetention).count();
  return backend.record_cancellation(job_id, now_ms, prune_before);
}

Result<CancellationPage> read_cancellations(StorageBackend& backend, std::int64_t after,
                                            std::size_t limit) {
  limit = std::max<std::size_t>(limit, 1);
  CancellationPage page;
  auto bounds = backend.cancellation_bounds();
  if (!bounds.ok()) return bounds.error();
  const auto [oldest, newest] = bounds.value();
  // A position this log never had (ahead of its newest entry: the sidecar followed another
  // database, or this one was recreated), or one whose next entries were pruned: start over from
  // the oldest entry kept. (A log whose every entry was pruned keeps its newest, so a position
  // at or below it stays meaningful.)
  if (after < 0) {
    after = 0;
  } else if (after > newest || (oldest > 0 && after < oldest - 1)) {
    page.reset = true;
    after = 0;
  }
  auto rows = backend.cancellations_after(after, static_cast<std::int64_t>(limit) + 1);
  if (!rows.ok()) return rows.error();
  for (const SqlRow& row : rows.value()) {
    if (page.cancellations.size() == limit) {
      page.more = true;
      break;
    }
    Cancellation c;
    c.sequence = std::stoll(row.at(0));
    c.job_id = row.at(1);
    c.cancelled_at = Clock::time_point(std::chrono::milliseconds(std::stoll(row.at(2))));
    page.cancellations.push_back(std::move(c));
  }
  // next_after never passes an entry not returned: entries added after the reads come behind it.
  page.next_after = page.cancellations.empty() ? after : page.cancellations.back().sequence;
  return page;
}

}  // namespace asya::gateway
