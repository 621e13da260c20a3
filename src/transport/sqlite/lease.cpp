#include "transport/sqlite/lease.hpp"

#include <string>

#include "common/failpoint.hpp"
#include "transport/sqlite/lease_bodies.hpp"

namespace asya::transport::sqlite {

namespace {

Status failure(std::string_view queue, Connection& db) {
  return Error{"receive on queue " + in_quotes(queue) + " failed: " + db.error()};
}

}  // namespace

Result<std::vector<Delivery>> lease_ready(ConnectionPool& pool, LeaseOwners& owners,
                                          BodyFiles& body_files, const LeaseRequest& request,
                                          std::optional<std::int64_t>* next_visible) {
  const std::string_view queue = request.queue;
  const std::size_t max_messages = request.max_messages;
  const bool woken = request.woken;
  auto c = pool.acquire();
  if (!c) return c.error();
  Connection& db = c->connection();
  Status begun =
      woken ? db.begin_spinning(kWokenLeaseSpin) : db.run(kBeginImmediate, "BEGIN IMMEDIATE");
  if (Status s = std::move(begun); !s) {
    return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
  }
  auto rollback = [&](Error error) -> Result<std::vector<Delivery>> {
    (void)db.run(kRollback, "ROLLBACK");
    return error;
  };
  std::vector<Delivery> out;
  std::vector<std::int64_t> ids;
  std::vector<std::string> files;  // the body file's name, empty for a body in the table
  std::vector<char> read;          // bodies read inside the transaction
  std::int64_t token = owners.next_token();
  std::int64_t now = now_ms();
  std::int64_t until = now + request.visibility_timeout.count();
  const bool one = max_messages == 1;
  {
    // One: the ready row (its count before this lease) and its small body kept in the database;
    // several: the rows already updated.
    auto s = db.statement(one ? kLease : kLeaseMany);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now);
    sqlite3_bind_int64(*s, 3, one ? static_cast<std::int64_t>(kBodyBytesReadInLease) : until);
    if (!one) {
      sqlite3_bind_int64(*s, 4, token);
      sqlite3_bind_int64(*s, 5, static_cast<std::int64_t>(max_messages));
    }
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
      Delivery d;
      d.queue = std::string(queue);
      std::int64_t id = sqlite3_column_int64(*s, 0);
      d.delivery_count = static_cast<std::uint32_t>(sqlite3_column_int64(*s, 1) + (one ? 1 : 0));
      d.receipt = std::to_string(id) + ":" + std::to_string(token);
      ids.push_back(id);
      const unsigned char* file = sqlite3_column_text(*s, 2);
      files.emplace_back(file ? reinterpret_cast<const char*>(file) : "");
      // kLease: the body, when in the table and small enough (else it is read after the commit).
      read.push_back(one && !file && sqlite3_column_type(*s, 3) != SQLITE_NULL);
      if (read.back()) {
        const void* bytes = sqlite3_column_blob(*s, 3);
        auto size = static_cast<std::size_t>(sqlite3_column_bytes(*s, 3));
        d.body.text().assign(static_cast<const char*>(bytes), bytes ? size : 0);
      }
      out.push_back(std::move(d));
    }
    if (rc != SQLITE_DONE) {
      Status failed = failure(queue, db);
      sqlite3_reset(*s);  // no statement in progress at the ROLLBACK
      return rollback(failed.error());
    }
  }
  if (ids.empty()) {
    auto s = db.statement(kNextVisible);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    if (sqlite3_step(*s) != SQLITE_ROW) {
      Status failed = failure(queue, db);
      sqlite3_reset(*s);
      return rollback(failed.error());
    }
    if (sqlite3_column_type(*s, 0) != SQLITE_NULL) *next_visible = sqlite3_column_int64(*s, 0);
  }
  // The first lease of this instance records its owner row in the same transaction (best
  // effort: without it the leases still expire); a look that found nothing records none.
  bool registering = !ids.empty() && owners.record(db);
  if (one && !ids.empty()) {  // update the row selected
    auto s = db.statement(kLeaseRow);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, ids.front());
    sqlite3_bind_int64(*s, 2, until);
    sqlite3_bind_int64(*s, 3, token);
    if (sqlite3_step(*s) != SQLITE_DONE) {
      Status failed = failure(queue, db);
      sqlite3_reset(*s);
      return rollback(failed.error());
    }
  }
  // For tests: a crash before a lease's COMMIT, every statement run (docs/sidecar.md).
  if (!ids.empty()) failpoint("sqlite.lease_uncommitted");
  if (Status s = db.run(kCommit, "COMMIT"); !s) {
    (void)db.run(kRollback, "ROLLBACK");
    return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
  }
  if (registering) owners.recorded();
  return read_leased_bodies(db, body_files, queue, token, out, ids, files, read);
}

}  // namespace asya::transport::sqlite
