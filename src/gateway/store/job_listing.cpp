#include "gateway/store/job_listing.hpp"

#include <limits>
#include <map>

#include "gateway/store/job_document.hpp"

namespace asya::gateway {

Result<TaskPage> list_task_page(StorageBackend& backend, const std::string& owner,
                                const std::optional<TaskCursor>& after, std::size_t limit) {
  std::int64_t after_order = std::numeric_limits<std::int64_t>::min();
  if (after) {
    if (after->order) {
      after_order = *after->order;
    } else {
      // A cursor of an earlier version: the task's own place, or (gone) all of its millisecond.
      auto order = backend.task_order(after->id);
      if (!order.ok()) return order.error();
      after_order = order.value().value_or(std::numeric_limits<std::int64_t>::max());
    }
  }
  // One more than asked tells whether another page follows.
  auto rows = backend.list_tasks(owner, after ? after->created_ms : -1, after_order,
                                 static_cast<std::int64_t>(limit) + 1);
  if (!rows.ok()) return rows.error();
  TaskPage page;
  for (std::size_t i = 0; i < rows.value().size() && i < limit; ++i) {
    const ListedRow& row = rows.value()[i];
    auto text = backend.read_job(row.text);
    if (!text.ok()) return text.error();
    if (text.value()) page.tasks.push_back(job_from_document(*text.value()));
    if (rows.value().size() > limit && i + 1 == limit)
      page.next = TaskCursor{row.created_ms, row.text, row.order};
  }
  return page;
}

Result<JobPage> list_job_page(StorageBackend& backend, const JobFilter& filter,
                              const std::optional<JobCursor>& after, std::size_t limit) {
  std::string status = filter.status ? job_status_name(*filter.status) : "";
  std::int64_t before_order = std::numeric_limits<std::int64_t>::max();
  if (after) {
    if (after->order) {
      before_order = *after->order;
    } else {
      // A cursor of an earlier version: the job's own place, or (gone) none of its millisecond.
      auto order = backend.job_order(after->id);
      if (!order.ok()) return order.error();
      before_order = order.value().value_or(std::numeric_limits<std::int64_t>::min());
    }
  }
  // One more than asked tells whether another page follows.
  auto rows =
      backend.list_jobs(status, filter.tool, filter.owner,
                        after ? after->created_ms : std::numeric_limits<std::int64_t>::max(),
                        before_order, static_cast<std::int64_t>(limit) + 1);
  if (!rows.ok()) return rows.error();
  JobPage page;
  for (std::size_t i = 0; i < rows.value().size() && i < limit; ++i) {
    page.jobs.push_back(job_from_document(rows.value()[i].text));
  }
  if (rows.value().size() > limit && limit > 0) {
    const ListedRow& last = rows.value()[limit - 1];
    page.next = JobCursor{last.created_ms, page.jobs.back().id, last.order};
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
