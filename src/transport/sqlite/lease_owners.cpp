#include "transport/sqlite/lease_owners.hpp"

#include <unistd.h>

#include <random>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "transport/sqlite/process_identity.hpp"

namespace asya::transport::sqlite {

namespace {
std::atomic<std::int64_t> g_preferred_owner{0};
}  // namespace

void LeaseOwners::prefer_owner_for_tests(std::int64_t number) {
  g_preferred_owner.store(number);
}

LeaseOwners::LeaseOwners() : host_(machine_identity()) {
  std::random_device random;
  lease_prefix_ = (static_cast<std::uint64_t>(random()) & 0x7fffffffu) << 32;
  if (std::int64_t preferred = g_preferred_owner.load(); preferred != 0)
    lease_prefix_ = static_cast<std::uint64_t>(preferred) << 32;
}

bool LeaseOwners::record(Connection& db) {
  if (recorded_.load()) return false;
  std::string started = process_start_time(::getpid());
  return run_owner_sql(db,
                       "INSERT OR REPLACE INTO lease_owners(owner, host, pid, started) "
                       "VALUES(?1, ?2, ?3, ?4)",
                       owner(), nullptr, host_, ::getpid(), started);
}

void LeaseOwners::forget(ConnectionPool& pool) {
  if (!recorded_.exchange(false)) return;
  if (auto c = pool.acquire()) {
    (void)run_owner_sql(c->connection(), "DELETE FROM lease_owners WHERE owner = ?1", owner(),
                        nullptr);
  }
}

// Runs one statement on lease_owners with `owner` as ?1 (and optionally host ?2, pid ?3,
// started ?4); rows of a SELECT go to `row`. Returns false when it failed. Rare (open, first
// lease, close), so not among the cached statements.
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
  std::vector<std::pair<std::int64_t, pid_t>> dead;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.db(), "SELECT owner, pid, started FROM lease_owners WHERE host = ?1",
                         -1, &s, nullptr) != SQLITE_OK)
    return;
  bind_text(s, 1, host_);
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto pid = static_cast<pid_t>(sqlite3_column_int64(s, 1));
    const unsigned char* started = sqlite3_column_text(s, 2);
    // Only a process known to be gone: a row without a start time is left to its leases' expiry.
    if (process_state(pid, started ? reinterpret_cast<const char*>(started) : "") ==
        ProcessState::kGone)
      dead.emplace_back(sqlite3_column_int64(s, 0), pid);
  }
  sqlite3_finalize(s);
  for (auto [number, pid] : dead) {
    if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;
    sqlite3_stmt* u = nullptr;
    int released = 0;
    bool ok = sqlite3_prepare_v2(db.db(),
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
    ok = ok && run_owner_sql(db, "DELETE FROM lease_owners WHERE owner = ?1", number, nullptr);
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

}  // namespace asya::transport::sqlite
