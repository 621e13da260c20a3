#include "transport/sqlite/queue_purge.hpp"

namespace asya::transport::sqlite {
namespace {

// A statement prepared for one use (purging is rare: not worth a cached statement).
class OneShot {
 public:
  OneShot(Connection& db, const char* sql) {
    if (sqlite3_prepare_v2(db.db(), sql, -1, &statement_, nullptr) != SQLITE_OK)
      error_ = "preparing " + in_quotes(sql) + " failed: " + db.error();
  }
  ~OneShot() { sqlite3_finalize(statement_); }
  OneShot(const OneShot&) = delete;
  OneShot& operator=(const OneShot&) = delete;
  sqlite3_stmt* get() const { return statement_; }
  const std::string& error() const { return error_; }

 private:
  sqlite3_stmt* statement_ = nullptr;
  std::string error_;
};

// The messages nobody holds a live lease on: ready, delayed, or leased with the lease expired.
constexpr const char* kUnleased = "queue = ?1 AND (lease IS NULL OR visible_at_ms <= ?2)";

}  // namespace

Result<PurgedRows> purge_rows(Connection& db, std::string_view queue, std::int64_t now_ms) {
  auto failed = [&](const std::string& why) {
    return Error{"purge of queue " + in_quotes(queue) + " failed: " + why};
  };
  if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) return failed(s.message());
  auto work = [&]() -> Result<PurgedRows> {
    {
      OneShot known(db,
                    "SELECT EXISTS(SELECT 1 FROM queues WHERE name = ?1) OR "
                    "EXISTS(SELECT 1 FROM messages WHERE queue = ?1)");
      if (!known.error().empty()) return failed(known.error());
      bind_text(known.get(), 1, queue);
      if (sqlite3_step(known.get()) != SQLITE_ROW) return failed(db.error());
      if (sqlite3_column_int(known.get(), 0) == 0)
        return Error{"queue_not_found: there is no queue " + in_quotes(queue) +
                     " in the SQLite queue database"};
    }
    {
      OneShot bodies(db, (std::string("DELETE FROM bodies WHERE id IN (SELECT id FROM messages "
                                      "WHERE ") +
                          kUnleased + ")")
                             .c_str());
      if (!bodies.error().empty()) return failed(bodies.error());
      bind_text(bodies.get(), 1, queue);
      sqlite3_bind_int64(bodies.get(), 2, now_ms);
      if (sqlite3_step(bodies.get()) != SQLITE_DONE) return failed(db.error());
    }
    PurgedRows out;
    OneShot rows(
        db,
        (std::string("DELETE FROM messages WHERE ") + kUnleased + " RETURNING body_file").c_str());
    if (!rows.error().empty()) return failed(rows.error());
    bind_text(rows.get(), 1, queue);
    sqlite3_bind_int64(rows.get(), 2, now_ms);
    int rc;
    while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
      ++out.removed;
      if (const unsigned char* file = sqlite3_column_text(rows.get(), 0))
        out.body_files.emplace_back(reinterpret_cast<const char*>(file));
    }
    if (rc != SQLITE_DONE) return failed(db.error());
    return out;
  };
  auto purged = work();
  if (purged) {
    if (Status s = db.run(kCommit, "COMMIT"); !s) {
      (void)db.run(kRollback, "ROLLBACK");
      return failed(s.message());
    }
  } else {
    (void)db.run(kRollback, "ROLLBACK");
  }
  return purged;
}

Result<QueueStats> queue_stats(Connection& db, std::string_view queue, std::int64_t now_ms) {
  auto s = db.statement(kStats);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  bind_text(*s, 1, queue);
  sqlite3_bind_int64(*s, 2, now_ms);
  if (sqlite3_step(*s) != SQLITE_ROW)
    return Error{"stats on queue " + in_quotes(queue) + " failed: " + db.error()};
  QueueStats stats;
  stats.ready = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 0));
  stats.in_flight = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 1));
  stats.delayed = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 2));
  return stats;
}

Result<std::vector<std::string>> queue_names(Connection& db) {
  auto s = db.statement(kList);
  if (!s) return s.error();
  ResetOnExit reset{*s};
  std::vector<std::string> names;
  int rc;
  while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
    names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(*s, 0)),
                       static_cast<std::size_t>(sqlite3_column_bytes(*s, 0)));
  }
  if (rc != SQLITE_DONE) return Error{"list_queues on queue \"*\" failed: " + db.error()};
  return names;
}

}  // namespace asya::transport::sqlite
