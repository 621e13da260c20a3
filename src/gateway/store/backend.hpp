// Internal: the storage a JobStore implementation uses. The status rules live once in
// job_store.cpp (JobStoreCore); the rows (jobs, envelopes, updates, MCP sessions) and the schema
// live once in storage.cpp, written in the SQL both databases understand. SQLite and PostgreSQL
// only provide what differs: connections, transactions, running one statement, and a small
// dialect. Documents are JSON text written and read by JobStoreCore.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.hpp"
#include "gateway/store/job_store.hpp"
#include "gateway/store/span_groups.hpp"

namespace asya::gateway {

// A statement parameter: NULL, text or a 64-bit integer.
using SqlArg = std::variant<std::nullptr_t, std::string, std::int64_t>;
// One result row, every column as text (NULL as "").
using SqlRow = std::vector<std::string>;

// What differs between the two databases' SQL.
struct SqlDialect {
  // Appended to a SELECT of a job row about to change (" FOR UPDATE" on PostgreSQL; SQLite locks
  // the whole database with BEGIN IMMEDIATE).
  const char* lock_row;
  // Records one update ($1 job id, $2 sequence, $3 document); on PostgreSQL it also sends
  // NOTIFY asya_gateway_jobs '<job id>' in the same round trip.
  const char* insert_update;
  // Run first in the migration transaction so one process migrates at a time (nullptr: none).
  const char* migration_lock;
  // Whether a new job also gets a gateway_job_envelopes row for its root envelope (whose id is
  // the job's id, so job_of_envelope finds it in gateway_jobs without one). SQLite: no, two
  // B-trees fewer written per job. PostgreSQL: yes, because replicas of an older version may
  // share the database during a rolling upgrade and they look roots up in that table only.
  bool root_envelope_rows;
  // Whether a job whose trace id is its own id's (trace_id_of_job_id) still has it in the
  // trace_id column and so in the trace index. SQLite: no, one random index page fewer written per
  // job (job_of_trace finds it by its id). PostgreSQL: yes, for older replicas sharing the
  // database during a rolling upgrade, which look traces up in the column only.
  bool derived_trace_ids_in_column;
  // Run before a job's stored spans are read to add more ($1 the job id), so that two writers of
  // the same job's spans take turns and a span is stored once (a group row has no key per span):
  // PostgreSQL takes a transaction-scoped advisory lock per job; nullptr on SQLite, whose
  // BEGIN IMMEDIATE serialises every writer already.
  const char* lock_job_spans;
  // The column that orders the jobs (and MCP tasks) of one millisecond in the order they were
  // created: SQLite's rowid (the next one is above every row's, and every index entry ends with
  // it), a column `seq` filled from a sequence on PostgreSQL (shared by every replica).
  const char* creation_order;
  // Schema 10, which adds that order: the indexes of the lists end with it (SQLite), the `seq`
  // columns and their sequences (PostgreSQL).
  const char* creation_order_migration;
  // Run once after schema 10 was added to an older database (after the document backfill):
  // numbers the rows it had in (created_ms, id) order (nullptr: nothing to do).
  const char* creation_order_backfill;
};

// A row of a list: its text (a job document or a task id), its creation millisecond and its
// place among the rows of that millisecond (SqlDialect::creation_order).
struct ListedRow {
  std::string text;
  std::int64_t created_ms = 0;
  std::int64_t order = 0;
};

class StorageBackend {
 public:
  virtual ~StorageBackend() = default;
  virtual std::string_view name() const = 0;
  virtual const SqlDialect& dialect() const = 0;

  // Runs `body` in one transaction: commits when it returns ok, rolls back otherwise. Calls are
  // serialised within the process; across processes the database's own locking applies.
  virtual Status transaction(const std::function<Status()>& body) = 0;
  // Runs `bodies` in order and returns their results in order, each as transaction() would; a
  // backend that groups transactions runs them in one (each in a savepoint, so a failing body
  // undoes only itself). Default: one transaction each.
  virtual std::vector<Status> transactions(
      const std::vector<const std::function<Status()>*>& bodies) {
    std::vector<Status> results;
    results.reserve(bodies.size());
    for (const auto* body : bodies) results.push_back(transaction(*body));
    return results;
  }
  // Runs one statement with parameters $1, $2, ... (inside a transaction or on its own) and
  // returns its rows. `what` names the operation in the error message.
  virtual Result<std::vector<SqlRow>> query(const std::string& what, const char* sql,
                                            const std::vector<SqlArg>& args = {}) = 0;
  // Runs statements without parameters (schema scripts).
  virtual Status script(const char* sql) = 0;
  virtual Status ping() = 0;
  // JobStore::watch / unwatch (default: nothing to watch).
  virtual void watch(std::function<void(const std::string& job_id)> on_change) { (void)on_change; }
  virtual void unwatch() {}

  // ---- Rows (storage.cpp), the same SQL on both databases ----

  // Creates or migrates the schema (gateway_schema keeps the version). Called by a backend's
  // constructor; `where` names the database in errors.
  Status migrate(const std::string& where);

  // Inside a transaction:
  Result<std::optional<std::string>> load_job(const std::string& job_id);
  // A new job row. `created_ms`, `tool`, `trace_id` and `owner` never change afterwards (the
  // list_jobs columns), nor does the deadline.
  Status insert_job(const std::string& job_id, JobStatus status,
                    std::optional<std::int64_t> deadline_ms, const std::string& document,
                    std::int64_t created_ms, const std::string& tool, const std::string& trace_id,
                    const std::string& owner);
  // Replaces a job's document; `new_status` when the change moved its status (nullopt: the status
  // column and its index are not written).
  Status update_job(const std::string& job_id, std::optional<JobStatus> new_status,
                    const std::string& document);
  // The job the envelope belongs to: its own id for a root envelope, else the job recorded with
  // add_envelope.
  Result<std::optional<std::string>> job_of_envelope(const std::string& envelope_id);
  Status add_envelope(const std::string& envelope_id, const std::string& job_id);
  // The status column of the job the envelope belongs to (as job_of_envelope finds it), or
  // nullopt; reads no document.
  Result<std::optional<std::string>> status_of_envelope(const std::string& envelope_id);
  Status add_update(const std::string& job_id, std::int64_t sequence, const std::string& document);

  // On their own:
  // The job's document without locking its row (a read that changes nothing).
  Result<std::optional<std::string>> read_job(const std::string& job_id);
  Result<std::vector<std::pair<std::int64_t, std::string>>> updates_after(const std::string& job_id,
                                                                          std::int64_t sequence);
  // Ids of pending/running jobs with deadline_ms <= now_ms.
  Result<std::vector<std::string>> expired(std::int64_t now_ms);

  // MCP tasks: the index JobStore::list_tasks reads (the job itself is in gateway_jobs).
  Status add_task(const std::string& job_id, const std::string& owner, std::int64_t created_ms);
  // `owner`'s tasks (text: the task id) after (after_created_ms, after_order), oldest first.
  Result<std::vector<ListedRow>> list_tasks(const std::string& owner, std::int64_t after_created_ms,
                                            std::int64_t after_order, std::int64_t limit);
  // The creation order of a task (nullopt: no such task); for cursors given before there was one.
  Result<std::optional<std::int64_t>> task_order(const std::string& task_id);

  // Job documents for JobStore::list_jobs, newest first, older than (before_created_ms,
  // before_order); "" status or tool matches any, nullopt owner too.
  Result<std::vector<ListedRow>> list_jobs(const std::string& status, const std::string& tool,
                                           const std::optional<std::string>& owner,
                                           std::int64_t before_created_ms,
                                           std::int64_t before_order, std::int64_t limit);
  // The creation order of a job (nullopt: no such job); for cursors given before there was one.
  Result<std::optional<std::int64_t>> job_order(const std::string& job_id);

  // The job with gateway_jobs.trace_id = trace_id.
  Result<std::optional<std::string>> job_of_trace(const std::string& trace_id);
  // Spans: one row per span in gateway_spans (schema 4-8, still read), one row per job and export
  // in gateway_span_groups (schema 9, written; span_groups.hpp).
  // Inside a transaction: makes other writers of `job_id`'s spans wait until it ends
  // (SqlDialect::lock_job_spans).
  Status lock_spans_of(const std::string& job_id);
  // The keys ("<trace_id> <span_id>") of the job's stored spans, both layouts.
  Result<std::vector<std::string>> stored_span_keys(const std::string& job_id);
  // Inserts a group row of `job_id`'s spans.
  Status insert_span_group(const std::string& job_id, std::int64_t received_ms,
                           const SpanGroupRow& row);
  // Removes the spans (both layouts) received before `received_ms`.
  Status remove_spans_received_before(std::int64_t received_ms);
  // The job's spans, both layouts, ordered by start time, then span id.
  Result<std::vector<SpanRecord>> spans_of(const std::string& job_id);

  // MCP sessions (JobStore's session methods).
  Status create_session(const std::string& id, const std::string& protocol_version,
                        std::int64_t now_ms);
  Result<SessionUse> use_session(const std::string& id, std::int64_t now_ms,
                                 std::int64_t timeout_ms);
  Result<bool> end_session(const std::string& id);
  Result<std::int64_t> sweep_sessions(std::int64_t now_ms, std::int64_t timeout_ms);
};

// The JobStore over a backend (all rules of job_store.hpp).
std::unique_ptr<JobStore> make_job_store(std::unique_ptr<StorageBackend> backend);

// Backends.
std::unique_ptr<StorageBackend> open_sqlite_backend(const std::string& path);
std::unique_ptr<StorageBackend> open_postgres_backend(const std::string& url);

}  // namespace asya::gateway
