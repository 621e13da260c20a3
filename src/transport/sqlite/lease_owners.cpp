#include "transport/sqlite/lease_owners.hpp"

#include <unistd.h>

#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "transport/sqlite/process_identity.hpp"

namespace asya::transport::sqlite {

namespace {

std::atomic<std::int64_t> g_preferred_owner{0};

// How many numbers claim() looks at before it gives up (each one a row of lease_owners or
// waiters already: only after the counter wrapped around a file with that many rows).
constexpr int kMaxClaimTries = 100000;

// The boot id of a machine identity "<boot id>/pid:[<inode>]", or "" for any other form (an
// identity that could not be established, "unverified-...").
std::string_view boot_of(std::string_view identity) {
  auto slash = identity.find("/pid:");
  if (slash == std::string_view::npos || slash == 0 || identity.starts_with("unverified-"))
    return {};
  return identity.substr(0, slash);
}

// The first column of the single row of `sql` (?1 = `value`) as an integer; nullopt without a
// row, false on an error.
bool single(Connection& db, const char* sql, std::int64_t value, std::optional<std::int64_t>& out) {
  out.reset();
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.db(), sql, -1, &s, nullptr) != SQLITE_OK) return false;
  sqlite3_bind_int64(s, 1, value);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) out = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

}  // namespace

void LeaseOwners::prefer_owner_for_tests(std::int64_t number) {
  g_preferred_owner.store(number);
}

LeaseOwners::LeaseOwners() : host_(machine_identity()), started_(process_start_time(::getpid())) {}

Status LeaseOwners::claim(Connection& db) {
  auto failed = [&](const std::string& what) -> Status {
    Error error{"sqlite transport: cannot record this process as a lease owner (" + what +
                "): " + db.error()};
    (void)db.run(kRollback, "ROLLBACK");
    return error;
  };
  if (Status begun = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !begun)
    return Error{"sqlite transport: cannot record this process as a lease owner: " +
                 begun.message()};
  std::optional<std::int64_t> last;
  if (!single(db, "SELECT last FROM lease_owner_numbers WHERE id = ?1", 1, last))
    return failed("reading the counter");
  std::int64_t counter = last.value_or(0);
  auto advance = [&] {
    counter = counter >= kMaxOwner || counter < 0 ? 1 : counter + 1;
    return counter;
  };
  std::int64_t preferred = g_preferred_owner.load();
  std::int64_t number = preferred > 0 && preferred <= kMaxOwner ? preferred : advance();
  for (int tries = 0;; ++tries) {
    // A number with a row of an older build's instance (drawn at random), or of a dead owner not
    // released yet, stays that owner's.
    std::optional<std::int64_t> in_use;
    if (!single(db,
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM lease_owners WHERE owner = ?1) OR EXISTS "
                "(SELECT 1 FROM waiters WHERE owner = ?1)",
                number, in_use))
      return failed("looking for a free number");
    if (!in_use) break;
    if (tries >= kMaxClaimTries) return failed("no free number found");
    number = advance();
  }
  if (!run_owner_sql(db,
                     "INSERT INTO lease_owners(owner, host, pid, started) VALUES(?1, ?2, ?3, ?4)",
                     number, nullptr, host_, ::getpid(), started_))
    return failed("recording number " + std::to_string(number));
  if (counter != last.value_or(0) &&
      !run_owner_sql(db, "INSERT OR REPLACE INTO lease_owner_numbers(id, last) VALUES(1, ?1)",
                     counter, nullptr))
    return failed("advancing the counter");
  if (Status committed = db.run(kCommit, "COMMIT"); !committed) {
    (void)db.run(kRollback, "ROLLBACK");
    return Error{"sqlite transport: cannot record this process as a lease owner: " +
                 committed.message()};
  }
  lease_prefix_ = static_cast<std::uint64_t>(number) << 32;
  claimed_ = true;
  return Status::Ok();
}

void LeaseOwners::forget(ConnectionPool& pool) {
  if (!claimed_.exchange(false)) return;
  if (auto c = pool.acquire()) {
    (void)run_owner_sql(c->connection(),
                        "DELETE FROM lease_owners WHERE owner = ?1 AND host = ?2 AND pid = ?3 AND "
                        "started = ?4",
                        owner(), nullptr, host_, ::getpid(), started_);
  }
}

// Runs one statement on lease_owners with `owner` as ?1 (and optionally host ?2, pid ?3,
// started ?4); rows of a SELECT go to `row`. Returns false when it failed. Rare (open, close), so
// not among the cached statements.
bool LeaseOwners::run_owner_sql(Connection& db, const char* sql, std::int64_t owner_number,
                                const std::function<void(sqlite3_stmt*)>& row,
                                const std::string& host, pid_t pid, const std::string& started) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.db(), sql, -1, &s, nullptr) != SQLITE_OK) return false;
  sqlite3_bind_int64(s, 1, owner_number);
  if (!host.empty()) {
    bind_text(s, 2, host);
    sqlite3_bind_int64(s, 3, pid);
    bind_text(s, 4, started);
  }
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (row) row(s);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE;
}

void LeaseOwners::release_dead_owners(Connection& db,
                                      const std::function<void(const std::string&)>& wake,
                                      const std::function<void(std::int64_t owner)>& forgotten) {
  std::vector<std::tuple<std::int64_t, pid_t, std::string>> dead;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.db(), "SELECT owner, pid, started FROM lease_owners WHERE host = ?1",
                         -1, &s, nullptr) != SQLITE_OK)
    return;
  bind_text(s, 1, host_);
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto pid = static_cast<pid_t>(sqlite3_column_int64(s, 1));
    const unsigned char* text = sqlite3_column_text(s, 2);
    std::string started = text ? reinterpret_cast<const char*>(text) : "";
    // Only a process known to be gone: a row without a start time is left to its leases' expiry.
    if (process_state(pid, started) == ProcessState::kGone)
      dead.emplace_back(sqlite3_column_int64(s, 0), pid, std::move(started));
  }
  sqlite3_finalize(s);
  for (const auto& [number, pid, started] : dead) {
    if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;
    // The row judged, still there: not released meanwhile by another opener (nor replaced by an
    // older build's instance that drew the same number, whose leases these would be).
    bool ok = run_owner_sql(db,
                            "DELETE FROM lease_owners WHERE owner = ?1 AND host = ?2 AND pid = ?3 "
                            "AND started = ?4",
                            number, nullptr, host_, pid, started);
    if (ok && sqlite3_changes(db.db()) == 0) {
      (void)db.run(kRollback, "ROLLBACK");
      continue;
    }
    sqlite3_stmt* u = nullptr;
    int released = 0;
    ok = ok && sqlite3_prepare_v2(db.db(),
                                  "UPDATE messages SET visible_at_ms = min(visible_at_ms, ?3), "
                                  "lease = NULL WHERE lease BETWEEN ?1 AND ?2 RETURNING queue",
                                  -1, &u, nullptr) == SQLITE_OK;
    std::set<std::string> queues;  // woken after the commit, each once
    if (ok) {
      sqlite3_bind_int64(u, 1, number << 32);
      sqlite3_bind_int64(u, 2, (number << 32) | 0xffffffffLL);
      sqlite3_bind_int64(u, 3, now_ms());
      int rc = SQLITE_ROW;
      while ((rc = sqlite3_step(u)) == SQLITE_ROW) {
        const unsigned char* queue = sqlite3_column_text(u, 0);
        if (queue) queues.emplace(reinterpret_cast<const char*>(queue));
        ++released;
      }
      ok = rc == SQLITE_DONE;
      sqlite3_finalize(u);
    }
    // Its rows as a waiting receiver (hand_off.hpp): a message handed to one was released above.
    ok = ok && run_owner_sql(db, "DELETE FROM waiters WHERE owner = ?1", number, nullptr);
    if (!ok || !db.run(kCommit, "COMMIT")) {
      (void)db.run(kRollback, "ROLLBACK");
      return;
    }
    if (forgotten) forgotten(number);  // its hand-off slot file (hand_off_slots.hpp)
    if (released > 0) {
      spdlog::info(
          "sqlite transport: {} message(s) leased by process {}, which is gone, are visible "
          "again",
          released, pid);
      for (const auto& queue : queues) wake(queue);
    }
  }
}

void LeaseOwners::remove_earlier_boots(Connection& db,
                                       const std::function<void(std::int64_t owner)>& forgotten) {
  const std::string_view boot = boot_of(host_);
  if (boot.empty()) return;  // this process cannot tell which boot it runs in
  // Reads first, without the write lock: most opens find no such row.
  std::vector<std::pair<std::int64_t, std::string>> earlier;
  {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.db(), "SELECT owner, host FROM lease_owners WHERE host <> ?1", -1, &s,
                           nullptr) != SQLITE_OK)
      return;
    bind_text(s, 1, host_);
    while (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(s, 1);
      std::string host = text ? reinterpret_cast<const char*>(text) : "";
      std::string_view row_boot = boot_of(host);
      if (!row_boot.empty() && row_boot != boot)
        earlier.emplace_back(sqlite3_column_int64(s, 0), std::move(host));
    }
    sqlite3_finalize(s);
  }
  if (earlier.empty()) return;
  // The owners holding a lease not expired: one scan of the messages (no index on the lease).
  std::set<std::int64_t> holding;
  {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.db(),
                           "SELECT DISTINCT lease >> 32 FROM messages WHERE lease IS NOT NULL AND "
                           "visible_at_ms > ?1",
                           -1, &s, nullptr) != SQLITE_OK)
      return;
    sqlite3_bind_int64(s, 1, now_ms());
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) holding.insert(sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return;
  }
  std::erase_if(earlier, [&](const auto& row) { return holding.count(row.first) != 0; });
  if (earlier.empty()) return;
  // No process of an ended boot leases or is handed anything after the read above (senders hand
  // only to rows of their own identity), so the rows are deleted as read.
  if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;
  bool ok = true;
  for (const auto& [number, host] : earlier) {
    ok = ok &&
         run_owner_sql(db, "DELETE FROM waiters WHERE owner = ?1 AND host = ?2", number, nullptr,
                       host) &&
         run_owner_sql(db, "DELETE FROM lease_owners WHERE owner = ?1 AND host = ?2", number,
                       nullptr, host);
  }
  if (!ok || !db.run(kCommit, "COMMIT")) {
    (void)db.run(kRollback, "ROLLBACK");
    return;
  }
  spdlog::info("sqlite transport: forgot {} lease owner(s) of earlier boots, holding no lease",
               earlier.size());
  if (forgotten)
    for (const auto& row : earlier) forgotten(row.first);  // their hand-off slot files
}

}  // namespace asya::transport::sqlite
