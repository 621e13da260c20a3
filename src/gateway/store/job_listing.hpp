// Internal to the job store: JobStore::list_jobs, list_tasks and the span methods over a
// StorageBackend (kept apart from the status rules of job_store_core.cpp).
#pragma once

#include <atomic>
#include <optional>
#include <vector>

#include "gateway/store/backend.hpp"

namespace asya::gateway {

// When spans were last pruned by age (milliseconds since the epoch), shared by the threads of
// one store.
struct SpanPruning {
  std::atomic<std::int64_t> last_pruned_ms{0};
};

// JobStore::list_tasks.
Result<TaskPage> list_task_page(StorageBackend& backend, const std::string& owner,
                                const std::optional<TaskCursor>& after, std::size_t limit);

// JobStore::list_jobs.
Result<JobPage> list_job_page(StorageBackend& backend, const JobFilter& filter,
                              const std::optional<JobCursor>& after, std::size_t limit);

// JobStore::add_spans: one transaction; prunes by age at most once a minute. The new spans of each
// job are stored as one group row (span_groups.hpp), deduplicated against both layouts.
Result<SpanWrite> store_spans(StorageBackend& backend, SpanPruning& pruning,
                              const std::vector<SpanRecord>& spans, const SpanLimits& limits,
                              Clock::time_point now);

}  // namespace asya::gateway
