// The job store's rows and schema, once for both databases: every statement here is SQL that
// SQLite (3.35+) and PostgreSQL both accept, with $1, $2, ... parameters; what differs is in
// SqlDialect (backend.hpp).
#include <algorithm>
#include <string>

#include "gateway/store/backend.hpp"

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
};

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
    constexpr std::int64_t latest = sizeof(kMigrations) / sizeof(kMigrations[0]);
    if (version > latest) {
      return Error{where + " has schema version " + std::to_string(version) +
                   ", newer than this gateway knows (" + std::to_string(latest) +
                   "): upgrade the gateway"};
    }
    for (std::int64_t v = version; v < latest; ++v) {
      Status applied = script(kMigrations[v]);
      if (!applied.ok()) return applied;
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

Status StorageBackend::save_job(const std::string& job_id, JobStatus status,
                                std::optional<std::int64_t> deadline_ms,
                                const std::string& document, bool insert) {
  const char* sql =
      insert ? "INSERT INTO gateway_jobs(id, status, deadline_ms, document) VALUES ($1, $2, $3, $4)"
             : "UPDATE gateway_jobs SET status = $2, deadline_ms = $3, document = $4 WHERE id = $1";
  SqlArg deadline = nullptr;
  if (deadline_ms) deadline = *deadline_ms;
  return done(query("saving job " + job_id, sql,
                    {job_id, std::string(job_status_name(status)), deadline, document}));
}

Result<std::optional<std::string>> StorageBackend::job_of_envelope(const std::string& envelope_id) {
  return first_text(query("looking up envelope " + envelope_id,
                          "SELECT job_id FROM gateway_job_envelopes WHERE envelope_id = $1",
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

Result<std::vector<std::pair<std::string, std::int64_t>>> StorageBackend::list_tasks(
    const std::string& owner, std::int64_t after_created_ms, const std::string& after_id,
    std::int64_t limit) {
  auto rows = query("listing tasks",
                    "SELECT id, created_ms FROM gateway_tasks WHERE owner = $1 AND "
                    "(created_ms > $2 OR (created_ms = $2 AND id > $3)) "
                    "ORDER BY created_ms, id LIMIT $4",
                    {owner, after_created_ms, after_id, limit});
  if (!rows.ok()) return rows.error();
  std::vector<std::pair<std::string, std::int64_t>> out;
  out.reserve(rows.value().size());
  for (auto& row : rows.value()) out.emplace_back(std::move(row.at(0)), std::stoll(row.at(1)));
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
