// Internal: the job store's cancellation log (JobStore::cancel appends, cancellations_after
// reads; PROTOCOL §7 GET /envelopes/cancellations), over the rows of storage.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/result.hpp"
#include "gateway/store/backend.hpp"
#include "gateway/store/job_store.hpp"

namespace asya::gateway {

// When the log was last pruned (by this process).
struct CancellationPruning {
  std::atomic<std::int64_t> last_pruned_ms{0};
};

// Inside a cancel's transaction: appends `job_id` to the log and, at most once a minute, removes
// entries older than kCancellationRetention.
Status log_cancellation(StorageBackend& backend, CancellationPruning& pruning,
                        const std::string& job_id, Clock::time_point now);

// JobStore::cancellations_after.
Result<CancellationPage> read_cancellations(StorageBackend& backend, std::int64_t after,
                                            std::size_t limit);

}  // namespace asya::gateway
