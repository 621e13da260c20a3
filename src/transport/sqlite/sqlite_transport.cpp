// The SqliteTransport class: the Transport methods on top of the connection pool (connection.hpp),
// the body files (body_files.hpp), the lease owners (lease_owners.hpp) and the per-queue waker
// (queue_waker.hpp). The contract is in sqlite_transport.hpp.
#include "transport/sqlite/sqlite_transport.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <optional>
#include <span>
#include <utility>

#include "common/env.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "transport/sqlite/body_spool.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/group_commit.hpp"
#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/hand_off_slots.hpp"
#include "transport/sqlite/lease.hpp"
#include "transport/sqlite/lease_bodies.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/sqlite/queue_purge.hpp"
#include "transport/sqlite/queue_waker.hpp"
#include "transport/sqlite/receiver.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport {

namespace {

using namespace sqlite;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Parses a receipt "<id>:<lease>".
bool parse_receipt(const std::string& receipt, std::int64_t& id, std::int64_t& lease) {
  const char* begin = receipt.data();
  const char* end = begin + receipt.size();
  auto [p, ec] = std::from_chars(begin, end, id);
  if (ec != std::errc() || p == end || *p != ':') return false;
  auto [q, ec2] = std::from_chars(p + 1, end, lease);
  return ec2 == std::errc() && q == end;
}

class SqliteTransport final : public Transport {
 public:
  SqliteTransport(const Options& options, SqliteSettings settings)
      : options_(options),
        settings_(std::move(settings)),
        body_files_(settings_.path),
        waker_(settings_.path),
        pool_(settings_) {}

  ~SqliteTransport() override { close(); }

  // Opens the first connection (creating directories and tables) so that configuration errors
  // surface at start-up.
  void open() {
    std::filesystem::path parent = std::filesystem::path(settings_.path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        throw ConfigError("ASYA_SQLITE_PATH=" + in_quotes(settings_.path) +
                          ": cannot create the directory " + in_quotes(parent.string()) + ": " +
                          ec.message());
      }
    }
    auto connection = Connection::open(settings_, /*create_schema=*/true);
    if (!connection) throw ConfigError(connection.error().message);
    body_files_.sweep_orphans(*connection.value());
    lease_owners_.release_dead_owners(
        *connection.value(), [this](const std::string& queue) { waker_.notify(queue); },
        [this](std::int64_t owner) { slots_.remove_file_of(owner); });
    waiters_.remove_stale(*connection.value(),
                          [this](const std::string& queue) { waker_.notify(queue); });
    lease_owners_.remove_earlier_boots(
        *connection.value(), [this](std::int64_t owner) { slots_.remove_file_of(owner); });
    // This instance's own owner number (lease_owners.hpp), before anything can lease.
    if (Status claimed = lease_owners_.claim(*connection.value()); !claimed)
      throw ConfigError("ASYA_SQLITE_PATH=" + in_quotes(settings_.path) + ": " + claimed.message());
    body_files_.swept_now();
    pool_.add(std::move(connection.value()));
  }

  std::string_view name() const override { return "sqlite"; }

  Status ensure_queue(std::string_view queue) override {
    auto c = pool_.acquire();
    if (!c) return c.error();
    auto s = c->connection().statement(kEnsure);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now_ms());
    if (sqlite3_step(*s) != SQLITE_DONE) return failure("ensure_queue", queue, *c);
    return Status::Ok();
  }

  Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                        milliseconds wait) override {
    return receiver_.receive(queue, max_messages, wait);
  }

  Status send(std::string_view queue, std::string_view body, milliseconds delay) override {
    OutgoingMessage one{queue, body, delay};
    return std::move(send_many(std::span<const OutgoingMessage>(&one, 1)).front());
  }

  // Every message's row in write transactions shared with each other and with the sends and
  // acks other threads of this process have pending (group_commit.hpp).
  std::vector<Status> send_many(std::span<const OutgoingMessage> messages) override {
    std::vector<Status> results(messages.size(), Status::Ok());
    std::vector<Pending> pending(messages.size());
    std::vector<GroupCommit::Job> jobs;
    std::vector<std::size_t> job_of;  // jobs[k] sends messages[job_of[k]]
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const OutgoingMessage& m = messages[i];
      if (m.size() > options_.max_message_bytes) {
        results[i] =
            Error{"message_too_large: a message of " + std::to_string(m.size()) +
                  " bytes for queue " + in_quotes(m.queue) + " exceeds the limit of " +
                  std::to_string(options_.max_message_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)"};
        continue;
      }
      // A large body goes to its own file first, durably, outside any lock; the row naming it
      // is inserted below. A crash in between leaves an unnamed file for sweep_orphans().
      if (settings_.file_body_bytes > 0 && m.size() > settings_.file_body_bytes) {
        if (Status written = write_message_body(body_files_, m, pending[i].file_name); !written) {
          results[i] = Error{"send to queue " + in_quotes(m.queue) + ": " + written.message()};
          continue;
        }
      } else if (!m.parts.empty()) {
        pending[i].joined = m.joined();  // kept in the database: joined, outside the lock
      }
      jobs.push_back(GroupCommit::Job{
          "send to queue " + in_quotes(m.queue), insert_operation(m, pending[i]), {m.queue}});
      job_of.push_back(i);
    }
    // The receivers of each queue are woken just before the COMMIT (group_commit.hpp).
    std::vector<Status> committed = group_.run_many(jobs);
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      std::size_t i = job_of[k];
      results[i] = std::move(committed[k]);
      // The file goes when this send's own statements or checks failed, or never ran; after a
      // failed COMMIT the row's fate is not certain and the sweep decides later.
      if (!results[i] && (pending[i].own_failure || !pending[i].ran) &&
          !pending[i].file_name.empty())
        body_files_.discard(pending[i].file_name);
    }
    body_files_.maybe_sweep(pool_);
    return results;
  }

  Status ack(const Delivery& delivery) override {
    const Delivery* one = &delivery;
    return std::move(ack_many(std::span<const Delivery* const>(&one, 1)).front());
  }

  // Each row and its body go in write transactions shared with each other and with the sends and
  // acks pending in this process (group_commit.hpp).
  std::vector<Status> ack_many(std::span<const Delivery* const> deliveries) override {
    std::vector<Status> results(deliveries.size(), Status::Ok());
    std::vector<LeaseChange> changes(deliveries.size());
    std::vector<GroupCommit::Job> jobs;
    std::vector<std::size_t> job_of;  // jobs[k] acks deliveries[job_of[k]]
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
      const Delivery& d = *deliveries[i];
      if (results[i] = parse("ack", d, changes[i]); !results[i]) continue;
      LeaseChange& change = changes[i];
      jobs.push_back(GroupCommit::Job{"ack on queue " + in_quotes(d.queue),
                                      [this, &d, &change](Connection& db, bool& abort) {
                                        Status s = apply(kAck, "ack", d, change, 0, db);
                                        abort = !s;
                                        return s;
                                      }});
      job_of.push_back(i);
    }
    std::vector<Status> committed = group_.run_many(jobs);
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      std::size_t i = job_of[k];
      results[i] = committed[k] ? applied("ack", *deliveries[i], changes[i]) : committed[k];
    }
    body_files_.maybe_sweep(pool_);
    return results;
  }

  // The outputs' rows and the input's delete in one operation of a shared write transaction
  // (group_commit.hpp): one commit per message instead of two. Bodies stored as files, and
  // anything send_many() would refuse, take the ordinary way.
  std::optional<Status> send_then_ack(std::span<const OutgoingMessage> messages,
                                      const Delivery& delivery) override {
    SendThenAck one{messages, &delivery};
    return std::move(send_then_ack_many(std::span<const SendThenAck>(&one, 1)).front());
  }

  // Every step one operation of the same group commit (run_many): the steps share write
  // transactions with each other, each all or nothing (a step whose statements fail rolls the
  // transaction back and every step runs again alone, group_commit.hpp).
  std::vector<std::optional<Status>> send_then_ack_many(
      std::span<const SendThenAck> steps) override {
    std::vector<std::optional<Status>> results(steps.size());
    std::vector<LeaseChange> changes(steps.size());
    std::vector<std::vector<Pending>> pending(steps.size());
    std::vector<GroupCommit::Job> jobs;
    std::vector<std::size_t> job_of;  // jobs[k] runs steps[job_of[k]]
    std::size_t job_count = 0;        // set before any job runs
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const SendThenAck& step = steps[i];
      if (!parse("ack", *step.delivery, changes[i])) continue;
      bool eligible = true;
      for (const OutgoingMessage& m : step.messages) {
        if (!m.parts.empty() || m.body.size() > options_.max_message_bytes ||
            (settings_.file_body_bytes > 0 && m.body.size() > settings_.file_body_bytes))
          eligible = false;
      }
      if (!eligible) continue;
      pending[i].resize(step.messages.size());
      std::vector<std::string_view> wakes;
      for (const OutgoingMessage& m : step.messages) wakes.push_back(m.queue);
      jobs.push_back(
          GroupCommit::Job{"send and ack on queue " + in_quotes(step.delivery->queue),
                           [this, &step, &change = changes[i], &p = pending[i], &job_count,
                            number = jobs.size() + 1](Connection& db, bool& abort) -> Status {
                             for (std::size_t m = 0; m < step.messages.size(); ++m) {
                               Status sent = insert_operation(step.messages[m], p[m])(db, abort);
                               if (!sent) {
                                 abort = true;  // all or nothing: none of it is committed
                                 return sent;
                               }
                             }
                             Status acked = apply(kAck, "ack", *step.delivery, change, 0, db);
                             abort = !acked;
                             // For tests: a crash inside a write transaction shared by several
                             // messages' outputs and acks, every statement run, before its COMMIT
                             // (docs/testing.md).
                             if (acked && job_count > 1 && number == job_count)
                               failpoint("sqlite.shared_settle_uncommitted");
                             return acked;
                           },
                           std::move(wakes)});
      job_of.push_back(i);
    }
    job_count = jobs.size();
    // The receivers of the outputs' queues are woken just before the COMMIT (group_commit.hpp).
    std::vector<Status> committed = group_.run_many(jobs);
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      std::size_t i = job_of[k];
      if (!committed[k]) continue;  // nothing of it was done: the caller goes step by step
      results[i] = applied("ack", *steps[i].delivery, changes[i]);
    }
    body_files_.maybe_sweep(pool_);
    return results;
  }

  bool settles_together() const override { return true; }

  Status nack(const Delivery& delivery, milliseconds delay) override {
    Status s = change_lease(kNack, "nack", delivery, std::max<std::int64_t>(delay.count(), 0));
    if (s) waker_.notify(delivery.queue);
    return s;
  }

  Status extend_lease(const Delivery& delivery, milliseconds visibility) override {
    return change_lease(kExtend, "extend_lease", delivery,
                        std::max<std::int64_t>(visibility.count(), 0));
  }

  Result<QueueStats> stats(std::string_view queue) override {
    auto c = pool_.acquire();
    if (!c) return c.error();
    return queue_stats(c->connection(), queue, now_ms());
  }

  Result<std::optional<std::uint64_t>> purge(std::string_view queue) override {
    PurgedRows purged;
    {
      auto c = pool_.acquire();
      if (!c) return c.error();
      auto rows = purge_rows(c->connection(), queue, now_ms());
      if (!rows) return rows.error();
      purged = std::move(*rows);
    }
    // After the rows are gone for good; a crash before this leaves orphans for the sweep.
    for (const std::string& file : purged.body_files) body_files_.remove(file);
    return std::optional<std::uint64_t>(purged.removed);
  }

  Result<std::vector<std::string>> list_queues() override {
    auto c = pool_.acquire();
    if (!c) return c.error();
    return queue_names(c->connection());
  }

  std::size_t max_message_bytes() const override { return options_.max_message_bytes; }
  bool sends_parts() const override { return true; }  // body files written from the parts
  std::shared_ptr<BodySpool> open_body_spool(std::size_t expected_bytes) override {
    return open_spool(body_files_, settings_.file_body_bytes, expected_bytes);
  }

  void interrupt() override { waker_.interrupt(); }

  void close() override {
    waker_.stop();
    waiters_.forget(pool_, lease_owners_.owner(),
                    [this](const std::string& queue) { waker_.notify(queue); });
    slots_.remove_own();
    lease_owners_.forget(pool_);
    pool_.close();
  }

 private:
  Status failure(const char* operation, std::string_view queue, ConnectionPool::Borrowed& c) {
    return failure(operation, queue, c.connection());
  }
  Status failure(const char* operation, std::string_view queue, Connection& db) {
    return Error{std::string(operation) + " on queue " + in_quotes(queue) +
                 " failed: " + db.error()};
  }

  // One send of send_many: its body file (when the body is stored as a file), whether its
  // statements ran in the last attempt and whether they failed themselves.
  struct Pending {
    std::string file_name;
    std::string joined;  // a body given in parts and kept in the database: the parts joined
    bool ran = false;    // false: no statement of this send ran (BEGIN or the pool failed)
    bool own_failure = false;
  };

  // The row and its body (or its file name): nothing but the inserts runs while the write lock
  // is held.
  GroupCommit::Operation insert_operation(const OutgoingMessage& m, Pending& p) {
    return [this, &m, &p](Connection& db, bool& abort) -> Status {
      p.ran = true;
      p.own_failure = false;
      auto fail = [&](Status failed, bool statement) {
        p.own_failure = true;
        abort = statement;
        return failed;
      };
      if (!p.file_name.empty()) {
        // The sweep claims unnamed files under this same write lock: the file still being
        // there now means it stays (only a sender paused for kOrphanAge gets here without it).
        std::filesystem::path path = body_files_.path_of(p.file_name);
        if (::access(path.c_str(), F_OK) != 0) {
          int error = errno;
          return fail(
              Error{"send to queue " + in_quotes(m.queue) + ": the body file " +
                    in_quotes(path.string()) + " was removed before its message was recorded (" +
                    errno_text(error) + "; the sender paused longer than " +
                    std::to_string(BodyFiles::kOrphanAge.count()) + " minutes?)"},
              false);
        }
      }
      // A receiver already waiting for a message of this queue gets this one leased to it
      // (hand_off.hpp): it then only reads it.
      std::optional<Waiters::Target> waiter;
      if (settings_.hand_off && m.delay.count() <= 0) {
        auto picked = waiters_.pick(db, m.queue);
        if (!picked) return fail(picked.error(), true);
        waiter = *picked;
      }
      auto s = db.statement(waiter ? kSendHanded : kSend);
      if (!s) return fail(s.error(), true);
      ResetOnExit reset{*s};
      std::int64_t now = now_ms();
      bind_text(*s, 1, m.queue);
      sqlite3_bind_int64(
          *s, 2,
          waiter ? now + waiter->visibility_ms : now + std::max<std::int64_t>(m.delay.count(), 0));
      sqlite3_bind_int64(*s, 3, now);
      if (!p.file_name.empty()) bind_text(*s, 4, p.file_name);
      if (waiter) sqlite3_bind_int64(*s, 5, waiter->token);
      if (sqlite3_step(*s) != SQLITE_DONE) return fail(failure("send", m.queue, db), true);
      const std::int64_t id = sqlite3_last_insert_rowid(db.db());
      if (waiter) {
        if (Status handed = waiters_.mark_handed(db, waiter->token, id); !handed)
          return fail(handed, true);
      }
      if (p.file_name.empty()) {
        std::string_view body = m.parts.empty() ? m.body : std::string_view(p.joined);
        auto b = db.statement(kSendBody);
        if (!b) return fail(b.error(), true);
        ResetOnExit reset_body{*b};
        sqlite3_bind_int64(*b, 1, id);
        bind_blob(*b, 2, body);
        if (sqlite3_step(*b) != SQLITE_DONE) return fail(failure("send", m.queue, db), true);
        // The woken receiver takes it from its slot once this transaction committed
        // (hand_off_slots.hpp), instead of reading the database.
        if (waiter) slots_.stage(waiter->token, id, body);
      }
      return Status::Ok();
    };
  }

  // One ack, nack or extend: the receipt's row and lease token, and what the statement did.
  struct LeaseChange {
    std::int64_t id = 0;
    std::int64_t token = 0;
    bool changed = false;
    std::string file;  // ack: the body file of the deleted row
  };

  // Reads the receipt into `c`; an Error when it is not one of this transport's.
  Status parse(const char* operation, const Delivery& delivery, LeaseChange& c) {
    if (parse_receipt(delivery.receipt, c.id, c.token)) return Status::Ok();
    return Error{std::string(operation) + " on queue " + in_quotes(delivery.queue) +
                 ": the receipt " + in_quotes(delivery.receipt) +
                 " was not produced by the sqlite transport"};
  }

  // ack (delete), nack (visible after `millis`) or extend (visible after `millis`) on `db`, each
  // only while the row still carries the delivery's lease token (c.changed says whether it did).
  Status apply(Sql sql, const char* operation, const Delivery& delivery, LeaseChange& c,
               std::int64_t millis, Connection& db) {
    c.changed = false;
    c.file.clear();
    if (sql == kAck) {
      // Most rows keep their body in the table: deleted in one statement (connection.cpp).
      if (Status s = delete_inline(delivery, c, db); !s || c.changed) return s;
      if (delete_leased_row(db, c.id, c.token, c.changed, c.file) != SQLITE_DONE)
        return failure(operation, delivery.queue, db);
      if (!c.changed || !c.file.empty()) return Status::Ok();
      return delete_body(delivery, c, db);
    }
    auto s = db.statement(sql);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, c.id);
    sqlite3_bind_int64(*s, 2, c.token);
    sqlite3_bind_int64(*s, 3, now_ms() + millis);
    if (sqlite3_step(*s) != SQLITE_DONE) return failure(operation, delivery.queue, db);
    c.changed = sqlite3_changes(db.db()) != 0;
    return Status::Ok();
  }

  // An ack of a row whose body is in the table: the row and its body; c.changed false (nothing
  // done) when the row names a body file or the lease is not held.
  Status delete_inline(const Delivery& delivery, LeaseChange& c, Connection& db) {
    auto s = db.statement(kAckInline);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, c.id);
    sqlite3_bind_int64(*s, 2, c.token);
    if (sqlite3_step(*s) != SQLITE_DONE) return failure("ack", delivery.queue, db);
    c.changed = sqlite3_changes(db.db()) != 0;
    return c.changed ? delete_body(delivery, c, db) : Status::Ok();
  }

  Status delete_body(const Delivery& delivery, const LeaseChange& c, Connection& db) {
    auto b = db.statement(kAckBody);
    if (!b) return b.error();
    ResetOnExit reset_body{*b};
    sqlite3_bind_int64(*b, 1, c.id);
    if (sqlite3_step(*b) != SQLITE_DONE) return failure("ack", delivery.queue, db);
    return Status::Ok();
  }

  // After `c` was applied and committed: an Error when the lease was not held, else removes an
  // acked row's body file (after the row is gone for good; a crash before this leaves an orphan
  // for the sweep).
  Status applied(const char* operation, const Delivery& delivery, const LeaseChange& c) {
    if (!c.changed) {
      return Error{std::string(operation) + " of message " + std::to_string(c.id) + " on queue " +
                   in_quotes(delivery.queue) +
                   " failed: the lease is no longer held (it expired and the message was "
                   "received again, or it was already acked or nacked); nothing was changed"};
    }
    if (!c.file.empty()) body_files_.remove(c.file);
    return Status::Ok();
  }

  // nack or extend: one statement on its own connection.
  Status change_lease(Sql sql, const char* operation, const Delivery& delivery,
                      std::int64_t millis) {
    LeaseChange change;
    if (Status s = parse(operation, delivery, change); !s) return s;
    auto c = pool_.acquire();
    if (!c) return c.error();
    if (Status s = apply(sql, operation, delivery, change, millis, c->connection()); !s) return s;
    return applied(operation, delivery, change);
  }

  Options options_;
  SqliteSettings settings_;
  BodyFiles body_files_;
  LeaseOwners lease_owners_;
  Waiters waiters_{lease_owners_.host()};
  HandOffSlots slots_{settings_.path};
  QueueWaker waker_;
  ConnectionPool pool_;
  LeaseParts parts_{pool_, lease_owners_, body_files_, waiters_, slots_};
  Receiver receiver_{settings_, options_.visibility_timeout, waker_, parts_};
  GroupCommit group_{pool_, [this](std::string_view queue) { waker_.notify(queue); },
                     [this](bool committed) { slots_.end_transaction(committed); }};
};

}  // namespace

std::unique_ptr<Transport> make_sqlite_transport(const Options& options,
                                                 const SqliteSettings& settings) {
  WriteLockStats::export_once();
  auto transport = std::make_unique<SqliteTransport>(options, settings);
  transport->open();
  return transport;
}

std::unique_ptr<Transport> make_sqlite_transport(const Options& options) {
  SqliteSettings settings = SqliteSettings::from_env(Environment(options.environment));
  if (options.sqlite_path && !options.sqlite_path->empty()) settings.path = *options.sqlite_path;
  return make_sqlite_transport(options, settings);
}

}  // namespace asya::transport
