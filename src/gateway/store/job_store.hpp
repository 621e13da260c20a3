// The gateway's job store: one job per tool call, keyed by the envelope id (PROTOCOL §7, §8), and
// the MCP sessions.
//
// Implementations, registered by name (open_job_store below): SQLite (sqlite/, the embedded
// default, one file) and PostgreSQL (postgres/, ASYA_DATABASE_URL). Both share the status rules
// below (implemented once in job_store.cpp over a small storage backend), so they behave
// identically:
//
// - Status moves pending -> running -> succeeded | failed | cancelled. The first progress report
//   makes a job running; a final report may come at any time; cancel() ends a job that is not
//   final yet. A final status never changes again; progress and final reports that arrive after
//   it are ignored (not an error), and say so (ChangeResult::job_status), which is how a sidecar
//   learns that the job of the envelope it is about to process was cancelled.
// - progress_percent = (index * 100 + weight) / len(actors) with weights received 10, processing
//   50, completed 100; it never decreases and is at most 99 until the job is final, 100 after a
//   success (a failure keeps the last value).
// - Progress reports come from several sidecars over separate connections, so they may arrive
//   out of order (actor 2's "received" before actor 1's "completed"). A report behind the job's
//   position (an earlier actor, or an earlier state of the current actor: not completed when the
//   job already counts it completed) is `ignored`: the job's actor and the Updates never go
//   backwards.
// - Fan-out: a sidecar announces each child envelope (index >= 1) with add_branch() before it is
//   published. The root envelope is branch 0. A job is final only when every known branch reached
//   an end; its result is the single result (no fan-out) or the branch results in branch order
//   (root first, then children by their numeric id suffixes); it failed when any branch failed.
// - Join (PROTOCOL §4a): a join actor's sidecar reports the children of a fan-out it consumed with
//   join(); they leave the job's branches, and the envelope that fanned out goes on (its join
//   output reaches an end under its id), so a joined job has one result.
// - A job past its deadline is failed with "timed out" by expire().
// - Every change appends an Update with a per-job sequence number 1, 2, 3, ... (the SSE event id,
//   so a stream can resume after Last-Event-ID).
//
// All methods are blocking and thread-safe. Storage failures are returned as Error (message names
// the database and the cause); "no such job" is not an error but a distinct outcome.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/env.hpp"
#include "common/result.hpp"
#include "common/rfc3339.hpp"

namespace asya::gateway {

using Clock = std::chrono::system_clock;

enum class JobStatus { pending, running, succeeded, failed, cancelled };

// "pending", "running", "succeeded", "failed", "cancelled".
const char* job_status_name(JobStatus status);
// Parses a status name; nullopt for anything else.
std::optional<JobStatus> parse_job_status(std::string_view name);
inline bool is_final(JobStatus status) {
  return status == JobStatus::succeeded || status == JobStatus::failed ||
         status == JobStatus::cancelled;
}

struct Branch {
  std::string id;         // envelope id ("<root>", "<root>-1", "<root>-1-2", ...)
  std::string parent_id;  // empty for the root
  JobStatus status = JobStatus::pending;
  std::string result_json;  // JSON text of the branch's result, empty when none
  std::string error;
  std::string error_details_json{};  // of a failed branch: the report's error_details, as sent
  std::string failed_actor{};        // of a failed branch: the actor that failed ("" unknown)
};

struct Job {
  std::string id;    // the root envelope id
  std::string tool;  // tool name
  JobStatus status = JobStatus::pending;
  std::string message;
  std::vector<std::string> actors;
  int current_actor_idx = 0;
  int progress_percent = 0;
  int actors_completed = 0;
  std::string route_json;          // the envelope's route object as created
  std::string payload_json;        // the envelope's payload as created
  std::string result_json;         // JSON text, empty until succeeded
  std::string error;               // empty unless failed
  std::string error_details_json;  // JSON text, empty when none
  // The actor whose failure failed the job (actors[current_actor_idx] of the failing branch's
  // final report); empty when not known (a timeout, a publish failure, an old report).
  std::string failed_actor;
  std::vector<Branch> branches;  // root first; only one entry unless the pipeline fanned out
  Clock::time_point created_at;
  Clock::time_point updated_at;
  std::optional<Clock::time_point> deadline;
  std::int64_t last_sequence = 0;  // sequence number of the latest Update
  // Who started the job: a fingerprint of the caller's token ("" without tokens). MCP tasks are
  // listed per owner.
  std::string owner;
  bool task = false;                   // started as an MCP task (tools/call with `task`)
  std::optional<std::int64_t> ttl_ms;  // the task's retention as answered to the client
  // The trace the job's envelope started (the trace id of its traceparent, 32 hex digits; ""
  // unknown): spans of this trace belong to the job (POST /v1/traces).
  std::string trace_id;
};

// A failed job's failure in one line, for people (the CLI, the MCP text content, REST): the
// exception type and message of the error details, then the error code and the actor that
// failed, e.g. `KeyError: 'text' (processing_error in actor "score")`; the error alone when
// nothing more is known (`timed out`). Defined in job_failure.cpp.
std::string describe_failure(const Job& job);

// One entry of a job's history: what an SSE `update` event carries.
struct Update {
  std::int64_t sequence = 0;
  JobStatus status = JobStatus::pending;
  int progress_percent = 0;
  int current_actor_idx = 0;
  // received | processing | completed | pending | running | succeeded | failed | cancelled
  std::string envelope_state;
  std::string envelope_id;  // the envelope (root or branch) the report was about
  std::string actor;        // actor name at current_actor_idx ("" when none)
  std::vector<std::string> actors;
  std::string message;
  std::string result_json;  // set on a final success
  std::string error;        // set on a failure
  Clock::time_point timestamp;
};

struct NewJob {
  std::string id;
  std::string tool;
  std::vector<std::string> actors;
  std::string route_json;
  std::string payload_json;
  std::optional<Clock::time_point> deadline;
  std::string owner;  // Job::owner
  bool task = false;  // Job::task: also recorded for list_tasks()
  std::optional<std::int64_t> ttl_ms;
  std::string trace_id{};  // Job::trace_id
};

// A sidecar's progress report (PROTOCOL §7).
struct ProgressReport {
  std::string envelope_id;
  std::vector<std::string> actors;  // may be empty: the job's actors are used
  int current_actor_idx = 0;
  std::string state;  // received | processing | completed
  std::string message;
  // A join actor's running count (PROTOCOL §7 "branches_joined" of "branches_total"; total 0: not
  // a join's count). Its weight grows with the count from received (10) to 90, so the percent
  // rises while branches arrive; a count that would lower the job's percent arrived late (another
  // replica's, or one overtaken) and is ignored.
  std::size_t branches_joined = 0;
  std::size_t branches_total = 0;
};

// An end actor's final report (PROTOCOL §7).
struct FinalReport {
  std::string envelope_id;
  JobStatus status = JobStatus::succeeded;  // succeeded or failed
  std::string result_json;                  // empty when absent
  std::string error;
  std::string error_details_json;
  std::optional<int> current_actor_idx;
};

// One report of a batch (PROTOCOL §7 POST /envelopes/reports): a progress or a final report.
using SidecarReport = std::variant<ProgressReport, FinalReport>;

// A fan-out child announced by a sidecar (PROTOCOL §7 POST /envelopes).
struct BranchReport {
  std::string id;
  std::string parent_id;
  std::vector<std::string> actors;
  int current = 0;
};

// A join actor published the join of a fan-out group (PROTOCOL §4a, §7 POST
// /envelopes/{id}/joined): the group's children are consumed by the join and never reach an end
// themselves; the envelope that fanned out (`envelope_id`) goes on as the join's output.
struct JoinReport {
  std::string envelope_id;            // the envelope that fanned out (the join output's id)
  std::vector<std::string> children;  // the group's other branch ids (index >= 1)
  std::size_t count = 0;              // branches in the group
  std::size_t failed = 0;             // of them failed
  std::size_t missing = 0;            // of them missing (a timed-out group)
};

enum class Outcome {
  applied,    // the change was recorded
  ignored,    // the job (or branch) was already final; nothing changed
  duplicate,  // the same thing was already recorded (a retried report); nothing changed
  conflict,   // a different final status for an already final job or branch
  not_found,  // no job knows that envelope id
};

struct ChangeResult {
  Outcome outcome = Outcome::applied;
  int progress_percent = 0;  // the job's percent after the call
  bool job_final = false;    // the job is final after the call
  std::string job_id;        // the job the envelope belongs to (empty when not_found)
  JobStatus job_status = JobStatus::pending;  // the job's status after the call
};

// Where a page of list_tasks() starts: after the task created at created_ms with this id, whose
// place among the tasks of that millisecond is `order` (their creation order). A cursor without
// it (given by a gateway of an earlier version) continues after the task with that id, or after
// every task of that millisecond when there is no such task.
struct TaskCursor {
  std::int64_t created_ms = 0;
  std::string id;
  std::optional<std::int64_t> order{};
};

struct TaskPage {
  std::vector<Job> tasks;          // oldest first
  std::optional<TaskCursor> next;  // set when more tasks follow
};

// One span of a job's trace, kept by the gateway (POST /v1/traces, GET /envelopes/{id}/trace).
struct SpanRecord {
  std::string job_id;    // the job the span belongs to (resolved by the receiver)
  std::string trace_id;  // 32 lowercase hex digits
  std::string span_id;   // 16 lowercase hex digits; (trace_id, span_id) identifies the span
  std::int64_t start_unix_nano = 0;
  std::string document;  // JSON object text, stored and answered as given
};

// How many spans the store keeps (add_spans).
struct SpanLimits {
  std::size_t max_spans_per_job = 1000;  // later spans of a fuller job are dropped
  // A received span whose document is larger is refused (POST /v1/traces): without it one job's
  // 1000 spans of up to 16 MiB each were kept, and GET /envelopes/{id}/trace built its answer
  // from all of them in memory (30 spans of 15 MB: 2.9 GB of gateway RSS).
  std::size_t max_span_bytes = 64u << 10;
  std::chrono::milliseconds retention{std::chrono::hours(24)};  // older spans are removed
};

// What add_spans did with the spans it was given.
struct SpanWrite {
  std::size_t stored = 0;
  std::size_t duplicates = 0;  // already stored (an exporter retried): nothing changed
  std::size_t over_limit = 0;  // dropped: the job has max_spans_per_job spans already
};

// Which jobs list_jobs returns: every job unless a field is set.
struct JobFilter {
  std::optional<JobStatus> status;
  std::string tool;                    // "" any
  std::optional<std::string> owner{};  // only jobs with this Job::owner ("" too); nullopt: any
};

// Where a page of list_jobs() continues: after (older than) the job created at created_ms with
// this id, whose place among the jobs of that millisecond is `order` (their creation order: jobs
// of one millisecond are listed newest first too). A cursor without it (given by a gateway of an
// earlier version) continues after the job with that id, or with the jobs of earlier
// milliseconds when there is no such job.
struct JobCursor {
  std::int64_t created_ms = 0;
  std::string id;
  std::optional<std::int64_t> order{};
};

struct JobPage {
  std::vector<Job> jobs;          // newest first
  std::optional<JobCursor> next;  // set when older jobs follow
};

// What JobStore::use_session found.
struct SessionUse {
  enum class State {
    active,   // known and used within the timeout: now marked used
    unknown,  // never created, or ended with end_session()
    expired,  // unused for longer than the timeout: now removed
  };
  State state = State::unknown;
  std::string protocol_version;  // the version negotiated at initialize (when active)
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  JobStore() = default;
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // "sqlite" or "postgres".
  virtual std::string_view name() const = 0;

  // Records a new pending job (with its root branch) and its first Update. Error when the id
  // exists already.
  virtual Status create(const NewJob& job) = 0;

  // The job, or nullopt when unknown. `id` may also be a branch's envelope id.
  virtual Result<std::optional<Job>> get(const std::string& id) = 0;
  // The id of the job get(id) would return, or nullopt; reads no job document (POST /v1/traces
  // asks this for every job its spans name).
  virtual Result<std::optional<std::string>> job_id_of(const std::string& id) = 0;

  // The status of the job get(id) would return, or nullopt; reads the job's status column, no
  // job document (the cancellation check asks this before every handler call). Default: get().
  virtual Result<std::optional<JobStatus>> status_of(const std::string& id);

  // Applies a progress report; ignored once the job or the branch is final.
  virtual Result<ChangeResult> progress(const ProgressReport& report) = 0;

  // Applies a final report for the root or a branch. A repeat of the same final is `duplicate`;
  // a different final status for a final branch is `conflict`.
  virtual Result<ChangeResult> finish(const FinalReport& report) = 0;

  // Applies `reports` in order, each exactly as progress() or finish() would (so a later report
  // sees the earlier ones' changes), and returns one result per report, in order. Where the
  // store allows, they share one transaction (each in a savepoint: a report that fails undoes
  // only itself and fails only its own result). Default: one call each.
  virtual std::vector<Result<ChangeResult>> apply(const std::vector<SidecarReport>& reports);

  // Registers a fan-out child. `duplicate` when that id is already known (retries are safe),
  // `not_found` when parent_id belongs to no job.
  virtual Result<ChangeResult> add_branch(const BranchReport& report) = 0;

  // Records a join: removes `children` from the job's branches (they ended in the join) and
  // makes the job final when every remaining branch already is. `not_found` for an unknown
  // envelope, `ignored` when the job is final, `duplicate` when no child was a branch any more.
  virtual Result<ChangeResult> join(const JoinReport& report) = 0;

  // Fails a job that is not final yet (publish failure, tool-call timeout). `ignored` when it was
  // already final.
  virtual Result<ChangeResult> fail(const std::string& id, const std::string& error) = 0;

  // Cancels a job that is not final yet: status cancelled (final), error = `reason`. `ignored`
  // when it was already final (job_status says how it ended), `not_found` for an unknown id.
  virtual Result<ChangeResult> cancel(const std::string& id, const std::string& reason) = 0;

  // The tasks (jobs created with NewJob::task) of `owner`, oldest first, at most `limit`, after
  // `after` when given. A job that disappeared meanwhile is skipped.
  virtual Result<TaskPage> list_tasks(const std::string& owner,
                                      const std::optional<TaskCursor>& after,
                                      std::size_t limit) = 0;

  // The jobs matching `filter`, newest first (by creation time, then id), at most `limit`,
  // older than `after` when given. Filtering by owner reads an index (owner, created_ms, id).
  virtual Result<JobPage> list_jobs(const JobFilter& filter, const std::optional<JobCursor>& after,
                                    std::size_t limit) = 0;

  // Stores spans of known jobs (SpanRecord::job_id must name one). A span already stored is a
  // duplicate; a job's spans beyond limits.max_spans_per_job are dropped. Spans received more
  // than limits.retention before `now` are removed (checked at most once a minute).
  virtual Result<SpanWrite> add_spans(const std::vector<SpanRecord>& spans,
                                      const SpanLimits& limits, Clock::time_point now) = 0;

  // The job whose envelope started trace `trace_id` (Job::trace_id), or nullopt.
  virtual Result<std::optional<std::string>> job_of_trace(const std::string& trace_id) = 0;

  // The job's spans ordered by start time (then span id); empty for a job without spans.
  virtual Result<std::vector<SpanRecord>> spans(const std::string& job_id) = 0;

  // Fails every pending or running job whose deadline is at or before `now` with "timed out" and
  // returns their ids.
  virtual Result<std::vector<std::string>> expire(Clock::time_point now) = 0;

  // The job's updates with sequence > after_sequence, oldest first (empty for an unknown job).
  virtual Result<std::vector<Update>> updates(const std::string& id,
                                              std::int64_t after_sequence) = 0;

  // MCP sessions (Mcp-Session-Id) live here too, so every gateway replica sharing the database
  // accepts a session another one created.
  // Records a new session used at `now`.
  virtual Status create_session(const std::string& id, const std::string& protocol_version,
                                Clock::time_point now) = 0;
  // Looks the session up; an active one is marked used at `now` (written at most about once a
  // second per session, so a busy client does not write on every request), an expired one (last
  // used `timeout` or more before `now`) is removed.
  virtual Result<SessionUse> use_session(const std::string& id, Clock::time_point now,
                                         std::chrono::milliseconds timeout) = 0;
  // Ends a session; false when it was unknown.
  virtual Result<bool> end_session(const std::string& id) = 0;
  // Removes every session unused for `timeout` at `now`; returns how many sessions remain.
  virtual Result<std::int64_t> sweep_sessions(Clock::time_point now,
                                              std::chrono::milliseconds timeout) = 0;

  // A cheap round trip to the database, for /readyz.
  virtual Status ping() = 0;

  // Calls `on_change(job_id)` from a background thread whenever any process sharing the database
  // (another gateway replica included) changed a job, where the database can tell: PostgreSQL
  // (LISTEN/NOTIFY on channel asya_gateway_jobs). A no-op for SQLite (one gateway per file).
  // Notifications lost while the listening connection is down are not replayed: waiters also
  // re-read the store every ASYA_GATEWAY_POLL_INTERVAL.
  virtual void watch(std::function<void(const std::string& job_id)> on_change) { (void)on_change; }
  // Stops watch(); when it returns no on_change call is running or will start.
  virtual void unwatch() {}
};

// What a job store factory is given.
struct JobStoreOptions {
  // Where the store reads its variables (ASYA_GATEWAY_DB, ASYA_DATABASE_URL): the process
  // environment unless a caller injects another lookup.
  EnvironmentLookup environment = process_environment();
};

using JobStoreFactory = std::function<std::unique_ptr<JobStore>(const JobStoreOptions&)>;

// Job stores are registered by name (a NamedRegistry, the same shape as the transports'):
// "sqlite" opens ASYA_GATEWAY_DB (default .asya/gateway.db), "postgres" opens ASYA_DATABASE_URL.
// Registers (or replaces) one, e.g. a fake in a test. Thread-safe.
void register_job_store(std::string name, JobStoreFactory factory);

// The registered names, sorted.
std::vector<std::string> job_store_names();

// Opens the store registered as `name`; creates or migrates the schema. Throws asya::ConfigError
// for an unknown name (listing the known ones) or a database that cannot be opened.
std::unique_ptr<JobStore> open_job_store(std::string_view name, const JobStoreOptions& options);

// Opens the store the options' environment chooses: "postgres" when ASYA_DATABASE_URL is set,
// else "sqlite".
std::unique_ptr<JobStore> open_job_store(const JobStoreOptions& options);

// open_job_store(JobStoreOptions{}): the store chosen by the process environment.
std::unique_ptr<JobStore> open_job_store_from_env();

// The trace id of a job whose id is a UUID (the gateway's own tool calls, Service::start_call):
// the id's 32 hex digits, so the job of such a trace is found by its primary key and the job needs
// no entry in the trace index (SQLite, schema 8). "" when `job_id` is not a lowercase UUID.
std::string trace_id_of_job_id(std::string_view job_id);
// The inverse: the UUID form of a 32-hex-digit trace id ("" for anything else).
std::string job_id_of_trace_id(std::string_view trace_id);

// The SQLite store at `path` (created with its schema when missing).
std::unique_ptr<JobStore> open_sqlite_job_store(const std::string& path);

// The PostgreSQL store at `url` (libpq connection string or postgres:// URL); the schema is
// created or migrated on open.
std::unique_ptr<JobStore> open_postgres_job_store(const std::string& url);

}  // namespace asya::gateway

namespace asya::gateway {

// RFC 3339 UTC with milliseconds ("2026-11-29T12:00:00.000Z"): common/rfc3339.hpp's formatter.
inline std::string format_time(Clock::time_point when) {
  return format_rfc3339(when);
}

}  // namespace asya::gateway
