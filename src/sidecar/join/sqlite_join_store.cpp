// The SQLite join store (join_store.hpp), the default: one file next to the queue database, shared
// by every replica of the join actors on the host. One connection per store object, used under a
// mutex; write transactions are BEGIN IMMEDIATE, so deciding a group is serialised across
// processes by SQLite's write lock.
//
// Schema: join_groups holds one row per group (count, stored, the join input's head, state 0 open /
// 1 decided (the outbox row) / 2 published (tombstone), the reason it was decided, the lease of
// the replica publishing it, how many times it was claimed and why the last attempt failed);
// join_branches holds one row per stored branch; join_held one row per stored branch whose payload
// is a reference into the payload store (its object's SHA-256), deleted with the branches.
#include <fmt/format.h>
#include <sqlite3.h>

#include <mutex>

#include "sidecar/join/join_store.hpp"

namespace asya::sidecar::join {
namespace {

using Clock = std::chrono::system_clock;

std::int64_t to_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS join_groups(
  group_id TEXT PRIMARY KEY, actor TEXT NOT NULL, count INTEGER NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0,
  head TEXT NOT NULL, expires_ms INTEGER, state INTEGER NOT NULL DEFAULT 0, reason INTEGER,
  owner TEXT, lease_until_ms INTEGER NOT NULL DEFAULT 0, decided_ms INTEGER);
CREATE INDEX IF NOT EXISTS join_groups_by_state ON join_groups(state, expires_ms);
CREATE INDEX IF NOT EXISTS join_groups_by_actor ON join_groups(actor, state, lease_until_ms);
CREATE TABLE IF NOT EXISTS join_branches(
  group_id TEXT NOT NULL, idx INTEGER NOT NULL, failed INTEGER NOT NULL, payload BLOB NOT NULL,
  PRIMARY KEY(group_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS join_held(
  group_id TEXT NOT NULL, idx INTEGER NOT NULL, sha256 TEXT NOT NULL,
  PRIMARY KEY(group_id, idx)) WITHOUT ROWID;
)sql";

// Columns added after the first release; a store created before gets them on open.
constexpr const char* kAddedColumns[] = {
    "ALTER TABLE join_groups ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE join_groups ADD COLUMN last_error TEXT",
};

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return stmt_ != nullptr; }
  Statement& text(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  int step() { return sqlite3_step(stmt_); }
  std::int64_t column_int(int i) { return sqlite3_column_int64(stmt_, i); }
  bool column_null(int i) { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string_view column_text(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    int n = sqlite3_column_bytes(stmt_, i);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n))
             : std::string_view();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteJoinStore final : public JoinStore {
 public:
  SqliteJoinStore(std::string path, const JoinStoreOptions& options)
      : path_(std::move(path)), retention_(options.tombstone_retention) {
    if (sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw ConfigError(
          fmt::format("ASYA_JOIN_STORE: cannot open SQLite join store \"{}\": {}", path_, why));
    }
    sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
    for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
      if (Status st = exec(sql); !st) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw ConfigError(fmt::format("ASYA_JOIN_STORE: cannot set up SQLite join store \"{}\": {}",
                                      path_, st.message()));
      }
    }
    for (const char* sql : kAddedColumns) {
      // Replicas opening one store at once: the second one finds the column there already.
      if (Status st = exec(sql);
          !st && st.message().find("duplicate column") == std::string::npos) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw ConfigError(fmt::format(
            "ASYA_JOIN_STORE: cannot upgrade SQLite join store \"{}\": {}", path_, st.message()));
      }
    }
  }
  ~SqliteJoinStore() override { sqlite3_close(db_); }

  std::string_view name() const override { return "sqlite"; }

  Result<PutResult> put_branch(const BranchIn& b) override {
    std::lock_guard lock(mutex_);
    PutResult result;
    Status st = transaction([&]() -> Status {
      Statement find(db_, "SELECT count, stored, state FROM join_groups WHERE group_id = ?1");
      find.text(1, b.group);
      int rc = find.step();
      std::size_t count = b.count, stored = 0;
      if (rc == SQLITE_ROW) {
        count = static_cast<std::size_t>(find.column_int(0));
        stored = static_cast<std::size_t>(find.column_int(1));
        if (find.column_int(2) != 0) {
          result = {PutOutcome::kAlreadyJoined, stored, count};
          Statement same(db_, "SELECT 1 FROM join_branches WHERE group_id = ?1 AND idx = ?2");
          same.text(1, b.group).integer(2, static_cast<std::int64_t>(b.index));
          rc = same.step();
          if (rc != SQLITE_ROW && rc != SQLITE_DONE) return error("read branch");
          result.unused = rc == SQLITE_DONE;
          return Status::Ok();
        }
        if (count != b.count)
          return Error{fmt::format("group {}: branch {} says count {}, the group has count {}",
                                   b.group, b.index, b.count, count)};
      } else if (rc == SQLITE_DONE) {
        Statement insert(db_,
                         "INSERT INTO join_groups(group_id, count, head, expires_ms, actor) "
                         "VALUES(?1, ?2, ?3, ?4, ?5)");
        insert.text(5, b.actor);
        insert.text(1, b.group).integer(2, static_cast<std::int64_t>(b.count)).text(3, b.head);
        if (b.timeout.count() > 0)
          insert.integer(4, to_ms(Clock::now()) + b.timeout.count());
        else
          insert.null(4);
        if (insert.step() != SQLITE_DONE) return error("insert group");
      } else {
        return error("read group");
      }
      if (b.index >= count)
        return Error{
            fmt::format("group {}: index {} is not below count {}", b.group, b.index, count)};
      Statement branch(db_,
                       "INSERT OR IGNORE INTO join_branches(group_id, idx, failed, payload) "
                       "VALUES(?1, ?2, ?3, ?4)");
      branch.text(1, b.group)
          .integer(2, static_cast<std::int64_t>(b.index))
          .integer(3, b.failed ? 1 : 0)
          .blob(4, b.payload);
      if (branch.step() != SQLITE_DONE) return error("insert branch");
      if (sqlite3_changes(db_) == 0) {
        result = {PutOutcome::kDuplicate, stored, count};
        return Status::Ok();
      }
      if (!b.held_sha256.empty()) {
        Statement held(db_,
                       "INSERT OR IGNORE INTO join_held(group_id, idx, sha256) VALUES(?1, ?2, ?3)");
        held.text(1, b.group).integer(2, static_cast<std::int64_t>(b.index)).text(3, b.held_sha256);
        if (held.step() != SQLITE_DONE) return error("record held branch");
      }
      ++stored;
      const bool complete = stored == count;
      Statement update(db_,
                       "UPDATE join_groups SET stored = ?2, state = ?3, reason = ?4, "
                       "decided_ms = ?5 WHERE group_id = ?1");
      update.text(1, b.group).integer(2, static_cast<std::int64_t>(stored));
      update.integer(3, complete ? 1 : 0);
      if (complete)
        update.integer(4, 0).integer(5, to_ms(Clock::now()));
      else
        update.null(4).null(5);
      if (update.step() != SQLITE_DONE) return error("update group");
      result = {complete ? PutOutcome::kCompleted : PutOutcome::kStored, stored, count};
      return Status::Ok();
    });
    if (!st) return st.error();
    return result;
  }

  Result<std::size_t> expire(Clock::time_point now) override {
    std::lock_guard lock(mutex_);
    std::size_t expired = 0;
    Status st = transaction([&]() -> Status {
      Statement update(db_,
                       "UPDATE join_groups SET state = 1, reason = 1, decided_ms = ?1 "
                       "WHERE state = 0 AND expires_ms IS NOT NULL AND expires_ms <= ?1");
      update.integer(1, to_ms(now));
      if (update.step() != SQLITE_DONE) return error("expire groups");
      expired = static_cast<std::size_t>(sqlite3_changes(db_));
      // Rows of groups finished by a sidecar that did not know join_held (finish() deletes them).
      Statement gc_held(db_,
                        "DELETE FROM join_held WHERE group_id IN (SELECT group_id FROM "
                        "join_groups WHERE state = 2 AND decided_ms < ?1)");
      gc_held.integer(1, to_ms(now - retention_));
      if (gc_held.step() != SQLITE_DONE) return error("remove held rows of old tombstones");
      Statement gc(db_, "DELETE FROM join_groups WHERE state = 2 AND decided_ms < ?1");
      gc.integer(1, to_ms(now - retention_));
      if (gc.step() != SQLITE_DONE) return error("remove old tombstones");
      return Status::Ok();
    });
    if (!st) return st.error();
    return expired;
  }

  Result<std::optional<ClaimedGroup>> claim(std::string_view actor, std::string_view owner,
                                            std::chrono::milliseconds lease) override {
    std::lock_guard lock(mutex_);
    std::optional<ClaimedGroup> claimed;
    Status st = transaction([&]() -> Status {
      const std::int64_t now = to_ms(Clock::now());
      Statement pick(db_,
                     "SELECT group_id, reason, count, head, attempts, coalesce(last_error, '') "
                     "FROM join_groups WHERE actor = ?2 AND state = 1 AND lease_until_ms <= ?1 "
                     "LIMIT 1");
      pick.integer(1, now).text(2, actor);
      int rc = pick.step();
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) return error("pick decided group");
      ClaimedGroup g;
      g.owner = std::string(owner);
      g.group = std::string(pick.column_text(0));
      g.reason = pick.column_int(1) == 1 ? DecidedBecause::kTimeout : DecidedBecause::kComplete;
      g.count = static_cast<std::size_t>(pick.column_int(2));
      g.head = std::string(pick.column_text(3));
      g.attempts = static_cast<std::size_t>(pick.column_int(4)) + 1;
      g.last_error = std::string(pick.column_text(5));
      Statement lease_it(db_,
                         "UPDATE join_groups SET owner = ?2, lease_until_ms = ?3, "
                         "attempts = attempts + 1 WHERE group_id = ?1");
      lease_it.text(1, g.group).text(2, owner).integer(3, now + lease.count());
      if (lease_it.step() != SQLITE_DONE) return error("lease decided group");
      Statement indexes(db_,
                        "SELECT idx, failed FROM join_branches WHERE group_id = ?1 ORDER BY idx");
      indexes.text(1, g.group);
      std::size_t expected = 0;
      while ((rc = indexes.step()) == SQLITE_ROW) {
        auto idx = static_cast<std::size_t>(indexes.column_int(0));
        for (; expected < idx; ++expected) g.missing.push_back(expected);
        expected = idx + 1;
        if (indexes.column_int(1) != 0) g.failed.push_back(idx);
      }
      if (rc != SQLITE_DONE) return error("read branch indexes");
      for (; expected < g.count; ++expected) g.missing.push_back(expected);
      claimed = std::move(g);
      return Status::Ok();
    });
    if (!st) return st.error();
    return claimed;
  }

  Status read_branches(
      std::string_view group,
      const std::function<Status(std::size_t, bool, std::string_view)>& each) override {
    std::lock_guard lock(mutex_);
    Statement rows(db_,
                   "SELECT idx, failed, payload FROM join_branches WHERE group_id = ?1 "
                   "ORDER BY idx");
    if (!rows.ok()) return error("read branches");
    rows.text(1, group);
    int rc;
    while ((rc = rows.step()) == SQLITE_ROW) {
      Status st = each(static_cast<std::size_t>(rows.column_int(0)), rows.column_int(1) != 0,
                       rows.column_text(2));
      if (!st) return st;
    }
    return rc == SQLITE_DONE ? Status::Ok() : error("read branches");
  }

  Result<std::vector<HeldBranch>> held_branches(std::string_view actor, std::string_view group,
                                                const HeldBranch* after,
                                                std::size_t limit) override {
    std::lock_guard lock(mutex_);
    Statement rows(db_,
                   "SELECT h.group_id, h.idx, h.sha256 FROM join_held h JOIN join_groups g "
                   "ON g.group_id = h.group_id WHERE g.actor = ?1 AND g.state < 2 "
                   "AND (coalesce(?2, '') = '' OR h.group_id = ?2) "
                   "AND (h.group_id > ?3 OR (h.group_id = ?3 AND h.idx > ?4)) "
                   "ORDER BY h.group_id, h.idx LIMIT ?5");
    if (!rows.ok()) return error("list held branches");
    rows.text(1, actor).text(2, group).text(3, after ? std::string_view(after->group) : "");
    rows.integer(4, after ? static_cast<std::int64_t>(after->index) : -1);
    rows.integer(5, static_cast<std::int64_t>(limit));
    std::vector<HeldBranch> out;
    int rc;
    while ((rc = rows.step()) == SQLITE_ROW)
      out.push_back({std::string(rows.column_text(0)), static_cast<std::size_t>(rows.column_int(1)),
                     std::string(rows.column_text(2))});
    if (rc != SQLITE_DONE) return error("list held branches");
    return out;
  }

  Result<bool> renew(std::string_view group, std::string_view owner,
                     std::chrono::milliseconds lease) override {
    std::lock_guard lock(mutex_);
    bool renewed = false;
    Status st = transaction([&]() -> Status {
      Statement update(db_,
                       "UPDATE join_groups SET lease_until_ms = ?3 "
                       "WHERE group_id = ?1 AND state = 1 AND owner = ?2");
      update.text(1, group).text(2, owner).integer(3, to_ms(Clock::now()) + lease.count());
      if (update.step() != SQLITE_DONE) return error("renew lease");
      renewed = sqlite3_changes(db_) > 0;
      return Status::Ok();
    });
    if (!st) return st.error();
    return renewed;
  }

  Status release(std::string_view group, std::string_view owner,
                 std::chrono::milliseconds retry_after, std::string_view why) override {
    std::lock_guard lock(mutex_);
    return transaction([&]() -> Status {
      Statement update(db_,
                       "UPDATE join_groups SET lease_until_ms = ?3, last_error = ?4 "
                       "WHERE group_id = ?1 AND state = 1 AND owner = ?2");
      update.text(1, group).text(2, owner).integer(3, to_ms(Clock::now()) + retry_after.count());
      update.text(4, why);
      return update.step() == SQLITE_DONE ? Status::Ok() : Status(error("release group"));
    });
  }

  Result<bool> finish(std::string_view group, std::string_view owner) override {
    std::lock_guard lock(mutex_);
    bool finished = false;
    Status st = transaction([&]() -> Status {
      Statement done(db_,
                     "UPDATE join_groups SET state = 2, head = '', decided_ms = ?3 "
                     "WHERE group_id = ?1 AND state = 1 AND owner = ?2");
      done.text(1, group).text(2, owner).integer(3, to_ms(Clock::now()));
      if (done.step() != SQLITE_DONE) return error("finish group");
      finished = sqlite3_changes(db_) > 0;
      if (!finished) return Status::Ok();
      Statement drop(db_, "DELETE FROM join_branches WHERE group_id = ?1");
      drop.text(1, group);
      if (drop.step() != SQLITE_DONE) return error("delete branches");
      Statement unheld(db_, "DELETE FROM join_held WHERE group_id = ?1");
      unheld.text(1, group);
      if (unheld.step() != SQLITE_DONE) return error("delete held branches");
      return Status::Ok();
    });
    if (!st) return st.error();
    return finished;
  }

  Result<Counts> counts() override {
    std::lock_guard lock(mutex_);
    Statement q(db_,
                "SELECT coalesce(sum(state = 0), 0), coalesce(sum(state = 1), 0) "
                "FROM join_groups");
    if (q.step() != SQLITE_ROW) return error("count groups");
    return Counts{q.column_int(0), q.column_int(1)};
  }

 private:
  Status exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return Status::Ok();
    std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    return Error{text};
  }
  Error error(std::string_view what) const {
    return Error{
        fmt::format("SQLite join store \"{}\": {} failed: {}", path_, what, sqlite3_errmsg(db_))};
  }
  // Runs `body` in BEGIN IMMEDIATE ... COMMIT; rolls back when it (or the commit) fails.
  template <typename Body>
  Status transaction(Body&& body) {
    if (Status st = exec("BEGIN IMMEDIATE"); !st)
      return Error{fmt::format("SQLite join store \"{}\": cannot begin a write transaction: {}",
                               path_, st.message())};
    Status st = body();
    if (st) st = exec("COMMIT");
    if (!st) (void)exec("ROLLBACK");  // the failure reported is the first one
    return st;
  }

  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::string path_;
  std::chrono::hours retention_;
};

}  // namespace

std::unique_ptr<JoinStore> make_sqlite_join_store(const JoinStoreOptions& options) {
  std::string_view url = options.url;
  std::string_view path = url.substr(url.find("://") + 3);
  if (path.empty())
    throw ConfigError(
        fmt::format("ASYA_JOIN_STORE=\"{}\": no path: use sqlite:///absolute/path/joins.db or "
                    "sqlite://relative/joins.db",
                    url));
  return std::make_unique<SqliteJoinStore>(std::string(path), options);
}

}  // namespace asya::sidecar::join
