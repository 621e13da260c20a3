#include "gateway/store/job_listing.hpp"

#include <limits>
#include <map>

#include "gateway/store/job_document.hpp"

namespace asya::gateway {

Result<JobPage> list_job_page(StorageBackend& backend, const JobFilter& filter,
                              const std::optional<JobCursor>& after, std::size_t limit) {
  std::string status = filter.status ? job_status_name(*filter.status) : "";
  // One more than asked tells whether another page follows.
  auto rows =
      backend.list_jobs(status, filter.tool, filter.owner,
                        after ? after->created_ms : std::numeric_limits<std::int64_t>::max(),
                        after ? after->id : std::string(), static_cast<std::int64_t>(limit) + 1);
  if (!rows.ok()) return rows.error();
  JobPage page;
  for (std::size_t i = 0; i < rows.value().size() && i < limit; ++i) {
    page.jobs.push_back(job_from_document(rows.value()[i].first));
  }
  if (rows.value().size() > limit && limit > 0) {
    const Job& last = page.jobs.back();
    page.next = JobCursor{rows.value()[limit - 1].second, last.id};
  }
  return page;
}

Result<SpanWrite> store_spans(StorageBackend& backend, SpanPruning& pruning,
                              const std::vector<SpanRecord>& spans, const SpanLimits& limits,
                              Clock::time_point now) {
  std::int64_t now_ms = to_ms(now);
  SpanWrite write;
  Status status = backend.transaction([&]() -> Status {
    write = SpanWrite{};
    std::int64_t last = pruning.last_pruned_ms.load();
    if (now_ms - last >= 60'000 && pruning.last_pruned_ms.compare_exchange_strong(last, now_ms)) {
      Status pruned = backend.remove_spans_received_before(now_ms - limits.retention.count());
      if (!pruned.ok()) return pruned;
    }
    std::map<std::string, std::int64_t> counts;  // spans per job, read once per job
    for (const auto& span : spans) {
      auto known = counts.find(span.job_id);
      if (known == counts.end()) {
        auto count = backend.count_spans(span.job_id);
        if (!count.ok()) return count.error();
        known = counts.emplace(span.job_id, count.value()).first;
      }
      if (known->second >= static_cast<std::int64_t>(limits.max_spans_per_job)) {
        ++write.over_limit;
        continue;
      }
      auto inserted = backend.insert_span(span, now_ms);
      if (!inserted.ok()) return inserted.error();
      if (inserted.value()) {
        ++write.stored;
        ++known->second;
      } else {
        ++write.duplicates;
      }
    }
    return Status::Ok();
  });
  if (!status.ok()) return status.error();
  return write;
}

}  // namespace asya::gateway
