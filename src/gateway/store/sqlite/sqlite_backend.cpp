// SQLite storage for the job store: one file, WAL, one connection guarded by a mutex, prepared
// statements kept for reuse. Several processes may share the file (writers take turns through
// BEGIN IMMEDIATE and the busy timeout). The WAL is checkpointed by a thread of its own on a
// second connection (wal_checkpointer.hpp), not by the commit that fills it: a tool call's
// transaction never waits for a checkpoint's copy and fsync.
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/env.hpp"
#include "gateway/store/backend.hpp"
#include "gateway/store/sqlite/wal_checkpointer.hpp"
#include "gateway/store/transaction_group.hpp"

namespace asya::gateway {
namespace {

const SqlDialect kSqlite{
    "",
    "INSERT INTO gateway_job_updates(job_id, sequence, document) VALUES ($1, $2, $3)",
    nullptr,
    false,
    false,
    nullptr,  // lock_job_spans: BEGIN IMMEDIATE serialises every writer already
    // A new row's rowid is above every other's (no job or task row is ever deleted), and every
    // index entry ends with the rowid: indexes on (created_ms) list a millisecond's rows in the
    // order they were created, with no column or index more to write per job.
    "rowid",
    R"sql(
DROP INDEX IF EXISTS gateway_jobs_created;
CREATE INDEX gateway_jobs_created ON gateway_jobs(created_ms);
DROP INDEX IF EXISTS gateway_jobs_owner;
CREATE INDEX gateway_jobs_owner ON gateway_jobs(owner, created_ms);
DROP INDEX IF EXISTS gateway_tasks_owner;
CREATE INDEX gateway_tasks_owner ON gateway_tasks(owner, created_ms);
)sql",
    nullptr,
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
    // temp_store=MEMORY: the journals of savepoints (transaction_group.hpp) and statements stay
    // in memory; with the default they spill past 64 KiB to a temporary file, written page by
    // page (~15 % of the gateway's bytes written per tool call), needed only until the commit.
    for (const char* pragma :
         {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA temp_store=MEMORY"}) {
      Status set = script(pragma);
      if (!set.ok()) throw ConfigError("job store: " + set.message());
    }
    Status migrated = migrate("SQLite " + path_);
    if (!migrated.ok()) throw ConfigError("job store: " + migrated.message());
    // 4,000 pages (16 MiB): a checkpoint copies each page once however often it was committed
    // since the last one, and the job store commits the same few pages (the right edges of
    // its tables and indexes) with every job.
    checkpointer_ = std::make_unique<WalCheckpointer>(db_, path_, 4000);
  }
  ~SqliteBackend() override {
    checkpointer_.reset();  // before the connection its hook is installed on closes
    for (auto& [sql, statement] : statements_) sqlite3_finalize(statement.stmt);
    sqlite3_close(db_);
  }

  std::string_view name() const override { return "sqlite"; }
  const SqlDialect& dialect() const override { return kSqlite; }

  // Concurrent transactions share one BEGIN IMMEDIATE ... COMMIT (transaction_group.hpp).
  Status transaction(const std::function<Status()>& body) override { return group_.run(body); }
  std::vector<Status> transactions(
      const std::vector<const std::function<Status()>*>& bodies) override {
    return group_.run_all(bodies);
  }

  Result<std::vector<SqlRow>> query(const std::string& what, const char* sql,
                                    const std::vector<SqlArg>& args) override {
    std::lock_guard lock(mutex_);
    const Prepared* statement = prepared(sql);
    if (!statement) return Error{last_error(what)};
    sqlite3_stmt* stmt = statement->stmt;
    for (std::size_t i = 0; i < args.size(); ++i) {
      int index = i < statement->index_of.size() ? statement->index_of[i] : 0;
      if (index == 0) continue;
      if (const auto* text = std::get_if<std::string>(&args[i])) {
        sqlite3_bind_text(stmt, index, text->data(), static_cast<int>(text->size()),
                          SQLITE_TRANSIENT);
      } else if (const auto* number = std::get_if<std::int64_t>(&args[i])) {
        sqlite3_bind_int64(stmt, index, *number);
      } else {
        sqlite3_bind_null(stmt, index);
      }
    }
    std::vector<SqlRow> rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      int columns = sqlite3_column_count(stmt);
      SqlRow row;
      row.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        const unsigned char* p = sqlite3_column_text(stmt, c);
        row.emplace_back(
            p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt, c))
              : std::string());
      }
      rows.push_back(std::move(row));
    }
    Result<std::vector<SqlRow>> out = rc == SQLITE_DONE
                                          ? Result<std::vector<SqlRow>>(std::move(rows))
                                          : Result<std::vector<SqlRow>>(Error{last_error(what)});
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return out;
  }

  Status script(const char* sql) override {
    std::lock_guard lock(mutex_);
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      return Error{"SQLite " + path_ + ": " + why};
    }
    return Status::Ok();
  }

  Status ping() override { return script("SELECT 1"); }

 private:
  std::string last_error(const std::string& what) {
    return "SQLite " + path_ + ": " + what + ": " + sqlite3_errmsg(db_);
  }

  // BEGIN, COMMIT, SAVEPOINT ...: prepared once, not parsed again on every transaction.
  Status control(const char* sql) {
    std::lock_guard lock(mutex_);
    const Prepared* statement = prepared(sql);
    if (!statement) return Error{last_error(sql)};
    sqlite3_stmt* stmt = statement->stmt;
    int rc = sqlite3_step(stmt);
    Status out = rc == SQLITE_DONE ? Status::Ok() : Status(Error{last_error(sql)});
    sqlite3_reset(stmt);
    return out;
  }

  // A statement prepared once, and where its parameters $1, $2, ... are: SQLite numbers named
  // parameters in the order they first appear ("... SET status = $2 WHERE id = $1" binds $2
  // first), so index_of[k] is the bind index of $(k + 1) (0: not used by the statement).
  struct Prepared {
    sqlite3_stmt* stmt = nullptr;
    std::vector<int> index_of;
  };
  // Finds a statement by its text without building a std::string per query.
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  // The statement for `sql`, prepared on first use and kept (mutex_ held).
  const Prepared* prepared(const char* sql) {
    auto found = statements_.find(std::string_view(sql));
    if (found != statements_.end()) return &found->second;
    Prepared statement;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement.stmt, nullptr) !=
        SQLITE_OK)
      return nullptr;
    for (int index = 1; index <= sqlite3_bind_parameter_count(statement.stmt); ++index) {
      const char* name = sqlite3_bind_parameter_name(statement.stmt, index);
      if (!name || name[0] != '$') continue;
      const long number = std::strtol(name + 1, nullptr, 10);
      if (number < 1) continue;
      if (statement.index_of.size() < static_cast<std::size_t>(number))
        statement.index_of.resize(number, 0);
      statement.index_of[number - 1] = index;
    }
    return &statements_.emplace(sql, std::move(statement)).first->second;
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::recursive_mutex mutex_;  // a transaction's body runs query() on the same thread
  std::unordered_map<std::string, Prepared, TextHash, std::equal_to<>> statements_;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  TransactionGroup group_{[this](const std::vector<const TransactionGroup::Body*>& bodies,
                                 std::vector<Status>& results) {
    std::lock_guard lock(mutex_);
    run_batch([this](const char* sql) { return control(sql); }, "BEGIN IMMEDIATE", bodies, results);
  }};
};

}  // namespace

std::unique_ptr<StorageBackend> open_sqlite_backend(const std::string& path) {
  return std::make_unique<SqliteBackend>(path);
}

}  // namespace asya::gateway
