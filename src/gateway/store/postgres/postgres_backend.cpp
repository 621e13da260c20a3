// PostgreSQL storage for the job store (libpq). One connection guarded by a mutex; rows are locked
// with SELECT ... FOR UPDATE so several gateway replicas can share one database. The schema is
// created and migrated on open under an advisory lock. Every change of a job also sends
// NOTIFY asya_gateway_jobs '<job id>' (delivered at commit); watch() LISTENs on a second
// connection in a background thread, so a replica wakes its waiters when another one recorded a
// sidecar's report.
#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "common/env.hpp"
#include "common/log.hpp"
#include "gateway/store/backend.hpp"

namespace asya::gateway {
namespace {

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
};

// Owns a PGresult.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}
  ~PgResult() { PQclear(result_); }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  PGresult* get() const { return result_; }
  bool ok() const {
    auto status = PQresultStatus(result_);
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  }
  int rows() const { return PQntuples(result_); }
  std::string text(int row, int column) const {
    return std::string(PQgetvalue(result_, row, column), PQgetlength(result_, row, column));
  }

 private:
  PGresult* result_;
};

class PostgresBackend final : public StorageBackend {
 public:
  explicit PostgresBackend(std::string url) : url_(std::move(url)) {
    connection_ = PQconnectdb(url_.c_str());
    if (PQstatus(connection_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(connection_);
      PQfinish(connection_);
      connection_ = nullptr;
      throw ConfigError("job store: cannot connect to PostgreSQL (ASYA_DATABASE_URL=" + redacted() +
                        "): " + trim(why));
    }
    Status migrated = migrate();
    if (!migrated.ok()) throw ConfigError("job store: " + migrated.message());
  }
  ~PostgresBackend() override {
    unwatch();
    PQfinish(connection_);
  }

  std::string_view name() const override { return "postgres"; }

  Status transaction(const std::function<Status()>& body) override {
    std::lock_guard lock(mutex_);
    Status begun = exec("BEGIN");
    if (!begun.ok()) {
      // A broken connection is re-established once; the caller's operation is not retried here.
      PQreset(connection_);
      begun = exec("BEGIN");
      if (!begun.ok()) return begun;
    }
    Status result = body();
    Status ended = exec(result.ok() ? "COMMIT" : "ROLLBACK");
    if (!result.ok()) return result;
    return ended;
  }

  Result<std::optional<std::string>> load_job(const std::string& job_id) override {
    return single_text("SELECT document FROM gateway_jobs WHERE id = $1 FOR UPDATE", {job_id});
  }

  Status save_job(const std::string& job_id, JobStatus status,
                  std::optional<std::int64_t> deadline_ms, const std::string& document,
                  bool insert) override {
    const char* sql =
        insert
            ? "INSERT INTO gateway_jobs(id, status, deadline_ms, document) VALUES ($1, $2, $3, $4)"
            : "UPDATE gateway_jobs SET status = $2, deadline_ms = $3, document = $4 WHERE id = $1";
    std::string deadline = deadline_ms ? std::to_string(*deadline_ms) : "";
    const char* values[4] = {job_id.c_str(), job_status_name(status),
                             deadline_ms ? deadline.c_str() : nullptr, document.c_str()};
    PgResult result(PQexecParams(connection_, sql, 4, nullptr, values, nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, "saving job " + job_id)};
    return Status::Ok();
  }

  Result<std::optional<std::string>> job_of_envelope(const std::string& envelope_id) override {
    return single_text("SELECT job_id FROM gateway_job_envelopes WHERE envelope_id = $1",
                       {envelope_id});
  }

  Status add_envelope(const std::string& envelope_id, const std::string& job_id) override {
    return params(
        "INSERT INTO gateway_job_envelopes(envelope_id, job_id) VALUES ($1, $2) ON CONFLICT DO "
        "NOTHING",
        {envelope_id, job_id}, "recording envelope " + envelope_id);
  }

  Status add_update(const std::string& job_id, std::int64_t sequence,
                    const std::string& document) override {
    // One round trip: the row and the notification (sent by PostgreSQL at commit).
    return params(
        "WITH added AS (INSERT INTO gateway_job_updates(job_id, sequence, document) "
        "VALUES ($1, $2, $3) RETURNING job_id) "
        "SELECT pg_notify('asya_gateway_jobs', job_id) FROM added",
        {job_id, std::to_string(sequence), document}, "recording an update of job " + job_id);
  }

  Result<std::vector<std::pair<std::int64_t, std::string>>> updates_after(
      const std::string& job_id, std::int64_t sequence) override {
    std::lock_guard lock(mutex_);
    std::string after = std::to_string(sequence);
    const char* values[2] = {job_id.c_str(), after.c_str()};
    PgResult result(
        PQexecParams(connection_,
                     "SELECT sequence, document FROM gateway_job_updates WHERE job_id = $1 AND "
                     "sequence > $2 ORDER BY sequence",
                     2, nullptr, values, nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, "reading updates of job " + job_id)};
    std::vector<std::pair<std::int64_t, std::string>> rows;
    for (int i = 0; i < result.rows(); ++i)
      rows.emplace_back(std::stoll(result.text(i, 0)), result.text(i, 1));
    return rows;
  }

  Result<std::vector<std::string>> expired(std::int64_t now_ms) override {
    std::lock_guard lock(mutex_);
    std::string now = std::to_string(now_ms);
    const char* values[1] = {now.c_str()};
    PgResult result(
        PQexecParams(connection_,
                     "SELECT id FROM gateway_jobs WHERE status IN ('pending', 'running') AND "
                     "deadline_ms IS NOT NULL AND deadline_ms <= $1",
                     1, nullptr, values, nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, "looking for expired jobs")};
    std::vector<std::string> ids;
    for (int i = 0; i < result.rows(); ++i) ids.push_back(result.text(i, 0));
    return ids;
  }

  void watch(std::function<void(const std::string&)> on_change) override {
    unwatch();
    stop_watching_ = false;
    watcher_ = std::thread([this, on_change = std::move(on_change)] { listen(on_change); });
  }

  void unwatch() override {
    if (!watcher_.joinable()) return;
    stop_watching_ = true;
    watcher_.join();
  }

  Status ping() override {
    std::lock_guard lock(mutex_);
    Status status = exec("SELECT 1");
    if (!status.ok()) {
      PQreset(connection_);
      status = exec("SELECT 1");
    }
    return status;
  }

 private:
  static std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }

  // The URL without its password, for messages.
  std::string redacted() const {
    std::string out = url_;
    auto scheme = out.find("://");
    auto at = out.find('@');
    if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
      auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
    return out;
  }

  std::string error_of(const PgResult& result, const std::string& what) {
    return "PostgreSQL " + redacted() + ": " + what + ": " +
           trim(PQresultErrorMessage(result.get()));
  }

  Status exec(const char* sql) {
    PgResult result(PQexec(connection_, sql));
    if (!result.ok()) return Error{error_of(result, sql)};
    return Status::Ok();
  }

  Status params(const char* sql, const std::vector<std::string>& args, const std::string& what) {
    std::vector<const char*> values;
    for (const auto& a : args) values.push_back(a.c_str());
    PgResult result(PQexecParams(connection_, sql, static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, what)};
    return Status::Ok();
  }

  Result<std::optional<std::string>> single_text(const char* sql,
                                                 const std::vector<std::string>& args) {
    std::vector<const char*> values;
    for (const auto& a : args) values.push_back(a.c_str());
    PgResult result(PQexecParams(connection_, sql, static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, sql)};
    if (result.rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(result.text(0, 0));
  }

  Status migrate() {
    return transaction([&]() -> Status {
      // One gateway migrates at a time; the others wait here and then find the schema current.
      Status locked = exec("SELECT pg_advisory_xact_lock(7261737961)");
      if (!locked.ok()) return locked;
      Status created = exec("CREATE TABLE IF NOT EXISTS gateway_schema (version INTEGER NOT NULL)");
      if (!created.ok()) return created;
      PgResult read(PQexec(connection_, "SELECT COALESCE(MAX(version), 0) FROM gateway_schema"));
      if (!read.ok() || read.rows() != 1)
        return Error{error_of(read, "reading the schema version")};
      long version = std::stol(read.text(0, 0));
      constexpr long latest = sizeof(kMigrations) / sizeof(kMigrations[0]);
      if (version > latest) {
        return Error{"PostgreSQL schema version " + std::to_string(version) +
                     " is newer than this gateway knows (" + std::to_string(latest) +
                     "): upgrade the gateway"};
      }
      for (long v = version; v < latest; ++v) {
        Status applied = exec(kMigrations[v]);
        if (!applied.ok()) return applied;
      }
      if (version != latest) {
        Status cleared = exec("DELETE FROM gateway_schema");
        if (!cleared.ok()) return cleared;
        std::string sql =
            "INSERT INTO gateway_schema(version) VALUES (" + std::to_string(latest) + ")";
        return exec(sql.c_str());
      }
      return Status::Ok();
    });
  }

  // The watcher thread: LISTEN on its own connection, reconnecting (every second at most) when it
  // breaks; polls the socket in 200 ms slices so unwatch() returns quickly.
  void listen(const std::function<void(const std::string&)>& on_change) {
    PGconn* listener = nullptr;
    bool warned = false;
    auto next_attempt = std::chrono::steady_clock::now();
    while (!stop_watching_) {
      if (!listener) {
        if (std::chrono::steady_clock::now() < next_attempt) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        next_attempt = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        listener = PQconnectdb(url_.c_str());
        bool ok = PQstatus(listener) == CONNECTION_OK;
        std::string why = ok ? "" : trim(PQerrorMessage(listener));
        if (ok) {
          PgResult listening(PQexec(listener, "LISTEN asya_gateway_jobs"));
          ok = listening.ok();
          if (!ok) why = trim(PQresultErrorMessage(listening.get()));
        }
        if (!ok) {
          if (!warned) {
            spdlog::warn(
                "gateway: cannot LISTEN for job changes on PostgreSQL {} ({}); other replicas' "
                "changes are seen by polling until it works",
                redacted(), why);
            warned = true;
          }
          PQfinish(listener);
          listener = nullptr;
          continue;
        }
        if (warned) spdlog::info("gateway: listening for job changes on PostgreSQL again");
        warned = false;
      }
      pollfd watched{PQsocket(listener), POLLIN, 0};
      int ready = ::poll(&watched, 1, 200);
      if (ready < 0 && errno != EINTR) ready = 1;  // let PQconsumeInput report the problem
      if (ready <= 0) continue;
      if (!PQconsumeInput(listener)) {
        spdlog::warn("gateway: the PostgreSQL LISTEN connection broke ({}); reconnecting",
                     trim(PQerrorMessage(listener)));
        warned = true;
        PQfinish(listener);
        listener = nullptr;
        continue;
      }
      while (PGnotify* notification = PQnotifies(listener)) {
        std::string job_id = notification->extra ? notification->extra : "";
        PQfreemem(notification);
        if (!job_id.empty()) on_change(job_id);
      }
    }
    if (listener) PQfinish(listener);
  }

  std::string url_;
  PGconn* connection_ = nullptr;
  std::mutex mutex_;
  std::thread watcher_;
  std::atomic<bool> stop_watching_{false};
};

}  // namespace

std::unique_ptr<StorageBackend> open_postgres_backend(const std::string& url) {
  return std::make_unique<PostgresBackend>(url);
}

}  // namespace asya::gateway
