// The PostgreSQL join store (join_store.hpp), ASYA_JOIN_STORE=postgresql://...: for join actors
// whose replicas run on several hosts. One connection per store object (common/postgres), used
// under a mutex; replicas and hosts are serialised by PostgreSQL's row locks:
//   - put_branch() locks its group's row first (an upsert), so two replicas storing the last two
//     branches of a group at once decide it exactly once;
//   - claim() picks a decided group with FOR UPDATE SKIP LOCKED, so replicas claim different
//     groups without waiting for each other; leases are measured by the database's clock, so the
//     hosts' clocks need not agree (timeouts use the caller's `now`, as the interface says);
//   - read_branches() streams rows in libpq's single-row mode: a 100,000-branch group is never
//     in memory at once.
// The schema (the same tables as SQLite's, prefixed asya_) is created on open under an advisory
// lock, so replicas starting together do not race. A connection found broken is re-established
// once at the start of the next operation; the operation that found it broken returns its error
// (nothing was changed: every write is one transaction).
#include <fmt/format.h>

#include <mutex>

#include "common/postgres/connection.hpp"
#include "sidecar/join/join_store.hpp"

namespace asya::sidecar::join {
namespace {

using Clock = std::chrono::system_clock;
using postgres::PgResult;

std::int64_t to_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr const char* kSchema = R"sql(
SELECT pg_advisory_xact_lock(7261737962);  -- not the gateway's 7261737961
CREATE TABLE IF NOT EXISTS asya_join_groups(
  group_id TEXT PRIMARY KEY, count BIGINT NOT NULL, stored BIGINT NOT NULL DEFAULT 0,
  head TEXT NOT NULL, expires_ms BIGINT, state SMALLINT NOT NULL DEFAULT 0, reason SMALLINT,
  owner TEXT, lease_until_ms BIGINT NOT NULL DEFAULT 0, decided_ms BIGINT);
ALTER TABLE asya_join_groups ADD COLUMN IF NOT EXISTS actor TEXT NOT NULL DEFAULT '';
ALTER TABLE asya_join_groups ADD COLUMN IF NOT EXISTS attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE asya_join_groups ADD COLUMN IF NOT EXISTS last_error TEXT;
CREATE INDEX IF NOT EXISTS asya_join_groups_by_state ON asya_join_groups(state, expires_ms);
CREATE INDEX IF NOT EXISTS asya_join_groups_by_actor
  ON asya_join_groups(actor, state, lease_until_ms);
CREATE TABLE IF NOT EXISTS asya_join_branches(
  group_id TEXT NOT NULL, idx BIGINT NOT NULL, failed BOOLEAN NOT NULL, payload TEXT NOT NULL,
  PRIMARY KEY(group_id, idx));
CREATE TABLE IF NOT EXISTS asya_join_held(
  group_id TEXT NOT NULL, idx BIGINT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY(group_id, idx));
)sql";

// The database's clock in milliseconds since the epoch (leases).
#define ASYA_DB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

class PostgresJoinStore final : public JoinStore {
 public:
  explicit PostgresJoinStore(const JoinStoreOptions& options)
      : db_(options.url), retention_(options.tombstone_retention) {
    if (!db_.connected())
      throw ConfigError(
          fmt::format("ASYA_JOIN_STORE: cannot connect to the join store: {}", db_.error()));
    Status st = transaction([&] { return db_.script("create the join tables", kSchema); });
    if (!st) throw ConfigError(fmt::format("ASYA_JOIN_STORE: {}", st.message()));
  }

  std::string_view name() const override { return "postgresql"; }

  Result<PutResult> put_branch(const BranchIn& b) override {
    std::lock_guard lock(mutex_);
    PutResult result;
    Status st = transaction([&]() -> Status {
      // Insert the group or lock the existing row (DO UPDATE takes the row lock and returns the
      // row as committed by whoever held it before): one round trip, and every later step of
      // this transaction runs alone for this group.
      auto group =
          db_.run("store the group",
                  "INSERT INTO asya_join_groups(group_id, count, head, expires_ms, actor) "
                  "VALUES($1, $2, $3, $4, $5) "
                  "ON CONFLICT (group_id) DO UPDATE SET group_id = EXCLUDED.group_id "
                  "RETURNING count, stored, state",
                  {b.group, static_cast<std::int64_t>(b.count), b.head,
                   b.timeout.count() > 0 ? postgres::Param(to_ms(Clock::now()) + b.timeout.count())
                                         : postgres::Param(nullptr),
                   b.actor});
      if (!group) return group.error();
      const auto count = static_cast<std::size_t>(group->integer(0, 0));
      const auto stored = static_cast<std::size_t>(group->integer(0, 1));
      if (group->integer(0, 2) != 0) {
        result = {PutOutcome::kAlreadyJoined, stored, count};
        auto same = db_.run("read the branch",
                            "SELECT 1 FROM asya_join_branches WHERE group_id = $1 AND idx = $2",
                            {b.group, static_cast<std::int64_t>(b.index)});
        if (!same) return same.error();
        result.unused = same->rows() == 0;
        return Status::Ok();
      }
      if (count != b.count)
        return Error{fmt::format("group {}: branch {} says count {}, the group has count {}",
                                 b.group, b.index, b.count, count)};
      if (b.index >= count)
        return Error{
            fmt::format("group {}: index {} is not below count {}", b.group, b.index, count)};
      // The branch, and the group's tally only when the branch is new.
      auto counted =
          db_.run("store the branch",
                  "WITH added AS (INSERT INTO asya_join_branches(group_id, idx, failed, payload) "
                  "VALUES($1, $2, $3::integer <> 0, $4) ON CONFLICT DO NOTHING RETURNING 1) "
                  "UPDATE asya_join_groups SET stored = stored + 1, "
                  "state = CASE WHEN stored + 1 = count THEN 1 ELSE 0 END, "
                  "reason = CASE WHEN stored + 1 = count THEN 0 END, "
                  "decided_ms = CASE WHEN stored + 1 = count THEN $5::bigint END "
                  "WHERE group_id = $1 AND EXISTS (SELECT 1 FROM added) RETURNING stored, state",
                  {b.group, static_cast<std::int64_t>(b.index), std::int64_t{b.failed ? 1 : 0},
                   b.payload, to_ms(Clock::now())});
      if (!counted) return counted.error();
      if (counted->rows() == 0) {
        result = {PutOutcome::kDuplicate, stored, count};
        return Status::Ok();
      }
      if (!b.held_sha256.empty()) {
        auto held = db_.run("record the held branch",
                            "INSERT INTO asya_join_held(group_id, idx, sha256) VALUES($1, $2, $3) "
                            "ON CONFLICT DO NOTHING",
                            {b.group, static_cast<std::int64_t>(b.index), b.held_sha256});
        if (!held) return held.error();
      }
      const bool complete = counted->integer(0, 1) == 1;
      result = {complete ? PutOutcome::kCompleted : PutOutcome::kStored,
                static_cast<std::size_t>(counted->integer(0, 0)), count};
      return Status::Ok();
    });
    if (!st) return st.error();
    return result;
  }

  Result<std::size_t> expire(Clock::time_point now) override {
    std::lock_guard lock(mutex_);
    std::size_t expired = 0;
    Status st = transaction([&]() -> Status {
      auto update = db_.run("expire groups",
                            "UPDATE asya_join_groups SET state = 1, reason = 1, decided_ms = $1 "
                            "WHERE state = 0 AND expires_ms IS NOT NULL AND expires_ms <= $1",
                            {to_ms(now)});
      if (!update) return update.error();
      expired = static_cast<std::size_t>(update->changed());
      // Rows of groups finished by a sidecar that did not know asya_join_held.
      auto gc_held = db_.run("remove held rows of old tombstones",
                             "DELETE FROM asya_join_held WHERE group_id IN (SELECT group_id FROM "
                             "asya_join_groups WHERE state = 2 AND decided_ms < $1)",
                             {to_ms(now - retention_)});
      if (!gc_held) return gc_held.error();
      auto gc = db_.run("remove old tombstones",
                        "DELETE FROM asya_join_groups WHERE state = 2 AND decided_ms < $1",
                        {to_ms(now - retention_)});
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
      auto picked = db_.run(
          "claim a decided group",
          "UPDATE asya_join_groups SET owner = $1, lease_until_ms = " ASYA_DB_NOW_MS
          " + $2, attempts = attempts + 1 "
          "WHERE group_id = (SELECT group_id FROM asya_join_groups WHERE actor = $3 AND state = 1 "
          "AND lease_until_ms <= " ASYA_DB_NOW_MS
          " ORDER BY decided_ms LIMIT 1 "
          "FOR UPDATE SKIP LOCKED) "
          "RETURNING group_id, reason, count, head, attempts, coalesce(last_error, '')",
          {owner, static_cast<std::int64_t>(lease.count()), actor});
      if (!picked) return picked.error();
      if (picked->rows() == 0) return Status::Ok();
      ClaimedGroup g;
      g.owner = std::string(owner);
      g.group = std::string(picked->text(0, 0));
      g.reason = picked->integer(0, 1) == 1 ? DecidedBecause::kTimeout : DecidedBecause::kComplete;
      g.count = static_cast<std::size_t>(picked->integer(0, 2));
      g.head = std::string(picked->text(0, 3));
      g.attempts = static_cast<std::size_t>(picked->integer(0, 4));
      g.last_error = std::string(picked->text(0, 5));
      // Only the failed and the missing indexes travel (not one row per branch).
      auto failed = db_.run("read failed branch indexes",
                            "SELECT idx FROM asya_join_branches WHERE group_id = $1 AND failed "
                            "ORDER BY idx",
                            {g.group});
      if (!failed) return failed.error();
      for (int r = 0; r < failed->rows(); ++r)
        g.failed.push_back(static_cast<std::size_t>(failed->integer(r, 0)));
      if (g.reason == DecidedBecause::kTimeout) {
        auto missing = db_.run(
            "read missing branch indexes",
            "SELECT i FROM generate_series(0, $2::bigint - 1) AS i WHERE NOT EXISTS (SELECT 1 "
            "FROM asya_join_branches WHERE group_id = $1 AND idx = i) ORDER BY i",
            {g.group, static_cast<std::int64_t>(g.count)});
        if (!missing) return missing.error();
        for (int r = 0; r < missing->rows(); ++r)
          g.missing.push_back(static_cast<std::size_t>(missing->integer(r, 0)));
      }
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
    reconnect_if_broken();
    const std::string group_text(group);
    const char* values[] = {group_text.c_str()};
    if (!PQsendQueryParams(db_.get(),
                           "SELECT idx, failed, payload FROM asya_join_branches "
                           "WHERE group_id = $1 ORDER BY idx",
                           1, nullptr, values, nullptr, nullptr, 0) ||
        !PQsetSingleRowMode(db_.get()))
      return Error{fmt::format("{} (read branches of group {})", db_.error(), group)};
    // Every result is read to the end, also after an error, so the connection stays usable.
    Status outcome;
    while (PGresult* raw = PQgetResult(db_.get())) {
      PgResult row(raw);
      if (!outcome) continue;
      if (!row.ok()) {
        outcome = Error{db_.error_of(row, fmt::format("read branches of group {}", group))};
        continue;
      }
      for (int r = 0; r < row.rows(); ++r) {
        outcome = each(static_cast<std::size_t>(row.integer(r, 0)), row.text(r, 1) == "t",
                       row.text(r, 2));
        if (!outcome) break;
      }
    }
    return outcome;
  }

  Result<std::vector<HeldBranch>> held_branches(std::string_view actor, std::string_view group,
                                                const HeldBranch* after,
                                                std::size_t limit) override {
    std::lock_guard lock(mutex_);
    reconnect_if_broken();
    auto rows =
        db_.run("list held branches",
                "SELECT h.group_id, h.idx, h.sha256 FROM asya_join_held h JOIN asya_join_groups g "
                "ON g.group_id = h.group_id WHERE g.actor = $1 AND g.state < 2 "
                "AND (coalesce($2::text, '') = '' OR h.group_id = $2::text) "
                "AND (h.group_id, h.idx) > ($3::text, $4::bigint) "
                "ORDER BY h.group_id, h.idx LIMIT $5",
                {actor, group, after ? std::string_view(after->group) : std::string_view(),
                 after ? static_cast<std::int64_t>(after->index) : std::int64_t{-1},
                 static_cast<std::int64_t>(limit)});
    if (!rows) return rows.error();
    std::vector<HeldBranch> out;
    for (int r = 0; r < rows->rows(); ++r)
      out.push_back({std::string(rows->text(r, 0)), static_cast<std::size_t>(rows->integer(r, 1)),
                     std::string(rows->text(r, 2))});
    return out;
  }

  Result<bool> renew(std::string_view group, std::string_view owner,
                     std::chrono::milliseconds lease) override {
    std::lock_guard lock(mutex_);
    reconnect_if_broken();
    auto update = db_.run("renew the lease",
                          "UPDATE asya_join_groups SET lease_until_ms = " ASYA_DB_NOW_MS
                          " + $3 "
                          "WHERE group_id = $1 AND state = 1 AND owner = $2",
                          {group, owner, static_cast<std::int64_t>(lease.count())});
    if (!update) return update.error();
    return update->changed() > 0;
  }

  Status release(std::string_view group, std::string_view owner,
                 std::chrono::milliseconds retry_after, std::string_view why) override {
    std::lock_guard lock(mutex_);
    reconnect_if_broken();
    auto update = db_.run("release the group",
                          "UPDATE asya_join_groups SET lease_until_ms = " ASYA_DB_NOW_MS
                          " + $3, last_error = $4 "
                          "WHERE group_id = $1 AND state = 1 AND owner = $2",
                          {group, owner, static_cast<std::int64_t>(retry_after.count()), why});
    return update ? Status::Ok() : Status(update.error());
  }

  Result<bool> finish(std::string_view group, std::string_view owner) override {
    std::lock_guard lock(mutex_);
    bool finished = false;
    Status st = transaction([&]() -> Status {
      auto done = db_.run("finish the group",
                          "UPDATE asya_join_groups SET state = 2, head = '', decided_ms = $3 "
                          "WHERE group_id = $1 AND state = 1 AND owner = $2",
                          {group, owner, to_ms(Clock::now())});
      if (!done) return done.error();
      finished = done->changed() > 0;
      if (!finished) return Status::Ok();
      auto drop = db_.run("delete the group's branches",
                          "DELETE FROM asya_join_branches WHERE group_id = $1", {group});
      if (!drop) return drop.error();
      auto unheld = db_.run("delete the group's held branches",
                            "DELETE FROM asya_join_held WHERE group_id = $1", {group});
      return unheld ? Status::Ok() : Status(unheld.error());
    });
    if (!st) return st.error();
    return finished;
  }

  Result<Counts> counts() override {
    std::lock_guard lock(mutex_);
    reconnect_if_broken();
    auto q = db_.run("count groups",
                     "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1) "
                     "FROM asya_join_groups");
    if (!q) return q.error();
    return Counts{q->integer(0, 0), q->integer(0, 1)};
  }

 private:
  void reconnect_if_broken() {
    if (PQstatus(db_.get()) == CONNECTION_BAD) db_.reset();
  }
  // Runs `body` in BEGIN ... COMMIT; rolls back when it (or the commit) fails. Called with
  // mutex_ held.
  template <typename Body>
  Status transaction(Body&& body) {
    reconnect_if_broken();
    if (Status st = db_.script("begin a transaction", "BEGIN"); !st) return st;
    Status st = body();
    if (st) st = db_.script("commit", "COMMIT");
    if (!st) (void)db_.script("roll back", "ROLLBACK");  // the failure reported is the first one
    return st;
  }

  std::mutex mutex_;
  postgres::Connection db_;
  std::chrono::hours retention_;
};

}  // namespace

std::unique_ptr<JoinStore> make_postgres_join_store(const JoinStoreOptions& options) {
  return std::make_unique<PostgresJoinStore>(options);
}

}  // namespace asya::sidecar::join
