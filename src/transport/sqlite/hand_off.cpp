#include "transport/sqlite/hand_off.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <initializer_list>
#include <utility>

#include "common/log.hpp"
#include "transport/sqlite/lease_bodies.hpp"

namespace asya::transport::sqlite {

namespace {

std::atomic<std::uint64_t> g_hand_offs_taken{0};

Status failed(const char* what, std::string_view queue, Connection& db) {
  return Error{std::string(what) + " on queue " + in_quotes(queue) + " failed: " + db.error()};
}

}  // namespace

Waiters::Waiters(std::string host)
    : host_(std::move(host)), pid_(::getpid()), started_(process_start_time(pid_)) {}

Result<std::optional<Waiters::Target>> Waiters::pick(Connection& db, std::string_view queue) {
  // Every waiting row of the queue, then the oldest (since_ms, token) first: a handful of rows,
  // sorted here rather than in a temporary B-tree of SQLite's (kWaiterPick).
  struct Candidate {
    std::int64_t since_ms = 0;
    Target target;
    std::int64_t pid = 0;
    std::string started;
  };
  std::vector<Candidate> candidates;
  {
    auto s = db.statement(kWaiterPick);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    bind_text(*s, 2, host_);
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
      Candidate c;
      c.target = Target{sqlite3_column_int64(*s, 0), sqlite3_column_int64(*s, 1)};
      c.pid = sqlite3_column_int64(*s, 2);
      if (const unsigned char* text = sqlite3_column_text(*s, 3))
        c.started = reinterpret_cast<const char*>(text);
      c.since_ms = sqlite3_column_int64(*s, 4);
      candidates.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) return failed("send (hand-off)", queue, db).error();
  }
  if (candidates.empty()) return std::optional<Target>();
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.since_ms != b.since_ms ? a.since_ms < b.since_ms : a.target.token < b.target.token;
  });
  // A dead process's rows are deleted on the way; a few at most, then the message stays ready.
  constexpr std::size_t kMostChecked = 4;
  for (std::size_t i = 0; i < candidates.size() && i < kMostChecked; ++i) {
    const Candidate& c = candidates[i];
    switch (liveness_.state(static_cast<pid_t>(c.pid), c.started)) {
      case ProcessState::kAlive:
        return std::optional<Target>(c.target);
      case ProcessState::kUnknown:  // not checkable (not picked by the query): hand nothing
        return std::optional<Target>();
      case ProcessState::kGone:
        if (Status s = unregister_in(db, c.target.token); !s) return s.error();
        break;
    }
  }
  return std::optional<Target>();
}

Status Waiters::mark_handed(Connection& db, std::int64_t token, std::int64_t message_id) {
  auto s = db.statement(kWaiterHanded);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  sqlite3_bind_int64(*s, 1, token);
  sqlite3_bind_int64(*s, 2, message_id);
  if (sqlite3_step(*s) != SQLITE_DONE) return Error{"send (hand-off) failed: " + db.error()};
  return Status::Ok();
}

Status Waiters::register_in(Connection& db, std::string_view queue, std::int64_t token,
                            std::int64_t owner, std::chrono::milliseconds visibility) {
  std::vector<std::int64_t> taken;
  std::vector<std::int64_t> abandoned;
  {
    std::lock_guard lock(mutex_);
    // close() began: a row written now might be missed by its look at this owner's rows.
    if (closing_)
      return Error{"receive on queue " + in_quotes(queue) + ": the transport is being closed"};
    registered_ = true;
    taken.swap(taken_);
    abandoned.swap(abandoned_);
  }
  // Rows of earlier calls first (they go back to the lists when this transaction fails).
  auto restore = [&] {
    std::lock_guard lock(mutex_);
    taken_.insert(taken_.end(), taken.begin(), taken.end());
    abandoned_.insert(abandoned_.end(), abandoned.begin(), abandoned.end());
  };
  std::vector<std::string> woken;  // a released message is found by its queue's next look
  for (std::int64_t t : taken) {
    if (Status s = retire_in(db, t, true, woken); !s) {
      restore();
      return s;
    }
  }
  for (std::int64_t t : abandoned) {
    if (Status s = retire_in(db, t, false, woken); !s) {
      restore();
      return s;
    }
  }
  auto s = db.statement(kWaiterInsert);
  if (!s) {
    restore();
    return s.error();
  }
  ResetOnExit reset{*s};
  sqlite3_bind_int64(*s, 1, token);
  bind_text(*s, 2, queue);
  sqlite3_bind_int64(*s, 3, owner);
  bind_text(*s, 4, host_);
  sqlite3_bind_int64(*s, 5, pid_);
  sqlite3_bind_int64(*s, 6, visibility.count());
  sqlite3_bind_int64(*s, 7, now_ms());
  bind_text(*s, 8, started_);
  if (sqlite3_step(*s) != SQLITE_DONE) {
    Status error = failed("receive (registering as waiting)", queue, db);
    restore();
    return error;
  }
  // Should the caller's COMMIT fail, the taken rows stay (senders skip them) until close() or,
  // after a crash, the release of this owner's rows.
  return Status::Ok();
}

Result<HandOffLook> Waiters::look(Connection& db, std::string_view queue, std::int64_t token) {
  HandOffLook out;
  auto s = db.statement(kWaiterRead);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  sqlite3_bind_int64(*s, 1, token);
  sqlite3_bind_int64(*s, 2, static_cast<std::int64_t>(kBodyBytesReadInLease));
  int rc = sqlite3_step(*s);
  if (rc == SQLITE_DONE) {
    out.state = HandOffLook::State::kGone;
    return out;
  }
  if (rc != SQLITE_ROW) return failed("receive (hand-off)", queue, db).error();
  if (sqlite3_column_type(*s, 0) == SQLITE_NULL) return out;  // waiting
  if (sqlite3_column_type(*s, 1) == SQLITE_NULL) {
    out.state = HandOffLook::State::kLost;
    return out;
  }
  out.state = HandOffLook::State::kHanded;
  out.id = sqlite3_column_int64(*s, 1);
  out.delivery.queue = std::string(queue);
  out.delivery.delivery_count = static_cast<std::uint32_t>(sqlite3_column_int64(*s, 2));
  out.delivery.receipt = std::to_string(out.id) + ":" + std::to_string(token);
  if (const unsigned char* file = sqlite3_column_text(*s, 3))
    out.file = reinterpret_cast<const char*>(file);
  if (out.file.empty() && sqlite3_column_type(*s, 4) != SQLITE_NULL) {
    auto size = static_cast<std::size_t>(sqlite3_column_bytes(*s, 4));
    const void* bytes = sqlite3_column_blob(*s, 4);
    out.delivery.body.text().assign(static_cast<const char*>(bytes), bytes ? size : 0);
    out.body_read = true;
  }
  return out;
}

Status Waiters::unregister_in(Connection& db, std::int64_t token) {
  auto s = db.statement(kWaiterDelete);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  sqlite3_bind_int64(*s, 1, token);
  if (sqlite3_step(*s) != SQLITE_DONE)
    return Error{"receive (unregistering) failed: " + db.error()};
  return Status::Ok();
}

std::uint64_t hand_offs_taken() {
  return g_hand_offs_taken.load();
}

bool Waiters::taken(std::int64_t token) {
  std::lock_guard lock(mutex_);
  // After forget() began, it decides the row's fate alone: it read taken_ under this lock, so a
  // token added now would be released by it all the same.
  if (closing_) return false;
  taken_.push_back(token);
  g_hand_offs_taken.fetch_add(1);
  return true;
}

void Waiters::abandon(std::int64_t token) {
  std::lock_guard lock(mutex_);
  abandoned_.push_back(token);
}

Status Waiters::retire_in(Connection& db, std::int64_t token, bool was_taken,
                          std::vector<std::string>& woken) {
  // A taken row only goes: its message is the receiver's (no read of the row needed).
  if (was_taken) return unregister_in(db, token);
  std::optional<std::int64_t> message_id;
  {
    auto s = db.statement(kWaiterRead);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, token);
    sqlite3_bind_int64(*s, 2, 0);
    int rc = sqlite3_step(*s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error{"waiters: " + db.error()};
    if (rc == SQLITE_ROW && sqlite3_column_type(*s, 1) != SQLITE_NULL)
      message_id = sqlite3_column_int64(*s, 1);
  }
  if (message_id) {
    auto s = db.statement(kWaiterRelease);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, *message_id);
    sqlite3_bind_int64(*s, 2, token);
    sqlite3_bind_int64(*s, 3, now_ms());
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
      if (const unsigned char* q = sqlite3_column_text(*s, 0))
        woken.emplace_back(reinterpret_cast<const char*>(q));
    }
    if (rc != SQLITE_DONE) return Error{"waiters: " + db.error()};
  }
  return unregister_in(db, token);
}

void Waiters::forget(ConnectionPool& pool, std::int64_t owner,
                     const std::function<void(const std::string&)>& wake) {
  std::vector<std::int64_t> taken;
  {
    // From here on taken() and register_in() refuse, so `taken` is final, and every row of
    // `owner` is committed before the look below (a registration holds the write lock until its
    // COMMIT) or never written.
    std::lock_guard lock(mutex_);
    closing_ = true;
    taken = taken_;
    if (!registered_) return;  // no row of this instance was ever written
  }
  auto c = pool.acquire();
  if (!c) return;
  Connection& db = c->connection();
  if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) {
    spdlog::warn("sqlite transport: close() could not remove its waiting receivers' rows: {}",
                 db.error());
    return;  // a message handed to one comes back at its lease expiry
  }
  std::vector<std::int64_t> tokens;
  {
    sqlite3_stmt* s = nullptr;
    // This process's rows of `owner` only (an older build's instance may have drawn the number).
    if (sqlite3_prepare_v2(db.db(), "SELECT token FROM waiters WHERE owner = ?1 AND pid = ?2", -1,
                           &s, nullptr) != SQLITE_OK) {
      (void)db.run(kRollback, "ROLLBACK");
      return;
    }
    sqlite3_bind_int64(s, 1, owner);
    sqlite3_bind_int64(s, 2, ::getpid());
    while (sqlite3_step(s) == SQLITE_ROW) tokens.push_back(sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
  }
  std::vector<std::string> woken;
  for (std::int64_t token : tokens) {
    bool was_taken = std::find(taken.begin(), taken.end(), token) != taken.end();
    if (!retire_in(db, token, was_taken, woken)) {
      (void)db.run(kRollback, "ROLLBACK");
      return;
    }
  }
  if (!db.run(kCommit, "COMMIT")) {
    (void)db.run(kRollback, "ROLLBACK");
    return;
  }
  {
    std::lock_guard lock(mutex_);
    taken_.clear();
    abandoned_.clear();
  }
  for (const std::string& queue : woken) wake(queue);
}

void Waiters::remove_stale(Connection& db, const std::function<void(const std::string&)>& wake) {
  // A read first: most opens find nothing to delete and take no write lock.
  const std::int64_t old = now_ms() - std::chrono::milliseconds(kStaleWaiterAge).count();
  constexpr const char* kStale =
      "since_ms < ?2 AND (message_id IS NULL OR NOT EXISTS (SELECT 1 FROM messages m WHERE "
      "m.id = waiters.message_id AND m.lease = waiters.token))";
  std::vector<std::int64_t> dead;
  bool stale = false;
  {
    sqlite3_stmt* s = nullptr;
    std::string sql = std::string("SELECT token, host = ?1, pid, started, ") + kStale +
                      " FROM waiters WHERE host = ?1 OR " + kStale;
    if (sqlite3_prepare_v2(db.db(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return;
    bind_text(s, 1, host_);
    sqlite3_bind_int64(s, 2, old);
    while (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* started = sqlite3_column_text(s, 3);
      if (sqlite3_column_int(s, 1) != 0 &&
          process_state(static_cast<pid_t>(sqlite3_column_int64(s, 2)),
                        started ? reinterpret_cast<const char*>(started) : "") ==
              ProcessState::kGone) {
        dead.push_back(sqlite3_column_int64(s, 0));
      } else if (sqlite3_column_int(s, 4) != 0) {
        stale = true;
      }
    }
    sqlite3_finalize(s);
  }
  if (dead.empty() && !stale) return;
  if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;
  std::vector<std::string> woken;
  // Runs `sql` with `values` as ?1, ?2...; the queues it returns go to `woken`.
  auto run = [&](const std::string& sql, std::initializer_list<std::int64_t> values) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.db(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return false;
    int index = 0;
    for (std::int64_t value : values) sqlite3_bind_int64(s, ++index, value);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      if (const unsigned char* queue = sqlite3_column_text(s, 0))
        woken.emplace_back(reinterpret_cast<const char*>(queue));
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE;
  };
  bool ok = true;
  for (std::int64_t token : dead) {
    // Read again under the lock: a sender may have handed the row a message since.
    ok = ok &&
         run("UPDATE messages SET visible_at_ms = min(visible_at_ms, ?2), lease = NULL WHERE "
             "id = (SELECT message_id FROM waiters WHERE token = ?1) AND lease = ?1 RETURNING "
             "queue",
             {token, now_ms()}) &&
         run("DELETE FROM waiters WHERE token = ?1", {token});
  }
  // kStale names ?2 only (?1 stays unbound: NULL).
  ok = ok && (!stale || run(std::string("DELETE FROM waiters WHERE ") + kStale, {0, old}));
  if (!ok || !db.run(kCommit, "COMMIT")) {
    (void)db.run(kRollback, "ROLLBACK");
    return;
  }
  if (!dead.empty())
    spdlog::info("sqlite transport: removed {} waiting receiver row(s) of processes that are gone",
                 dead.size());
  std::sort(woken.begin(), woken.end());
  woken.erase(std::unique(woken.begin(), woken.end()), woken.end());
  for (const std::string& queue : woken) wake(queue);
}

}  // namespace asya::transport::sqlite
