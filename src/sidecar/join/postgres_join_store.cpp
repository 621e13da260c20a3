// The PostgreSQL join store (join_store.hpp): ASYA_JOIN_STORE=postgresql://... (or postgres://),
// for join replicas on several hosts. One libpq connection per store object, used under a mutex.
// A group's row is locked with SELECT ... FOR UPDATE while a branch is stored, so deciding
// completion is serialised per group across replicas; claim() takes decided groups with FOR UPDATE
// SKIP LOCKED, so replicas never wait for each other's claims. read_branches() streams rows
// (single-row mode), never the whole group at once. Same tables and states as the SQLite store.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <mutex>
#include <vector>

#include "sidecar/join/join_store.hpp"

namespace asya::sidecar::join {
namespace {

using Clock = std::chrono::system_clock;

std::int64_t to_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr const char* kSchema = R"sql(
SELECT pg_advisory_xact_lock(7261737962);
CREATE TABLE IF NOT EXISTS asya_join_groups(
  group_id TEXT PRIMARY KEY, actor TEXT NOT NULL, count BIGINT NOT NULL,
  stored BIGINT NOT NULL DEFAULT 0,
  head TEXT NOT NULL, expires_ms BIGINT, state INT NOT NULL DEFAULT 0, reason INT,
  owner TEXT, lease_until_ms BIGINT NOT NULL DEFAULT 0, decided_ms BIGINT);
CREATE INDEX IF NOT EXISTS asya_join_groups_by_state ON asya_join_groups(state, expires_ms);
CREATE INDEX IF NOT EXISTS asya_join_groups_by_actor
  ON asya_join_groups(actor, state, lease_until_ms);
CREATE TABLE IF NOT EXISTS asya_join_branches(
  group_id TEXT NOT NULL, idx BIGINT NOT NULL, failed BOOLEAN NOT NULL, payload TEXT NOT NULL,
  PRIMARY KEY(group_id, idx));
)sql";

class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}
  ~PgResult() { PQclear(result_); }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  bool ok() const {
    auto status = PQresultStatus(result_);
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE;
  }
  int rows() const { return PQntuples(result_); }
  std::int64_t integer(int row, int column) const {
    return std::strtoll(PQgetvalue(result_, row, column), nullptr, 10);
  }
  std::string_view text(int row, int column) const {
    return {PQgetvalue(result_, row, column),
            static_cast<std::size_t>(PQgetlength(result_, row, column))};
  }
  bool null(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }
  std::int64_t affected() const { return std::strtoll(PQcmdTuples(result_), nullptr, 10); }
  PGresult* get() const { return result_; }

 private:
  PGresult* result_;
};

// Parameters as text (NULL for nullopt).
using Param = std::optional<std::string>;

class PostgresJoinStore final : public JoinStore {
 public:
  PostgresJoinStore(std::string url, const JoinStoreOptions& options)
      : url_(std::move(url)), retention_(options.tombstone_retention) {
    connection_ = PQconnectdb(url_.c_str());
    if (PQstatus(connection_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(connection_);
      PQfinish(connection_);
      connection_ = nullptr;
      throw ConfigError(fmt::format("ASYA_JOIN_STORE: cannot connect to PostgreSQL {}: {}",
                                    redacted(), trim(why)));
    }
    Status st = transaction([&] { return script(kSchema, "create the join tables"); });
    if (!st) throw ConfigError("ASYA_JOIN_STORE: " + st.message());
  }
  ~PostgresJoinStore() override { PQfinish(connection_); }

  std::string_view name() const override { return "postgresql"; }

  Result<PutResult> put_branch(const BranchIn& b) override {
    std::lock_guard lock(mutex_);
    PutResult result;
    Status st = transaction([&]() -> Status {
      auto inserted = exec(
          "insert group",
          "INSERT INTO asya_join_groups(group_id, count, head, expires_ms, actor) "
          "VALUES($1,$2,$3,$4,$5) ON CONFLICT (group_id) DO NOTHING",
          {b.group, std::to_string(b.count), std::string(b.head),
           b.timeout.count() > 0 ? Param(std::to_string(to_ms(Clock::now()) + b.timeout.count()))
                                 : Param(),
           b.actor});
      if (!inserted) return inserted.error();
      auto group = exec("lock group",
                        "SELECT count, stored, state FROM asya_join_groups WHERE group_id = $1 "
                        "FOR UPDATE",
                        {b.group});
      if (!group) return group.error();
      const auto count = static_cast<std::size_t>((*group)->integer(0, 0));
      auto stored = static_cast<std::size_t>((*group)->integer(0, 1));
      if ((*group)->integer(0, 2) != 0) {
        result = {PutOutcome::kAlreadyJoined, stored, count};
        return Status::Ok();
      }
      if (count != b.count)
        return Error{fmt::format("group {}: branch {} says count {}, the group has count {}",
                                 b.group, b.index, b.count, count)};
      if (b.index >= count)
        return Error{
            fmt::format("group {}: index {} is not below count {}", b.group, b.index, count)};
      auto branch = exec(
          "insert branch",
          "INSERT INTO asya_join_branches(group_id, idx, failed, payload) "
          "VALUES($1,$2,$3,$4) ON CONFLICT DO NOTHING",
          {b.group, std::to_string(b.index), b.failed ? "true" : "false", std::string(b.payload)});
      if (!branch) return branch.error();
      if ((*branch)->affected() == 0) {
        result = {PutOutcome::kDuplicate, stored, count};
        return Status::Ok();
      }
      ++stored;
      const bool complete = stored == count;
      auto update = exec(
          "update group",
          "UPDATE asya_join_groups SET stored = $2, state = $3, reason = $4, "
          "decided_ms = $5 WHERE group_id = $1",
          {b.group, std::to_string(stored), complete ? "1" : "0", complete ? Param("0") : Param(),
           complete ? Param(std::to_string(to_ms(Clock::now()))) : Param()});
      if (!update) return update.error();
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
      auto update = exec("expire groups",
                         "UPDATE asya_join_groups SET state = 1, reason = 1, decided_ms = $1 "
                         "WHERE state = 0 AND expires_ms IS NOT NULL AND expires_ms <= $1",
                         {std::to_string(to_ms(now))});
      if (!update) return update.error();
      expired = static_cast<std::size_t>((*update)->affected());
      auto gc = exec("remove old tombstones",
                     "DELETE FROM asya_join_groups WHERE state = 2 AND decided_ms < $1",
                     {std::to_string(to_ms(now - retention_))});
      return gc ? Status::Ok() : Status(gc.error());
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
      auto pick = exec("pick decided group",
                       "SELECT group_id, reason, count, head FROM asya_join_groups "
                       "WHERE actor = $2 AND state = 1 AND lease_until_ms <= $1 "
                       "LIMIT 1 FOR UPDATE SKIP LOCKED",
                       {std::to_string(now), std::string(actor)});
      if (!pick) return pick.error();
      if ((*pick)->rows() == 0) return Status::Ok();
      ClaimedGroup g;
      g.group = std::string((*pick)->text(0, 0));
      g.reason = (*pick)->integer(0, 1) == 1 ? DecidedBecause::kTimeout : DecidedBecause::kComplete;
      g.count = static_cast<std::size_t>((*pick)->integer(0, 2));
      g.head = std::string((*pick)->text(0, 3));
      auto leased = exec("lease decided group",
                         "UPDATE asya_join_groups SET owner = $2, lease_until_ms = $3 "
                         "WHERE group_id = $1",
                         {g.group, std::string(owner), std::to_string(now + lease.count())});
      if (!leased) return leased.error();
      auto indexes = exec("read branch indexes",
                          "SELECT idx, failed FROM asya_join_branches WHERE group_id = $1 "
                          "ORDER BY idx",
                          {g.group});
      if (!indexes) return indexes.error();
      std::size_t expected = 0;
      for (int r = 0; r < (*indexes)->rows(); ++r) {
        auto idx = static_cast<std::size_t>((*indexes)->integer(r, 0));
        for (; expected < idx; ++expected) g.missing.push_back(expected);
        expected = idx + 1;
        if ((*indexes)->text(r, 1) == "t") g.failed.push_back(idx);
      }
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
    const std::string g(group);
    const char* values[] = {g.c_str()};
    if (!PQsendQueryParams(connection_,
                           "SELECT idx, failed, payload FROM asya_join_branches "
                           "WHERE group_id = $1 ORDER BY idx",
                           1, nullptr, values, nullptr, nullptr, 0) ||
        !PQsetSingleRowMode(connection_))
      return Error{fmt::format("PostgreSQL join store: read branches failed: {}",
                               trim(PQerrorMessage(connection_)))};
    // Every result must be consumed before the connection can be used again, also after an error.
    Status status = Status::Ok();
    while (PGresult* raw = PQgetResult(connection_)) {
      PgResult row(raw);
      if (!row.ok()) {
        if (status) status = Error{"PostgreSQL join store: read branches failed: " + error_of(row)};
        continue;
      }
      if (!status || PQresultStatus(raw) != PGRES_SINGLE_TUPLE) continue;
      status =
          each(static_cast<std::size_t>(row.integer(0, 0)), row.text(0, 1) == "t", row.text(0, 2));
    }
    return status;
  }

  Status release(std::string_view group, std::string_view owner,
                 std::chrono::milliseconds retry_after) override {
    std::lock_guard lock(mutex_);
    auto update = exec("release group",
                       "UPDATE asya_join_groups SET lease_until_ms = $3 "
                       "WHERE group_id = $1 AND state = 1 AND owner = $2",
                       {std::string(group), std::string(owner),
                        std::to_string(to_ms(Clock::now()) + retry_after.count())});
    return update ? Status::Ok() : Status(update.error());
  }

  Result<bool> finish(std::string_view group, std::string_view owner) override {
    std::lock_guard lock(mutex_);
    bool finished = false;
    Status st = transaction([&]() -> Status {
      auto done =
          exec("finish group",
               "UPDATE asya_join_groups SET state = 2, head = '', decided_ms = $3 "
               "WHERE group_id = $1 AND state = 1 AND owner = $2",
               {std::string(group), std::string(owner), std::to_string(to_ms(Clock::now()))});
      if (!done) return done.error();
      finished = (*done)->affected() > 0;
      if (!finished) return Status::Ok();
      auto drop = exec("delete branches", "DELETE FROM asya_join_branches WHERE group_id = $1",
                       {std::string(group)});
      return drop ? Status::Ok() : Status(drop.error());
    });
    if (!st) return st.error();
    return finished;
  }

  Result<Counts> counts() override {
    std::lock_guard lock(mutex_);
    auto q = exec("count groups",
                  "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1) "
                  "FROM asya_join_groups",
                  {});
    if (!q) return q.error();
    return Counts{(*q)->integer(0, 0), (*q)->integer(0, 1)};
  }

 private:
  static std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }
  std::string redacted() const {
    // postgresql://user:secret@host/db -> postgresql://user:***@host/db
    std::string out = url_;
    auto scheme = out.find("://");
    auto at = out.find('@');
    if (scheme != std::string::npos && at != std::string::npos) {
      auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
    return out;
  }
  std::string error_of(const PgResult& result) const {
    const char* message = PQresultErrorMessage(result.get());
    return trim(message && *message ? message : PQerrorMessage(connection_));
  }
  Result<std::shared_ptr<PgResult>> exec(std::string_view what, const char* sql,
                                         const std::vector<Param>& params) {
    std::vector<const char*> values;
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    auto result =
        std::make_shared<PgResult>(PQexecParams(connection_, sql, static_cast<int>(values.size()),
                                                nullptr, values.data(), nullptr, nullptr, 0));
    if (!result->ok())
      return Error{fmt::format("PostgreSQL join store {}: {} failed: {}", redacted(), what,
                               error_of(*result))};
    return result;
  }
  Status script(const char* sql, std::string_view what) {
    PgResult result(PQexec(connection_, sql));
    if (!result.ok())
      return Error{fmt::format("PostgreSQL join store {}: {} failed: {}", redacted(), what,
                               error_of(result))};
    return Status::Ok();
  }
  // Runs `body` between BEGIN and COMMIT (ROLLBACK when it fails); a connection found broken is
  // re-established once before BEGIN.
  template <typename Body>
  Status transaction(Body&& body) {
    if (PQstatus(connection_) == CONNECTION_BAD) PQreset(connection_);
    if (Status st = script("BEGIN", "begin"); !st) return st;
    Status st = body();
    if (st) st = script("COMMIT", "commit");
    if (!st) (void)script("ROLLBACK", "rollback");  // the failure reported is the first one
    return st;
  }

  std::mutex mutex_;
  PGconn* connection_ = nullptr;
  std::string url_;
  std::chrono::hours retention_;
};

}  // namespace

std::unique_ptr<JoinStore> make_postgres_join_store(const JoinStoreOptions& options) {
  return std::make_unique<PostgresJoinStore>(options.url, options);
}

}  // namespace asya::sidecar::join
