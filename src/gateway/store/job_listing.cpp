#include "gateway/store/job_listing.hpp"

#include <limits>
#include <map>
#include <string_view>
#include <unordered_set>

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
  for (const auto& span : spans) {
    Status fits = check_span_ids(span);
    if (!fits.ok()) return Error{fits.message()};
  }
  // The spans of each job, in the order given. Jobs are visited in id order, so that two writers
  // that lock jobs one by one (PostgreSQL: StorageBackend::lock_spans_of) lock them in one order.
  std::map<std::string_view, std::vector<const SpanRecord*>> by_job;
  for (const auto& span : spans) by_job[span.job_id].push_back(&span);
  const std::int64_t now_ms = to_ms(now);
  const auto max_spans = static_cast<std::int64_t>(limits.max_spans_per_job);
  SpanWrite write;
  Status status = backend.transaction([&]() -> Status {
    write = SpanWrite{};
    std::int64_t last = pruning.last_pruned_ms.load();
    if (now_ms - last >= 60'000 && pruning.last_pruned_ms.compare_exchange_strong(last, now_ms)) {
      Status pruned = backend.remove_spans_received_before(now_ms - limits.retention.count());
      if (!pruned.ok()) return pruned;
    }
    for (const auto& [job_id_view, job_spans] : by_job) {
      const std::string& job_id = job_spans.front()->job_id;
      Status locked = backend.lock_spans_of(job_id);
      if (!locked.ok()) return locked;
      auto stored = backend.stored_span_keys(job_id);
      if (!stored.ok()) return stored.error();
      std::unordered_set<std::string> keys(stored.value().begin(), stored.value().end());
      auto count = static_cast<std::int64_t>(stored.value().size());
      std::vector<const SpanRecord*> fresh;
      for (const SpanRecord* span : job_spans) {
        // As when each span was its own row: a full job drops a span before it is looked up, so
        // a retried span of a full job counts as over the limit, not as a duplicate.
        if (count >= max_spans) {
          ++write.over_limit;
        } else if (keys.insert(span_key(span->trace_id, span->span_id)).second) {
          fresh.push_back(span);
          ++count;
        } else {
          ++write.duplicates;
        }
      }
      for (const auto& row : encode_span_groups(fresh)) {
        Status inserted = backend.insert_span_group(job_id, now_ms, row);
        if (!inserted.ok()) return inserted;
      }
      write.stored += fresh.size();
    }
    return Status::Ok();
  });
  if (!status.ok()) return status.error();
  return write;
}

}  // namespace asya::gateway
