// SQLite storage for the job store: one file, WAL, one connection guarded by a mutex.
#include <sqlite3.h>

#include <filesystem>
#include <mutex>

#include "common/env.hpp"
#include "gateway/store/backend.hpp"

namespace asya::gateway {
namespace {

// Schema migrations, applied in order; the version reached is kept in gateway_schema.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE IF NOT EXISTS gateway_jobs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  deadline_ms INTEGER,
  document TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gateway_jobs_open ON gateway_jobs(status, deadline_ms);
CREATE TABLE IF NOT EXISTS gateway_job_envelopes (
  envelope_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_job_updates (
  job_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  document TEXT NOT NULL,
  PRIMARY KEY (job_id, sequence));
)sql",
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return stmt_ != nullptr; }
  void bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int index, std::int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void bind_null(int index) { sqlite3_bind_null(stmt_, index); }
  int step() { return sqlite3_step(stmt_); }
  std::string text(int column) {
    const unsigned char* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, column))
             : std::string();
  }
  std::int64_t integer(int column) { return sqlite3_column_int64(stmt_, column); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteBackend final : public StorageBackend {
 public:
  explicit SqliteBackend(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw ConfigError("job store: cannot open SQLite database " + path_ + ": " + why +
                        " (set ASYA_GATEWAY_DB to a writable file path)");
    }
    sqlite3_busy_timeout(db_, 5000);
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"}) {
      if (!exec(pragma).ok()) throw ConfigError("job store: " + last_error(pragma));
    }
    Status migrated = migrate();
    if (!migrated.ok()) throw ConfigError("job store: " + migrated.message());
  }
  ~SqliteBackend() override { sqlite3_close(db_); }

  std::string_view name() const override { return "sqlite"; }

  Status transaction(const std::function<Status()>& body) override {
    std::lock_guard lock(mutex_);
    Status begun = exec("BEGIN IMMEDIATE");
    if (!begun.ok()) return begun;
    Status result = body();
    Status ended = exec(result.ok() ? "COMMIT" : "ROLLBACK");
    if (!result.ok()) return result;
    return ended;
  }

  Result<std::optional<std::string>> load_job(const std::string& job_id) override {
    return single_text("SELECT document FROM gateway_jobs WHERE id = ?1", job_id);
  }

  Status save_job(const std::string& job_id, JobStatus status,
                  std::optional<std::int64_t> deadline_ms, const std::string& document,
                  bool insert) override {
    const char* sql =
        insert
            ? "INSERT INTO gateway_jobs(id, status, deadline_ms, document) VALUES (?1, ?2, ?3, ?4)"
            : "UPDATE gateway_jobs SET status = ?2, deadline_ms = ?3, document = ?4 WHERE id = ?1";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, job_id);
    stmt.bind(2, std::string(job_status_name(status)));
    if (deadline_ms) {
      stmt.bind(3, *deadline_ms);
    } else {
      stmt.bind_null(3);
    }
    stmt.bind(4, document);
    if (stmt.step() != SQLITE_DONE) return Error{last_error("saving job " + job_id)};
    return Status::Ok();
  }

  Result<std::optional<std::string>> job_of_envelope(const std::string& envelope_id) override {
    return single_text("SELECT job_id FROM gateway_job_envelopes WHERE envelope_id = ?1",
                       envelope_id);
  }

  Status add_envelope(const std::string& envelope_id, const std::string& job_id) override {
    const char* sql =
        "INSERT OR IGNORE INTO gateway_job_envelopes(envelope_id, job_id) VALUES (?1, ?2)";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, envelope_id);
    stmt.bind(2, job_id);
    if (stmt.step() != SQLITE_DONE) return Error{last_error("recording envelope " + envelope_id)};
    return Status::Ok();
  }

  Status add_update(const std::string& job_id, std::int64_t sequence,
                    const std::string& document) override {
    const char* sql =
        "INSERT INTO gateway_job_updates(job_id, sequence, document) VALUES (?1, ?2, ?3)";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, job_id);
    stmt.bind(2, sequence);
    stmt.bind(3, document);
    if (stmt.step() != SQLITE_DONE)
      return Error{last_error("recording an update of job " + job_id)};
    return Status::Ok();
  }

  Result<std::vector<std::pair<std::int64_t, std::string>>> updates_after(
      const std::string& job_id, std::int64_t sequence) override {
    std::lock_guard lock(mutex_);
    const char* sql =
        "SELECT sequence, document FROM gateway_job_updates WHERE job_id = ?1 AND sequence > ?2 "
        "ORDER BY sequence";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, job_id);
    stmt.bind(2, sequence);
    std::vector<std::pair<std::int64_t, std::string>> rows;
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) rows.emplace_back(stmt.integer(0), stmt.text(1));
    if (rc != SQLITE_DONE) return Error{last_error("reading updates of job " + job_id)};
    return rows;
  }

  Result<std::vector<std::string>> expired(std::int64_t now_ms) override {
    std::lock_guard lock(mutex_);
    const char* sql =
        "SELECT id FROM gateway_jobs WHERE status IN ('pending', 'running') AND deadline_ms IS NOT "
        "NULL "
        "AND deadline_ms <= ?1";
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, now_ms);
    std::vector<std::string> ids;
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) ids.push_back(stmt.text(0));
    if (rc != SQLITE_DONE) return Error{last_error("looking for expired jobs")};
    return ids;
  }

  Status ping() override {
    std::lock_guard lock(mutex_);
    return exec("SELECT 1");
  }

 private:
  std::string last_error(const std::string& what) {
    return "SQLite " + path_ + ": " + what + ": " + sqlite3_errmsg(db_);
  }

  Status exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      return Error{"SQLite " + path_ + ": " + why};
    }
    return Status::Ok();
  }

  Result<std::optional<std::string>> single_text(const char* sql, const std::string& key) {
    Statement stmt(db_, sql);
    if (!stmt.ok()) return Error{last_error(sql)};
    stmt.bind(1, key);
    int rc = stmt.step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(stmt.text(0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return Error{last_error(sql)};
  }

  Status migrate() {
    return transaction([&]() -> Status {
      Status created = exec("CREATE TABLE IF NOT EXISTS gateway_schema (version INTEGER NOT NULL)");
      if (!created.ok()) return created;
      Statement read(db_, "SELECT COALESCE(MAX(version), 0) FROM gateway_schema");
      if (!read.ok() || read.step() != SQLITE_ROW)
        return Error{last_error("reading the schema version")};
      std::int64_t version = read.integer(0);
      constexpr std::int64_t latest = sizeof(kMigrations) / sizeof(kMigrations[0]);
      if (version > latest) {
        return Error{"SQLite " + path_ + " has schema version " + std::to_string(version) +
                     ", newer than this gateway knows (" + std::to_string(latest) +
                     "): upgrade the gateway"};
      }
      for (std::int64_t v = version; v < latest; ++v) {
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

  std::string path_;
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<StorageBackend> open_sqlite_backend(const std::string& path) {
  return std::make_unique<SqliteBackend>(path);
}

}  // namespace asya::gateway
