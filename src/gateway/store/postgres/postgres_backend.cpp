// PostgreSQL storage for the job store (libpq). One connection guarded by a mutex; job rows are
// locked with SELECT ... FOR UPDATE so several gateway replicas can share one database. The schema
// (storage.cpp) is created and migrated on open under an advisory lock. Every change of a job also
// sends NOTIFY asya_gateway_jobs '<job id>' (delivered at commit); watch() LISTENs on a second
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
#include "common/postgres/connection.hpp"
#include "gateway/store/backend.hpp"
#include "gateway/store/transaction_group.hpp"

namespace asya::gateway {
namespace {

const SqlDialect kPostgres{
    " FOR UPDATE",
    // One round trip: the row and the notification (sent by PostgreSQL at commit).
    "WITH added AS (INSERT INTO gateway_job_updates(job_id, sequence, document) "
    "VALUES ($1, $2, $3) RETURNING job_id) "
    "SELECT pg_notify('asya_gateway_jobs', job_id) FROM added",
    "SELECT pg_advisory_xact_lock(7261737961)",
    true,
    true,
    // Two int4 keys: a key space apart from the migration's single bigint key.
    "SELECT pg_advisory_xact_lock(1635349345, hashtext($1))",
    // A sequence shared by every replica: jobs one caller creates one after the other are in
    // that order, whichever replica created them. Replicas of an older version get it from the
    // column's default.
    "seq",
    R"sql(
CREATE SEQUENCE IF NOT EXISTS gateway_jobs_seq;
ALTER TABLE gateway_jobs ADD COLUMN IF NOT EXISTS seq BIGINT NOT NULL
  DEFAULT nextval('gateway_jobs_seq');
DROP INDEX IF EXISTS gateway_jobs_created;
CREATE INDEX gateway_jobs_created ON gateway_jobs(created_ms, seq);
DROP INDEX IF EXISTS gateway_jobs_owner;
CREATE INDEX gateway_jobs_owner ON gateway_jobs(owner, created_ms, seq);
CREATE SEQUENCE IF NOT EXISTS gateway_tasks_seq;
ALTER TABLE gateway_tasks ADD COLUMN IF NOT EXISTS seq BIGINT NOT NULL
  DEFAULT nextval('gateway_tasks_seq');
DROP INDEX IF EXISTS gateway_tasks_owner;
CREATE INDEX gateway_tasks_owner ON gateway_tasks(owner, created_ms, seq);
)sql",
    // The rows of an older database, numbered in the order they were listed in.
    R"sql(
UPDATE gateway_jobs AS j SET seq = o.n FROM (SELECT id, row_number() OVER (ORDER BY created_ms, id)
  AS n FROM gateway_jobs) AS o WHERE j.id = o.id;
SELECT setval('gateway_jobs_seq', COALESCE((SELECT MAX(seq) FROM gateway_jobs), 0) + 1, false);
UPDATE gateway_tasks AS t SET seq = o.n FROM (SELECT id, row_number() OVER (ORDER BY created_ms, id)
  AS n FROM gateway_tasks) AS o WHERE t.id = o.id;
SELECT setval('gateway_tasks_seq', COALESCE((SELECT MAX(seq) FROM gateway_tasks), 0) + 1, false);
)sql",
};

using postgres::PgResult;

class PostgresBackend final : public StorageBackend {
 public:
  explicit PostgresBackend(std::string url) : url_(std::move(url)) {
    connection_ = PQconnectdb(url_.c_str());
    if (PQstatus(connection_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(connection_);
      PQfinish(connection_);
      connection_ = nullptr;
      throw ConfigError("job store: cannot connect to PostgreSQL (ASYA_DATABASE_URL=" + redacted() +
                        "): " + trim(why.c_str()));
    }
    Status migrated = migrate("PostgreSQL " + redacted());
    if (!migrated.ok()) throw ConfigError("job store: " + migrated.message());
  }
  ~PostgresBackend() override {
    unwatch();
    PQfinish(connection_);
  }

  std::string_view name() const override { return "postgres"; }

  const SqlDialect& dialect() const override { return kPostgres; }

  // Concurrent transactions share one BEGIN ... COMMIT (transaction_group.hpp).
  Status transaction(const std::function<Status()>& body) override { return group_.run(body); }
  std::vector<Status> transactions(
      const std::vector<const std::function<Status()>*>& bodies) override {
    return group_.run_all(bodies);
  }

  Result<std::vector<SqlRow>> query(const std::string& what, const char* sql,
                                    const std::vector<SqlArg>& args) override {
    std::lock_guard lock(mutex_);
    // On its own (not in a transaction), a connection found broken is re-established once.
    if (transaction_depth_ == 0 && PQstatus(connection_) == CONNECTION_BAD) PQreset(connection_);
    std::vector<std::string> texts(args.size());
    std::vector<const char*> values(args.size(), nullptr);
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (const auto* text = std::get_if<std::string>(&args[i])) {
        values[i] = text->c_str();
      } else if (const auto* number = std::get_if<std::int64_t>(&args[i])) {
        texts[i] = std::to_string(*number);
        values[i] = texts[i].c_str();
      }
    }
    PgResult result(PQexecParams(connection_, sql, static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    if (!result.ok()) return Error{error_of(result, what)};
    std::vector<SqlRow> rows(result.rows());
    int columns = PQnfields(result.get());
    for (int r = 0; r < result.rows(); ++r) {
      rows[r].reserve(columns);
      for (int c = 0; c < columns; ++c) rows[r].emplace_back(result.text(r, c));
    }
    return rows;
  }

  Status script(const char* sql) override {
    std::lock_guard lock(mutex_);
    PgResult result(PQexec(connection_, sql));
    if (!result.ok()) return Error{error_of(result, sql)};
    return Status::Ok();
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
    Status status = script("SELECT 1");
    if (!status.ok()) {
      PQreset(connection_);
      status = script("SELECT 1");
    }
    return status;
  }

 private:
  static std::string trim(const char* message) { return postgres::trimmed(message); }
  std::string redacted() const { return postgres::redacted(url_); }

  std::string error_of(const PgResult& result, const std::string& what) {
    return "PostgreSQL " + redacted() + ": " + what + ": " +
           trim(PQresultErrorMessage(result.get()));
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
  std::recursive_mutex mutex_;  // a transaction's body runs query() on the same thread
  int transaction_depth_ = 0;   // guarded by mutex_
  std::thread watcher_;
  TransactionGroup group_{[this](const std::vector<const TransactionGroup::Body*>& bodies,
                                 std::vector<Status>& results) {
    std::lock_guard lock(mutex_);
    auto exec = [this](const char* sql) -> Status {
      Status status = script(sql);
      if (!status.ok() && transaction_depth_ == 0) {
        // A broken connection is re-established once (at BEGIN); the callers' operations are
        // not retried here.
        PQreset(connection_);
        status = script(sql);
      }
      if (status.ok()) transaction_depth_ = 1;
      return status;
    };
    run_batch(exec, "BEGIN", bodies, results);
    transaction_depth_ = 0;
  }};
  std::atomic<bool> stop_watching_{false};
};

}  // namespace

std::unique_ptr<StorageBackend> open_postgres_backend(const std::string& url) {
  return std::make_unique<PostgresBackend>(url);
}

}  // namespace asya::gateway
