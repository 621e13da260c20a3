// The job store's rows and schema, once for both databases: every statement here is SQL that
// SQLite (3.35+) and PostgreSQL both accept, with $1, $2, ... parameters; what differs is in
// SqlDialect (backend.hpp).
#include <algorithm>
#include <string>

#include "gateway/store/backend.hpp"
#include "gateway/store/job_document.hpp"

namespace asya::gateway {

namespace {

// Schema migrations, applied in order; the version reached is kept in gateway_schema. (SQLite
// gives BIGINT columns integer affinity, so one text serves both databases.)
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE IF NOT EXISTS gateway_jobs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  deadline_ms BIGINT,
  document TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gateway_jobs_open ON gateway_jobs(status, deadline_ms);
CREATE TABLE IF NOT EXISTS gateway_job_envelopes (
  envelope_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_job_updates (
  job_id TEXT NOT NULL,
  sequence BIGINT NOT NULL,
  document TEXT NOT NULL,
  PRIMARY KEY (job_id, sequence));
)sql",
    // 2: MCP sessions, shared by every gateway replica on the database.
    R"sql(
CREATE TABLE IF NOT EXISTS gateway_mcp_sessions (
  id TEXT PRIMARY KEY,
  protocol_version TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  last_used_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS gateway_mcp_sessions_last_used ON gateway_mcp_sessions(last_used_ms);
)sql",
    // 3: MCP tasks by owner, for tasks/list (the task is the job in gateway_jobs).
    R"sql(
CREATE TABLE IF NOT EXISTS gateway_tasks (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS gateway_tasks_owner ON gateway_tasks(owner, created_ms, id);
)sql",
    // 4: recent jobs (GET /envelopes) and the spans of their traces (POST /v1/traces). Jobs of
    // earlier versions get created_ms and tool from their documents (backfill_job_columns).
    R"sql(
ALTER TABLE gateway_jobs ADD COLUMN created_ms BIGINT;
ALTER TABLE gateway_jobs ADD COLUMN tool TEXT;
ALTER TABLE gateway_jobs ADD COLUMN trace_id TEXT;
CREATE INDEX IF NOT EXISTS gateway_jobs_created ON gateway_jobs(created_ms, id);
CREATE INDEX IF NOT EXISTS gateway_jobs_trace ON gateway_jobs(trace_id);
CREATE TABLE IF NOT EXISTS gateway_spans (
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  start_ns BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  document TEXT NOT NULL,
  PRIMARY KEY (trace_id, span_id));
CREATE INDEX IF NOT EXISTS gateway_spans_job ON gateway_spans(job_id, start_ns);
CREATE INDEX IF NOT EXISTS gateway_spans_received ON gateway_spans(received_ms);
)sql",
    // 5: the owner of every job (the caller's token fingerprint, Job::owner), so GET /envelopes
    // lists only the caller's jobs when several client tokens are configured. Jobs of earlier
    // versions get it from their documents (backfill_job_columns).
    R"sql(
ALTER TABLE gateway_jobs ADD COLUMN owner TEXT;
CREATE INDEX IF NOT EXISTS gateway_jobs_owner ON gateway_jobs(owner, created_ms, id);
)sql",
    // 6: the deadline index holds open jobs only. A job's status changes with most reports; keyed
    // by (status, deadline_ms) every change moved its entry to another page of the index (two
    // pages written per change, and one more for the final state, kept until the job row goes).
    // Keyed by the deadline alone with the status in the condition, a job enters it once and
    // leaves it when it becomes final. expired() repeats the condition word for word.
    R"sql(
DROP INDEX IF EXISTS gateway_jobs_open;
CREATE INDEX IF NOT EXISTS gateway_jobs_open_deadline ON gateway_jobs(deadline_ms)
  WHERE status IN ('pending', 'running');
)sql",
    // 7: the spans keyed by their job first, (job_id, trace_id, span_id), instead of (trace_id,
    // span_id) plus an index on (job_id, start_ns): one B-tree fewer per stored span (and the
    // index page of a job's spans was a second random page per job in every batch). The key
    // deduplicates, counts a job's spans and finds them (spans_of sorts the few it reads by
    // start); a span is recorded for the job of its trace, so a retried export still meets its
    // first copy. Older rows are copied (their old key is unique, so the new one is too).
    R"sql(
CREATE TABLE gateway_spans_v7 (
  job_id TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  start_ns BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  document TEXT NOT NULL,
  PRIMARY KEY (job_id, trace_id, span_id));
INSERT INTO gateway_spans_v7(job_id, trace_id, span_id, start_ns, received_ms, document)
  SELECT job_id, trace_id, span_id, start_ns, received_ms, document FROM gateway_spans;
DROP TABLE gateway_spans;
ALTER TABLE gateway_spans_v7 RENAME TO gateway_spans;
CREATE INDEX IF NOT EXISTS gateway_spans_received ON gateway_spans(received_ms);
)sql",
    // 8: the trace index holds the jobs that have a trace_id; a job whose trace id is its own id's
    // (trace_id_of_job_id) has none on SQLite (SqlDialect::derived_trace_ids_in_column) and is
    // found by its key instead: no random index page written per job.
    R"sql(
DROP INDEX IF EXISTS gateway_jobs_trace;
CREATE INDEX IF NOT EXISTS gateway_jobs_trace ON gateway_jobs(trace_id) WHERE trace_id IS NOT NULL;
)sql",
    // 9: the spans one export (or one batch of call spans) brings for one job are stored as one
    // row (span_groups.hpp): one key, one index entry and one statement per job and export
    // instead of per span. gateway_spans keeps its rows and is still read, pruned and counted
    // (a replica of an older version may still write there during a rolling upgrade).
    R"sql(
CREATE TABLE IF NOT EXISTS gateway_span_groups (
  job_id TEXT NOT NULL,
  first_span TEXT NOT NULL,
  received_ms BIGINT NOT NULL,
  span_index TEXT NOT NULL,
  documents TEXT NOT NULL,
  PRIMARY KEY (job_id, first_span));
CREATE INDEX IF NOT EXISTS gateway_span_groups_received ON gateway_span_groups(received_ms);
)sql",
};

// The schema version that added the last of the gateway_jobs columns filled from the documents
// (4: created_ms, tool; 5: owner).
constexpr std::int64_t kJobColumnsVersion = 5;
// Schema 10, the creation order of the jobs and tasks of one millisecond, differs per database
// (SqlDialect::creation_order_migration).
constexpr std::int64_t kCreationOrderVersion = 10;
constexpr std::int64_t kSharedMigrations = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kSharedMigrations + 1 == kCreationOrderVersion);

// The first column of the first row, if any.
Result<std::optional<std::string>> first_text(Result<std::vector<SqlRow>> rows) {
  if (!rows.ok()) return rows.error();
  if (rows.value().empty()) return std::optional<std::string>();
  return std::optional<std::string>(rows.value().front().at(0));
}

Status done(const Result<std::vector<SqlRow>>& rows) {
  if (!rows.ok()) return rows.error();
  return Status::Ok();
}

// Fills created_ms, tool and owner of jobs written before those columns existed, from their
// documents (a job started before owners were recorded, e.g. by a REST call, has owner "").
Status backfill_job_columns(StorageBackend& backend) {
  auto rows = backend.query(
      "reading jobs to backfill",
      "SELECT id, document FROM gateway_jobs WHERE created_ms IS NULL OR owner IS NULL");
  if (!rows.ok()) return rows.error();
  for (const auto& row : rows.value()) {
    Job job = job_from_document(row.at(1));
    auto updated = backend.query(
        "backfilling job " + row.at(0),
        "UPDATE gateway_jobs SET created_ms = $2, tool = $3, owner = $4 WHERE id = $1",
        {row.at(0), to_ms(job.created_at), job.tool, job.owner});
    if (!updated.ok()) return updated.error();
  }
  return Status::Ok();
}

}  // namespace

Status StorageBackend::migrate(const std::string& where) {
  return transaction([&]() -> Status {
    if (dialect().migration_lock) {
      // One gateway migrates at a time; the others wait here and then find the schema current.
      Status locked = script(dialect().migration_lock);
      if (!locked.ok()) return locked;
    }
    Status created = script("CREATE TABLE IF NOT EXISTS gateway_schema (version INTEGER NOT NULL)");
    if (!created.ok()) return created;
    auto read = first_text(query("reading the schema version",
                                 "SELECT COALESCE(MAX(version), 0) FROM gateway_schema"));
    if (!read.ok()) return read.error();
    std::int64_t version = read.value() ? std::stoll(*read.value()) : 0;
    constexpr std::int64_t latest = kCreationOrderVersion;
    if (version > latest) {
      return Error{where + " has schema version " + std::to_string(version) +
                   ", newer than this gateway knows (" + std::to_string(latest) +
                   "): upgrade the gateway"};
    }
    for (std::int64_t v = version; v < latest; ++v) {
      Status applied =
          script(v < kSharedMigrations ? kMigrations[v] : dialect().creation_order_migration);
      if (!applied.ok()) return applied;
    }
    if (version > 0 && version < kJobColumnsVersion) {
      Status filled = backfill_job_columns(*this);
      if (!filled.ok()) return filled;
    }
    if (version > 0 && version < kCreationOrderVersion && dialect().creation_order_backfill) {
      Status numbered = script(dialect().creation_order_backfill);
      if (!numbered.ok()) return numbered;
    }
    if (version == latest) return Status::Ok();
    Status cleared = script("DELETE FROM gateway_schema");
    if (!cleared.ok()) return cleared;
    return done(query("recording the schema version",
                      "INSERT INTO gateway_schema(version) VALUES ($1)", {latest}));
  });
}

Result<std::optional<std::string>> StorageBackend::load_job(const std::string& job_id) {
  std::string sql =
      std::string("SELECT document FROM gateway_jobs WHERE id = $1") + dialect().lock_row;
  return first_text(query("loading job " + job_id, sql.c_str(), {job_id}));
}

Result<std::optional<std::string>> StorageBackend::read_job(const std::string& job_id) {
  return first_text(
      query("reading job " + job_id, "SELECT document FROM gateway_jobs WHERE id = $1", {job_id}));
}

Status StorageBackend::insert_job(const std::string& job_id, JobStatus status,
                                  std::optional<std::int64_t> deadline_ms,
                                  const std::string& document, std::int64_t created_ms,
                                  const std::string& tool, const std::string& trace_id,
                                  const std::string& owner) {
  SqlArg deadline = nullptr;
  if (deadline_ms) deadline = *deadline_ms;
  bool trace_column = !trace_id.empty() && (dialect().derived_trace_ids_in_column ||
                                            trace_id != trace_id_of_job_id(job_id));
  return done(query("saving job " + job_id,
                    "INSERT INTO gateway_jobs(id, status, deadline_ms, document, created_ms, "
                    "tool, trace_id, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    {job_id, std::string(job_status_name(status)), deadline, document, created_ms,
                     tool, trace_column ? SqlArg(trace_id) : SqlArg(nullptr), owner}));
}

Status StorageBackend::update_job(const std::string& job_id, std::optional<JobStatus> new_status,
                                  const std::string& document) {
  // Only the columns that change: a database updates the indexes of the columns an UPDATE sets,
  // whether their values changed or not.
  if (!new_status) {
    return done(query("saving job " + job_id, "UPDATE gateway_jobs SET document = $2 WHERE id = $1",
                      {job_id, document}));
  }
  return done(query("saving job " + job_id,
                    "UPDATE gateway_jobs SET status = $2, document = $3 WHERE id = $1",
                    {job_id, std::string(job_status_name(*new_status)), document}));
}

Result<std::optional<std::string>> StorageBackend::job_of_envelope(const std::string& envelope_id) {
  // A root envelope's id is its job's id (and has no gateway_job_envelopes row unless an older
  // gateway or a PostgreSQL store wrote one: SqlDialect::root_envelope_rows).
  return first_text(query("looking up envelope " + envelope_id,
                          "SELECT id FROM gateway_jobs WHERE id = $1 UNION ALL "
                          "SELECT job_id FROM gateway_job_envelopes WHERE envelope_id = $1 LIMIT 1",
                          {envelope_id}));
}

Result<std::optional<std::string>> StorageBackend::status_of_envelope(
    const std::string& envelope_id) {
  return first_text(query("reading the status of envelope " + envelope_id,
                          "SELECT status FROM gateway_jobs WHERE id = $1 UNION ALL "
                          "SELECT j.status FROM gateway_job_envelopes e JOIN gateway_jobs j "
                          "ON j.id = e.job_id WHERE e.envelope_id = $1 LIMIT 1",
                          {envelope_id}));
}

Status StorageBackend::add_envelope(const std::string& envelope_id, const std::string& job_id) {
  return done(query("recording envelope " + envelope_id,
                    "INSERT INTO gateway_job_envelopes(envelope_id, job_id) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    {envelope_id, job_id}));
}

Status StorageBackend::add_update(const std::string& job_id, std::int64_t sequence,
                                  const std::string& document) {
  return done(query("recording an update of job " + job_id, dialect().insert_update,
                    {job_id, sequence, document}));
}

Result<std::vector<std::pair<std::int64_t, std::string>>> StorageBackend::updates_after(
    const std::string& job_id, std::int64_t sequence) {
  auto rows = query("reading updates of job " + job_id,
                    "SELECT sequence, document FROM gateway_job_updates WHERE job_id = $1 AND "
                    "sequence > $2 ORDER BY sequence",
                    {job_id, sequence});
  if (!rows.ok()) return rows.error();
  std::vector<std::pair<std::int64_t, std::string>> out;
  out.reserve(rows.value().size());
  for (auto& row : rows.value()) out.emplace_back(std::stoll(row.at(0)), std::move(row.at(1)));
  return out;
}

Result<std::vector<std::string>> StorageBackend::expired(std::int64_t now_ms) {
  auto rows = query("looking for expired jobs",
                    "SELECT id FROM gateway_jobs WHERE status IN ('pending', 'running') AND "
                    "deadline_ms IS NOT NULL AND deadline_ms <= $1",
                    {now_ms});
  if (!rows.ok()) return rows.error();
  std::vector<std::string> ids;
  ids.reserve(rows.value().size());
  for (auto& row : rows.value()) ids.push_back(std::move(row.at(0)));
  return ids;
}

Status StorageBackend::add_task(const std::string& job_id, const std::string& owner,
                                std::int64_t created_ms) {
  return done(query("recording task " + job_id,
                    "INSERT INTO gateway_tasks(id, owner, created_ms) VALUES ($1, $2, $3)",
                    {job_id, owner, created_ms}));
}

namespace {

std::vector<ListedRow> listed_rows(std::vector<SqlRow>& rows) {
  std::vector<ListedRow> out;
  out.reserve(rows.size());
  for (auto& row : rows)
    out.push_back(ListedRow{std::move(row.at(0)), std::stoll(row.at(1)), std::stoll(row.at(2))});
  return out;
}

Result<std::optional<std::int64_t>> order_of(StorageBackend& backend, const std::string& what,
                                             const std::string& sql, const std::string& id) {
  auto found = first_text(backend.query(what, sql.c_str(), {id}));
  if (!found.ok()) return found.error();
  if (!found.value()) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(std::stoll(*found.value()));
}

}  // namespace

Result<std::vector<ListedRow>> StorageBackend::list_tasks(const std::string& owner,
                                                          std::int64_t after_created_ms,
                                                          std::int64_t after_order,
                                                          std::int64_t limit) {
  const std::string order = dialect().creation_order;
  const std::string sql = "SELECT id, created_ms, " + order +
                          " FROM gateway_tasks WHERE owner = $1 AND (created_ms > $2 OR "
                          "(created_ms = $2 AND " +
                          order + " > $3)) ORDER BY created_ms, " + order + " LIMIT $4";
  auto rows = query("listing tasks", sql.c_str(), {owner, after_created_ms, after_order, limit});
  if (!rows.ok()) return rows.error();
  return listed_rows(rows.value());
}

Result<std::optional<std::int64_t>> StorageBackend::task_order(const std::string& task_id) {
  return order_of(
      *this, "reading the creation order of task " + task_id,
      std::string("SELECT ") + dialect().creation_order + " FROM gateway_tasks WHERE id = $1",
      task_id);
}

Result<std::vector<ListedRow>> StorageBackend::list_jobs(
    const std::string& status, const std::string& tool, const std::optional<std::string>& owner,
    std::int64_t before_created_ms, std::int64_t before_order, std::int64_t limit) {
  // Two statements rather than "($6 IS NULL OR owner = $6)": a plain equality lets both
  // databases walk the gateway_jobs_owner index in order (its entries end with the creation
  // order: SqlDialect::creation_order).
  const std::string order = dialect().creation_order;
  const std::string sql = "SELECT document, created_ms, " + order + " FROM gateway_jobs WHERE " +
                          (owner ? "owner = $6 AND " : "") +
                          "($1 = '' OR status = $1) AND ($2 = '' OR tool = $2) AND "
                          "(created_ms < $3 OR (created_ms = $3 AND " +
                          order + " < $4)) ORDER BY created_ms DESC, " + order + " DESC LIMIT $5";
  std::vector<SqlArg> args{status, tool, before_created_ms, before_order, limit};
  if (owner) args.emplace_back(*owner);
  auto rows = query("listing jobs", sql.c_str(), args);
  if (!rows.ok()) return rows.error();
  return listed_rows(rows.value());
}

Result<std::optional<std::int64_t>> StorageBackend::job_order(const std::string& job_id) {
  return order_of(
      *this, "reading the creation order of job " + job_id,
      std::string("SELECT ") + dialect().creation_order + " FROM gateway_jobs WHERE id = $1",
      job_id);
}

Result<std::optional<std::string>> StorageBackend::job_of_trace(const std::string& trace_id) {
  // A job whose trace id is its id's is found by its key (its trace_id column may be empty);
  // others by the trace index. The first condition compares the column too, so a job whose id
  // merely looks like the trace is not taken for it.
  return first_text(query("looking up the job of trace " + trace_id,
                          "SELECT id FROM gateway_jobs WHERE id = $2 AND "
                          "(trace_id IS NULL OR trace_id = $1) UNION ALL "
                          "SELECT id FROM gateway_jobs WHERE trace_id = $1 LIMIT 1",
                          {trace_id, job_id_of_trace_id(trace_id)}));
}

Status StorageBackend::lock_spans_of(const std::string& job_id) {
  if (!dialect().lock_job_spans) return Status::Ok();
  return done(query("locking the spans of job " + job_id, dialect().lock_job_spans, {job_id}));
}

Result<std::vector<std::string>> StorageBackend::stored_span_keys(const std::string& job_id) {
  // One statement for both layouts: a group row's index lines (kind 0), an old row's key (1).
  auto rows = query("reading the span ids of job " + job_id,
                    "SELECT 0, span_index FROM gateway_span_groups WHERE job_id = $1 UNION ALL "
                    "SELECT 1, trace_id || ' ' || span_id FROM gateway_spans WHERE job_id = $1",
                    {job_id});
  if (!rows.ok()) return rows.error();
  std::vector<std::string> keys;
  keys.reserve(rows.value().size() * 4);
  for (auto& row : rows.value()) {
    if (row.at(0) != "0") {
      keys.push_back(std::move(row.at(1)));
      continue;
    }
    Status read = span_keys_of_group(job_id, row.at(1), keys);
    if (!read.ok()) return Error{read.message()};
  }
  return keys;
}

Status StorageBackend::insert_span_group(const std::string& job_id, std::int64_t received_ms,
                                         const SpanGroupRow& row) {
  return done(query("storing spans of job " + job_id,
                    "INSERT INTO gateway_span_groups(job_id, first_span, received_ms, span_index, "
                    "documents) VALUES ($1, $2, $3, $4, $5)",
                    {job_id, row.first_span, received_ms, row.span_index, row.documents}));
}

Status StorageBackend::remove_spans_received_before(std::int64_t received_ms) {
  Status groups =
      done(query("removing old spans", "DELETE FROM gateway_span_groups WHERE received_ms < $1",
                 {received_ms}));
  if (!groups.ok()) return groups;
  return done(query("removing old spans", "DELETE FROM gateway_spans WHERE received_ms < $1",
                    {received_ms}));
}

Result<std::vector<SpanRecord>> StorageBackend::spans_of(const std::string& job_id) {
  auto rows = query("reading spans of job " + job_id,
                    "SELECT trace_id, span_id, start_ns, document FROM gateway_spans "
                    "WHERE job_id = $1",
                    {job_id});
  if (!rows.ok()) return rows.error();
  auto groups =
      query("reading spans of job " + job_id,
            "SELECT span_index, documents FROM gateway_span_groups WHERE job_id = $1", {job_id});
  if (!groups.ok()) return groups.error();
  std::vector<SpanRecord> out;
  out.reserve(rows.value().size() + groups.value().size() * 4);
  for (auto& row : rows.value()) {
    out.push_back(SpanRecord{job_id, std::move(row.at(0)), std::move(row.at(1)),
                             std::stoll(row.at(2)), std::move(row.at(3))});
  }
  for (const auto& group : groups.value()) {
    Status read = decode_span_group(job_id, group.at(0), group.at(1), out);
    if (!read.ok()) return Error{read.message()};
  }
  // Both databases sorted by (start_ns, span_id) before groups existed; the ids are hex, whose
  // byte order is the order of either database's text comparison.
  std::stable_sort(out.begin(), out.end(), [](const SpanRecord& a, const SpanRecord& b) {
    if (a.start_unix_nano != b.start_unix_nano) return a.start_unix_nano < b.start_unix_nano;
    return a.span_id < b.span_id;
  });
  // A span in both layouts (an older replica wrote its row while this one stored a group, during
  // a rolling upgrade on PostgreSQL: the older one takes no lock) is answered once.
  out.erase(std::unique(out.begin(), out.end(),
                        [](const SpanRecord& a, const SpanRecord& b) {
                          return a.start_unix_nano == b.start_unix_nano && a.span_id == b.span_id &&
                                 a.trace_id == b.trace_id;
                        }),
            out.end());
  return out;
}

Status StorageBackend::create_session(const std::string& id, const std::string& protocol_version,
                                      std::int64_t now_ms) {
  return done(query("creating MCP session " + id,
                    "INSERT INTO gateway_mcp_sessions(id, protocol_version, created_ms, "
                    "last_used_ms) VALUES ($1, $2, $3, $3)",
                    {id, protocol_version, now_ms}));
}

Result<SessionUse> StorageBackend::use_session(const std::string& id, std::int64_t now_ms,
                                               std::int64_t timeout_ms) {
  auto rows =
      query("reading MCP session " + id,
            "SELECT protocol_version, last_used_ms FROM gateway_mcp_sessions WHERE id = $1", {id});
  if (!rows.ok()) return rows.error();
  SessionUse use;
  if (rows.value().empty()) return use;
  std::int64_t last_used = std::stoll(rows.value().front().at(1));
  if (now_ms - last_used >= timeout_ms) {
    // Only if nobody used it meanwhile (another replica may have just done so).
    auto removed = query("removing expired MCP session " + id,
                         "DELETE FROM gateway_mcp_sessions WHERE id = $1 AND last_used_ms = $2",
                         {id, last_used});
    if (!removed.ok()) return removed.error();
    use.state = SessionUse::State::expired;
    return use;
  }
  // Marked used at most about once a second (or a quarter of the timeout when that is shorter),
  // so a busy session costs a write only now and then.
  std::int64_t slack = std::min<std::int64_t>(1000, timeout_ms / 4);
  if (now_ms - last_used >= slack) {
    auto touched = query("marking MCP session " + id + " used",
                         "UPDATE gateway_mcp_sessions SET last_used_ms = $2 "
                         "WHERE id = $1 AND last_used_ms < $2",
                         {id, now_ms});
    if (!touched.ok()) return touched.error();
  }
  use.state = SessionUse::State::active;
  use.protocol_version = std::move(rows.value().front().at(0));
  return use;
}

Result<bool> StorageBackend::end_session(const std::string& id) {
  auto rows = query("ending MCP session " + id,
                    "DELETE FROM gateway_mcp_sessions WHERE id = $1 RETURNING id", {id});
  if (!rows.ok()) return rows.error();
  return !rows.value().empty();
}

Result<std::int64_t> StorageBackend::sweep_sessions(std::int64_t now_ms, std::int64_t timeout_ms) {
  auto removed =
      query("removing expired MCP sessions",
            "DELETE FROM gateway_mcp_sessions WHERE last_used_ms <= $1", {now_ms - timeout_ms});
  if (!removed.ok()) return removed.error();
  auto count =
      first_text(query("counting MCP sessions", "SELECT COUNT(*) FROM gateway_mcp_sessions"));
  if (!count.ok()) return count.error();
  return count.value() ? std::stoll(*count.value()) : 0;
}

}  // namespace asya::gateway
