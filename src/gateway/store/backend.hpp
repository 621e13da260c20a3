// Internal: the storage a JobStore implementation provides. The status rules live once in
// job_store.cpp (JobStoreCore) on top of this; SQLite and PostgreSQL only store documents.
// Documents are JSON text written and read by JobStoreCore.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "gateway/store/job_store.hpp"

namespace asya::gateway {

class StorageBackend {
 public:
  virtual ~StorageBackend() = default;
  virtual std::string_view name() const = 0;

  // Runs `body` in one transaction: commits when it returns ok, rolls back otherwise. Calls are
  // serialised within the process; across processes the backend's own locking applies
  // (load_job locks the row on PostgreSQL).
  virtual Status transaction(const std::function<Status()>& body) = 0;

  // Inside a transaction:
  virtual Result<std::optional<std::string>> load_job(const std::string& job_id) = 0;
  virtual Status save_job(const std::string& job_id, JobStatus status,
                          std::optional<std::int64_t> deadline_ms, const std::string& document,
                          bool insert) = 0;
  virtual Result<std::optional<std::string>> job_of_envelope(const std::string& envelope_id) = 0;
  virtual Status add_envelope(const std::string& envelope_id, const std::string& job_id) = 0;
  virtual Status add_update(const std::string& job_id, std::int64_t sequence,
                            const std::string& document) = 0;

  // Outside a transaction:
  virtual Result<std::vector<std::pair<std::int64_t, std::string>>> updates_after(
      const std::string& job_id, std::int64_t sequence) = 0;
  // Ids of pending/running jobs with deadline_ms <= now_ms.
  virtual Result<std::vector<std::string>> expired(std::int64_t now_ms) = 0;
  virtual Status ping() = 0;
  // JobStore::watch / unwatch (default: nothing to watch).
  virtual void watch(std::function<void(const std::string& job_id)> on_change) { (void)on_change; }
  virtual void unwatch() {}
};

// The JobStore over a backend (all rules of job_store.hpp).
std::unique_ptr<JobStore> make_job_store(std::unique_ptr<StorageBackend> backend);

// Backends.
std::unique_ptr<StorageBackend> open_sqlite_backend(const std::string& path);
std::unique_ptr<StorageBackend> open_postgres_backend(const std::string& url);

}  // namespace asya::gateway
