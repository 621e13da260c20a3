#include "transport/sqlite/lease.hpp"

#include <string>
#include <utility>

#include "common/failpoint.hpp"
#include "transport/sqlite/lease_bodies.hpp"

namespace asya::transport::sqlite {

namespace {

Status failure(std::string_view queue, Connection& db) {
  return Error{"receive on queue " + in_quotes(queue) + " failed: " + db.error()};
}

// A handed message's body when not read with its row (a body file, or one above
// kBodyBytesReadInLease), read outside any write transaction.
Result<std::vector<Delivery>> finish_hand_off(const LeaseParts& parts, Connection& db,
                                              std::string_view queue, std::int64_t token,
                                              HandOffLook& handed) {
  std::vector<Delivery> out;
  out.push_back(std::move(handed.delivery));
  if (handed.body_read) return out;
  std::vector<std::int64_t> ids{handed.id};
  std::vector<std::string> files{handed.file};
  std::vector<char> read{0};
  return read_leased_bodies(db, parts.body_files, queue, token, out, ids, files, read);
}

}  // namespace

Error closed_while_taking(std::string_view queue) {
  return Error{"receive on queue " + in_quotes(queue) +
               ": the transport was closed while the message handed to this receive() was read "
               "(it is visible again for other receivers)"};
}

Result<std::vector<Delivery>> read_hand_off(const LeaseParts& parts, std::string_view queue,
                                            Registration& registration, bool& lost) {
  lost = false;
  auto c = parts.pool.acquire();
  if (!c) return c.error();
  auto handed = parts.waiters.look(c->connection(), queue, registration.token);
  if (!handed) return handed.error();
  if (handed->state == HandOffLook::State::kLost || handed->state == HandOffLook::State::kGone)
    lost = true;
  if (handed->state != HandOffLook::State::kHanded) return std::vector<Delivery>{};
  std::int64_t token = std::exchange(registration.token, 0);
  if (!parts.waiters.taken(token)) return closed_while_taking(queue);
  return finish_hand_off(parts, c->connection(), queue, token, *handed);
}

Result<std::vector<Delivery>> lease_ready(const LeaseParts& parts, const LeaseRequest& request,
                                          LeaseLook& look) {
  const std::string_view queue = request.queue;
  const std::size_t max_messages = request.max_messages;
  LeaseOwners& owners = parts.owners;
  Registration* registration = request.registration;
  look = LeaseLook{};
  // A receive() that may register as waiting has its slot file before any sender can see its row
  // (hand_off_slots.hpp); created once, outside the write lock.
  if (registration && request.register_if_none) parts.slots.open_own(owners.owner());
  auto c = parts.pool.acquire();
  if (!c) return c.error();
  Connection& db = c->connection();
  Status begun = Status::Ok();
  switch (request.begin) {
    case LeaseBegin::kWait:
      begun = db.run(kBeginImmediate, "BEGIN IMMEDIATE");
      break;
    case LeaseBegin::kSpin:
      begun = db.begin_spinning(kWokenLeaseSpin);
      break;
    case LeaseBegin::kTry:
      begun = db.try_begin(look.busy);
      break;
  }
  if (Status s = std::move(begun); !s) {
    if (look.busy) return std::vector<Delivery>{};
    return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
  }
  auto rollback = [&](Error error) -> Result<std::vector<Delivery>> {
    (void)db.run(kRollback, "ROLLBACK");
    return error;
  };
  // Registered (hand_off.hpp): a message handed to this receive() comes first, and alone.
  bool unregistered = false;
  if (registration && registration->active()) {
    auto handed = parts.waiters.look(db, queue, registration->token);
    if (!handed) return rollback(handed.error());
    if (handed->state == HandOffLook::State::kHanded) {
      (void)db.run(kRollback, "ROLLBACK");  // nothing written: the row goes later (taken())
      std::int64_t token = std::exchange(registration->token, 0);
      if (!parts.waiters.taken(token)) return closed_while_taking(queue);
      look.handed = true;
      return finish_hand_off(parts, db, queue, token, *handed);
    }
    if (request.unregister || handed->state != HandOffLook::State::kWaiting) {
      if (Status s = parts.waiters.unregister_in(db, registration->token); !s)
        return rollback(s.error());
      unregistered = true;
    }
    if (request.unregister) {
      if (Status s = db.run(kCommit, "COMMIT"); !s) return rollback(s.error());
      registration->token = 0;
      return std::vector<Delivery>{};
    }
  }
  std::vector<Delivery> out;
  std::vector<std::int64_t> ids;
  std::vector<std::string> files;  // the body file's name, empty for a body in the table
  std::int64_t token = owners.next_token();
  std::int64_t now = now_ms();
  std::int64_t until = now + request.visibility_timeout.count();
  // Steps `s` to its end, one Delivery per row (id, delivery_count + `added`, body_file).
  auto take_rows = [&](sqlite3_stmt* s, std::int64_t added) -> Status {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      Delivery d;
      d.queue = std::string(queue);
      std::int64_t id = sqlite3_column_int64(s, 0);
      d.delivery_count = static_cast<std::uint32_t>(sqlite3_column_int64(s, 1) + added);
      d.receipt = std::to_string(id) + ":" + std::to_string(token);
      ids.push_back(id);
      const unsigned char* file = sqlite3_column_text(s, 2);
      files.emplace_back(file ? reinterpret_cast<const char*>(file) : "");
      out.push_back(std::move(d));
    }
    if (rc == SQLITE_DONE) return Status::Ok();
    Status failed = failure(queue, db);
    sqlite3_reset(s);  // no statement in progress at the ROLLBACK
    return failed;
  };
  // A lease of several that finds a single message ready (a consumer leasing ahead at a steady
  // rate, where each message comes alone) takes the path of a lease of one: its row updated by id
  // and its small body read inside this transaction, instead of UPDATE ... RETURNING and a read
  // transaction for the body after the COMMIT. Two ready rows or more take kLeaseMany.
  // The queue's first row in visibility order that this lease does not take: its visible time
  // is the queue's next one after a lease of one (the leased row's comes at `until`).
  std::optional<std::int64_t> next_untaken;
  {
    // The first two rows (counts before this lease): the ready ones, two telling one from several.
    auto s = db.statement(kLease);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
      std::int64_t visible = sqlite3_column_int64(*s, 3);
      if (visible > now || (max_messages == 1 && !ids.empty())) {
        next_untaken = visible;
        break;  // rows come in visibility order: none after it is taken
      }
      Delivery d;
      d.queue = std::string(queue);
      std::int64_t id = sqlite3_column_int64(*s, 0);
      d.delivery_count = static_cast<std::uint32_t>(sqlite3_column_int64(*s, 1) + 1);
      d.receipt = std::to_string(id) + ":" + std::to_string(token);
      ids.push_back(id);
      const unsigned char* file = sqlite3_column_text(*s, 2);
      files.emplace_back(file ? reinterpret_cast<const char*>(file) : "");
      out.push_back(std::move(d));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      Status failed = failure(queue, db);
      sqlite3_reset(*s);  // no statement in progress at the ROLLBACK
      return rollback(failed.error());
    }
  }
  const bool one = ids.size() <= 1;
  if (!one) {
    out.clear();
    ids.clear();
    files.clear();
    // Several: the rows already updated (their counts after this lease).
    auto s = db.statement(kLeaseMany);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now);
    sqlite3_bind_int64(*s, 3, until);
    sqlite3_bind_int64(*s, 4, token);
    sqlite3_bind_int64(*s, 5, static_cast<std::int64_t>(max_messages));
    if (Status taken = take_rows(*s, 0); !taken) return rollback(taken.error());
  }
  // Hand-off (hand_off.hpp): a lease that takes messages ends the registration; one that finds
  // none registers when asked to, in this same transaction (so a sender either committed before
  // it, and its message was leased here, or sees the row and hands its message over).
  const bool was_registered = registration && registration->active() && !unregistered;
  if (was_registered && !ids.empty()) {
    if (Status s = parts.waiters.unregister_in(db, registration->token); !s)
      return rollback(s.error());
    unregistered = true;
  }
  std::int64_t new_registration = 0;
  if (registration && ids.empty() && request.register_if_none && !was_registered) {
    new_registration = owners.next_token();
    if (Status s = parts.waiters.register_in(db, queue, new_registration, owners.owner(),
                                             request.visibility_timeout);
        !s)
      return rollback(s.error());
  }
  std::vector<char> read(out.size(), 0);  // bodies read inside the transaction
  if (one && !ids.empty()) {              // update the row selected
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
    if (Status read_in = read_bodies_in_lease(db, queue, out, ids, files, read); !read_in)
      return rollback(read_in.error());
  }
  if (one) {
    // The rows after the first two are visible no earlier than the second: the next visible time
    // is that of the first row not taken, or the lease's end when that comes first.
    look.next_visible = next_untaken;
    if (!ids.empty() && (!look.next_visible || until < *look.next_visible))
      look.next_visible = until;
  } else {
    // After the updates: the leased rows count with their new visible_at_ms.
    auto s = db.statement(kNextVisible);
    if (!s) return rollback(s.error());
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    if (sqlite3_step(*s) != SQLITE_ROW) {
      Status failed = failure(queue, db);
      sqlite3_reset(*s);
      return rollback(failed.error());
    }
    look.next_visible = sqlite3_column_type(*s, 0) == SQLITE_NULL
                            ? std::nullopt
                            : std::optional<std::int64_t>(sqlite3_column_int64(*s, 0));
  }
  // For tests: a crash before a lease's COMMIT, every statement run (docs/sidecar.md).
  if (!ids.empty()) failpoint("sqlite.lease_uncommitted");
  if (Status s = db.run(kCommit, "COMMIT"); !s) {
    (void)db.run(kRollback, "ROLLBACK");
    return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
  }
  if (unregistered) registration->token = 0;
  if (new_registration != 0) registration->token = new_registration;
  return read_leased_bodies(db, parts.body_files, queue, token, out, ids, files, read);
}

}  // namespace asya::transport::sqlite
