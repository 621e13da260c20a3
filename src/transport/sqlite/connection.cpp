#include "transport/sqlite/connection.hpp"

#include <algorithm>
#include <mutex>
#include <thread>
#include <utility>

#include "common/env.hpp"
#include "common/log.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport::sqlite {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string in_quotes(std::string_view text) {
  // Built by appending: GCC 12 at -O3 warns (-Wrestrict, a false positive) on "\"" + string.
  std::string quoted;
  quoted.reserve(text.size() + 2);
  quoted += '"';
  quoted.append(text);
  quoted += '"';
  return quoted;
}

namespace {

// Schema version 3 (PRAGMA user_version): bodies up to file_body_bytes live in their own table,
// written once by send() and deleted by ack(); larger ones live in files of `<path>.bodies/`
// named by messages.body_file (NULL for a body in the table). Leases only ever rewrite the small
// `messages` rows. Version 1 (user_version 0 with `messages.body`) and version 2 (no
// `body_file` column) are migrated in place on open.
constexpr int kSchemaVersion = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS queues(
  name TEXT PRIMARY KEY NOT NULL,
  created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  visible_at_ms INTEGER NOT NULL,
  delivery_count INTEGER NOT NULL DEFAULT 0,
  lease INTEGER,
  sent_at_ms INTEGER NOT NULL,
  body_file TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue, visible_at_ms, id);
CREATE INDEX IF NOT EXISTS messages_by_body_file ON messages(body_file)
  WHERE body_file IS NOT NULL;
CREATE TABLE IF NOT EXISTS bodies(
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
)sql";

// Version 1 -> 2: move the bodies out of the message rows (one rewrite of the file, once).
constexpr const char* kMigrateFrom1 = R"sql(
CREATE TABLE IF NOT EXISTS bodies(
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
INSERT INTO bodies(id, body) SELECT id, body FROM messages;
ALTER TABLE messages DROP COLUMN body;
)sql";

// The processes holding leases: a lease token is (owner << 32) | counter, and each transport
// instance records its owner number with its machine (boot id and pid namespace), pid and the
// pid's start time when it opens the file. Opening the file releases at once the leases of owners
// on this machine whose process is gone, so a restarted sidecar gets back the messages its killed
// predecessor held instead of waiting for their leases to expire. `lease_owner_numbers` holds the
// last number handed out (one row, id 1), so that numbers are unique (lease_owners.hpp); older
// builds ignore it.
constexpr const char* kLeaseOwnersSchema = R"sql(
CREATE TABLE IF NOT EXISTS lease_owners(
  owner INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_owner_numbers(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last INTEGER NOT NULL
);
)sql";

// Receivers waiting for a message (hand_off.hpp): one row per receive() call that waits, keyed
// by the lease token a message handed to it is leased with. `message_id` is NULL while it waits
// and names the message once a sender handed it one. No index: the table holds one row per waiting
// receive() (a few pages at most), and a sender's look is cheapest as a scan of those pages, as
// is every write to it. Like lease_owners, created by every version
// on open; older builds ignore it (their senders hand nothing over, their receivers register none).
constexpr const char* kWaitersSchema = R"sql(
CREATE TABLE IF NOT EXISTS waiters(
  token INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  owner INTEGER NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  visibility_ms INTEGER NOT NULL,
  since_ms INTEGER NOT NULL,
  message_id INTEGER,
  started TEXT
);
)sql";

// Files whose `waiters` was created before the column `started` (the waiting process's start
// time, process_identity.hpp) get it on open; rows without it are never handed a message.
constexpr const char* kWaitersAddStarted = "ALTER TABLE waiters ADD COLUMN started TEXT;";

// Version 2 -> 3: the column naming a body file (no rewrite: every existing body stays inline).
constexpr const char* kMigrateFrom2 = "ALTER TABLE messages ADD COLUMN body_file TEXT;";

// The texts of the Sql statements, in enum order.
constexpr std::array<const char*, kSqlCount> kSqlText = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO messages(queue, visible_at_ms, delivery_count, lease, sent_at_ms, body_file) "
    "VALUES(?1, ?2, 0, NULL, ?3, ?4)",
    "INSERT INTO bodies(id, body) VALUES(?1, ?2)",
    // A lease of one message: the ready row, then that row updated by its id, both inside BEGIN
    // IMMEDIATE (no other writer in between): cheaper than kLeaseMany's temporary tables for
    // `IN (SELECT ...)` and RETURNING (19 against 24 µs warm), which pay off from a few rows on.
    // A lease of several selects two first: one ready row takes this path too (lease.cpp). The
    // first two rows of the queue in visibility order, ready or not: the caller leases the ready
    // ones and reads the queue's next visible time from the rest, without a second look
    // (kNextVisible) after the update.
    "SELECT id, delivery_count, body_file, visible_at_ms FROM messages WHERE queue = ?1 "
    "ORDER BY visible_at_ms, id LIMIT 2",
    "UPDATE messages SET visible_at_ms = ?2, delivery_count = delivery_count + 1, lease = ?3 "
    "WHERE id = ?1",
    // OR ROLLBACK: a statement that may change several rows inside BEGIN ... COMMIT and abort
    // half-way would need a statement journal (a 64 KiB buffer allocated and freed per lease);
    // these columns never violate a constraint, and a failure rolls the whole lease back anyway.
    "UPDATE OR ROLLBACK messages SET visible_at_ms = ?3, delivery_count = delivery_count + 1, "
    "lease = ?4 WHERE id IN (SELECT id FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2 "
    "ORDER BY visible_at_ms, id LIMIT ?5) RETURNING id, delivery_count, body_file",
    "SELECT min(visible_at_ms) FROM messages WHERE queue = ?1",
    // An ack: the row while leased, then its delete (delete_leased_row).
    "SELECT body_file FROM messages WHERE id = ?1 AND lease = ?2",
    // The common ack (a body kept in the table): no RETURNING, whose results SQLite gathers in a
    // temporary b-tree opened, zeroed and closed per statement (~12,000 instructions, a third of
    // this statement). A row naming a body file (or a lost lease) is left to kAck and kAckRow.
    "DELETE FROM messages WHERE id = ?1 AND lease = ?2 AND body_file IS NULL",
    "DELETE FROM bodies WHERE id = ?1",
    "UPDATE messages SET visible_at_ms = ?3, lease = NULL WHERE id = ?1 AND lease = ?2",
    "UPDATE messages SET visible_at_ms = ?3 WHERE id = ?1 AND lease = ?2",
    "INSERT OR IGNORE INTO queues(name, created_at_ms) VALUES(?1, ?2)",
    "SELECT name FROM queues UNION SELECT DISTINCT queue FROM messages ORDER BY 1",
    "SELECT coalesce(sum(visible_at_ms <= ?2), 0), "
    "coalesce(sum(visible_at_ms > ?2 AND lease IS NOT NULL), 0), "
    "coalesce(sum(visible_at_ms > ?2 AND lease IS NULL), 0) FROM messages WHERE queue = ?1",
    "SELECT 1 FROM messages WHERE body_file = ?1",
    // length() of a blob reads its size from the record header, not its pages: a body too long
    // is not loaded at all.
    "SELECT body FROM bodies WHERE id = ?1 AND length(body) <= ?2",
    "INSERT INTO messages(queue, visible_at_ms, delivery_count, lease, sent_at_ms, body_file) "
    "VALUES(?1, ?2, 1, ?5, ?3, ?4)",
    "INSERT OR REPLACE INTO waiters(token, queue, owner, host, pid, visibility_ms, since_ms, "
    "message_id, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)",
    // Rows of older builds (no start time) are not candidates: their pid alone proves nothing.
    // No ORDER BY: the caller picks the oldest (since_ms, token) of these few rows itself. With
    // ORDER BY ... LIMIT 1 SQLite sorts them in a temporary B-tree opened and closed per send
    // (OpenEphemeral), which cost a sender woken from idle 6-15 µs inside the write lock
    // (docs/performance.md, "The sender's pick without a temporary B-tree").
    "SELECT token, visibility_ms, pid, started, since_ms FROM waiters WHERE queue = ?1 AND "
    "message_id IS NULL AND host = ?2 AND started <> ''",
    "UPDATE waiters SET message_id = ?2 WHERE token = ?1",
    "DELETE FROM waiters WHERE token = ?1",
    // The waiter's row and, when a message was handed to it and is still leased with its token,
    // that message and its body when kept in the database and at most ?2 bytes long.
    "SELECT w.message_id, m.id, m.delivery_count, m.body_file, "
    "CASE WHEN m.body_file IS NULL THEN (SELECT body FROM bodies WHERE id = m.id AND "
    "length(body) <= ?2) END FROM waiters w LEFT JOIN messages m ON m.id = w.message_id AND "
    "m.lease = w.token WHERE w.token = ?1",
    // A message handed to a waiter that never took it: visible again, its delivery not counted.
    "UPDATE messages SET visible_at_ms = min(visible_at_ms, ?3), lease = NULL, "
    "delivery_count = max(delivery_count - 1, 0) WHERE id = ?1 AND lease = ?2 RETURNING queue",
    "DELETE FROM messages WHERE id = ?1",
};

// Once per process, before SQLite's first use: no bulk allocation of page-cache memory per
// connection (SQLITE_CONFIG_PAGECACHE with no buffer and 0 lines). In WAL mode a connection's page
// cache is emptied whenever another connection committed, and with the default (20 pages, 87 KB
// in one block) that block was freed and allocated again for almost every transaction of a queue
// shared by several processes: glibc gave it back to the kernel and faulted it in again each time
// (brk, page faults; about a third of a bare consumer's CPU at a steady 100 msg/s, see
// docs/performance.md). Pages are then allocated one by one and reused from malloc's free lists.
// When SQLite was already initialized by another part of the process, sqlite3_config() refuses
// (SQLITE_MISUSE) and the default stays: correct, only slower.
// sqlite3_config() must not run while another thread uses SQLite, so it runs during static
// initialization (kConfiguredAtStart below: before main, one thread, so also before another part
// of the process can open a database first); Connection::open() calls it too, which does nothing
// after the first call.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (int rc = sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); rc != SQLITE_OK)
      spdlog::debug(
          "sqlite transport: SQLite already initialized, page-cache bulk allocation "
          "left on ({})",
          sqlite3_errstr(rc));
  });
}

[[maybe_unused]] const bool kConfiguredAtStart = (configure_sqlite_once(), true);

}  // namespace

// Runs `step` (returning an SQLite result code) again while it fails with SQLITE_BUSY or
// SQLITE_LOCKED, sleeping 1, 2, 4 ... 50 ms in between, until busy_timeout has passed.
template <typename Step>
Status Connection::with_retry(const char* what, Step step) {
  Clock::time_point give_up = Clock::now() + settings_.busy_timeout;
  std::chrono::microseconds pause(1000);
  for (;;) {
    failure_.clear();
    int rc = step();
    if (rc == SQLITE_OK || rc == SQLITE_DONE) return Status::Ok();
    int code = rc & 0xff;
    if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || Clock::now() >= give_up) {
      return Error{std::string(what) + " on ASYA_SQLITE_PATH=" + in_quotes(settings_.path) +
                   " failed: " + (failure_.empty() ? error() : failure_)};
    }
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, milliseconds(50));
  }
}

Connection::~Connection() {
  for (sqlite3_stmt* s : statements_) sqlite3_finalize(s);
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Connection>> Connection::open(const SqliteSettings& settings,
                                                     bool create_schema) {
  configure_sqlite_once();
  std::unique_ptr<Connection> c(new Connection(settings));
  int rc =
      sqlite3_open_v2(settings.path.c_str(), &c->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    return Error{
        "cannot open the SQLite queue database ASYA_SQLITE_PATH=" + in_quotes(settings.path) +
        ": " + (c->db_ ? sqlite3_errmsg(c->db_) : sqlite3_errstr(rc))};
  }
  sqlite3_busy_handler(c->db_, &Connection::busy_handler, c.get());
  // Replaces SQLite's automatic checkpoint (sqlite3_wal_autocheckpoint) on this connection.
  sqlite3_wal_hook(c->db_, &Connection::wal_hook, c.get());
  // Two processes opening a new file at once: switching it to WAL needs an exclusive lock, and
  // SQLite reports SQLITE_BUSY at once (without the busy handler) when another connection holds
  // a lock in rollback-journal mode. Retry with backoff until busy_timeout.
  std::string mode;
  Status set_wal = c->with_retry("setting WAL mode", [&] {
    mode.clear();
    return sqlite3_exec(
        c->db_, "PRAGMA journal_mode=WAL",
        [](void* out, int, char** values, char**) {
          *static_cast<std::string*>(out) = values[0] ? values[0] : "";
          return 0;
        },
        &mode, nullptr);
  });
  if (!set_wal) return set_wal.error();
  // journal_mode=WAL stays "delete" on file systems without shared memory; the database then
  // still works, but concurrency is worse and the wake-up falls back to polling.
  if (mode != "wal") {
    spdlog::warn("sqlite transport: {} runs in journal_mode={} instead of wal", settings.path,
                 mode);
  }
  std::string synchronous = "PRAGMA synchronous=";
  synchronous += settings.synchronous_full ? "FULL" : "NORMAL";
  if (Status s = c->with_retry(
          "setting synchronous",
          [&] { return sqlite3_exec(c->db_, synchronous.c_str(), nullptr, nullptr, nullptr); });
      !s) {
    return s.error();
  }
  if (create_schema) {
    if (Status s = c->with_retry("creating the tables", [&] { return c->create_schema(); }); !s) {
      return s.error();
    }
    if (!c->schema_error_.empty()) return Error{c->schema_error_};
  }
  return c;
}

Result<sqlite3_stmt*> Connection::statement(Sql id) {
  sqlite3_stmt*& s = statements_[id];
  if (s == nullptr) {
    if (sqlite3_prepare_v3(db_, kSqlText[id], -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) !=
        SQLITE_OK) {
      return Error{std::string("preparing ") + in_quotes(kSqlText[id]) + " failed: " + error()};
    }
  }
  return s;
}

Status Connection::run(Sql id, const char* what) {
  auto s = statement(id);
  if (!s) return s.error();
  Clock::time_point started = Clock::now();
  int rc = sqlite3_step(*s);
  sqlite3_reset(*s);
  // Every write transaction begins and ends here: the time from BEGIN IMMEDIATE returning to
  // the transaction's end is how long this connection held the write lock (write_lock_stats).
  if (id == kBeginImmediate) {
    Clock::time_point now = Clock::now();
    WriteLockStats::record_wait(now - started);
    if (rc == SQLITE_DONE) lock_taken_ = now;
  } else if ((id == kCommit || id == kRollback) && lock_taken_ &&
             sqlite3_get_autocommit(db_) != 0) {
    WriteLockStats::record_hold(Clock::now() - *lock_taken_, settings_.path);
    lock_taken_.reset();
  }
  if (rc != SQLITE_DONE) return Error{std::string(what) + " failed: " + error()};
  return Status::Ok();
}

int delete_leased_row(Connection& db, std::int64_t id, std::int64_t token, bool& deleted,
                      std::string& body_file) {
  deleted = false;
  body_file.clear();
  {
    auto s = db.statement(kAck);
    if (!s) return SQLITE_ERROR;
    ResetOnExit reset{*s};
    sqlite3_bind_int64(*s, 1, id);
    sqlite3_bind_int64(*s, 2, token);
    int rc = sqlite3_step(*s);
    if (rc == SQLITE_DONE) return rc;  // not leased with this token: nothing to delete
    if (rc != SQLITE_ROW) return rc;
    if (const unsigned char* name = sqlite3_column_text(*s, 0))
      body_file = reinterpret_cast<const char*>(name);
  }
  auto s = db.statement(kAckRow);
  if (!s) return SQLITE_ERROR;
  ResetOnExit reset{*s};
  sqlite3_bind_int64(*s, 1, id);
  int rc = sqlite3_step(*s);
  if (rc == SQLITE_DONE) deleted = true;
  return rc;
}

std::string Connection::error() const {
  std::string text = sqlite3_errmsg(db_);
  int code = sqlite3_errcode(db_) & 0xff;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    text += " (another process held the write lock longer than ASYA_SQLITE_BUSY_TIMEOUT=" +
            format_duration(settings_.busy_timeout) + ")";
  }
  return text + " [" + settings_.path + "]";
}

// Creates the tables or migrates an older layout, in one write transaction; returns an SQLite
// result code (BUSY is retried by the caller). A file this build cannot use sets
// schema_error_ and returns SQLITE_OK.
int Connection::create_schema() {
  int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return rc;
  auto fail = [&](int code) {
    if (code != SQLITE_OK) failure_ = error();
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return code;
  };
  auto single_int = [&](const char* sql, std::int64_t& out) {
    sqlite3_stmt* s = nullptr;
    int prc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    if (prc != SQLITE_OK) return prc;
    int step = sqlite3_step(s);
    out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? SQLITE_OK : step;
  };
  std::int64_t version = 0;
  std::int64_t old_layout = 0;
  if ((rc = single_int("PRAGMA user_version", version)) != SQLITE_OK) return fail(rc);
  if (version == 0 &&
      (rc = single_int("SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'body'",
                       old_layout)) != SQLITE_OK) {
    return fail(rc);
  }
  if (version != 0 && version != 2 && version != kSchemaVersion) {
    schema_error_ = "the SQLite queue database ASYA_SQLITE_PATH=" + in_quotes(settings_.path) +
                    " has schema version " + std::to_string(version) +
                    ", which this build of Asya cannot read (it reads version " +
                    std::to_string(kSchemaVersion) +
                    " and migrates older files); use the Asya that created it, or point "
                    "ASYA_SQLITE_PATH at a new file";
    return fail(SQLITE_OK);
  }
  if (version != kSchemaVersion) {
    if (version == 0 && old_layout != 0) {
      spdlog::info(
          "sqlite transport: moving message bodies of {} into their own table "
          "(schema version 1 -> {})",
          settings_.path, kSchemaVersion);
      if ((rc = sqlite3_exec(db_, kMigrateFrom1, nullptr, nullptr, nullptr)) != SQLITE_OK) {
        return fail(rc);
      }
    }
    if ((version == 0 && old_layout != 0) || version == 2) {
      if ((rc = sqlite3_exec(db_, kMigrateFrom2, nullptr, nullptr, nullptr)) != SQLITE_OK) {
        return fail(rc);
      }
    }
    std::string create =
        std::string(kSchema) + "PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";";
    if ((rc = sqlite3_exec(db_, create.c_str(), nullptr, nullptr, nullptr)) != SQLITE_OK) {
      return fail(rc);
    }
  }
  // Every version: files created by an older build get the table on their next open (older
  // builds ignore it).
  if ((rc = sqlite3_exec(db_, kLeaseOwnersSchema, nullptr, nullptr, nullptr)) != SQLITE_OK)
    return fail(rc);
  if ((rc = sqlite3_exec(db_, kWaitersSchema, nullptr, nullptr, nullptr)) != SQLITE_OK)
    return fail(rc);
  std::int64_t has_started = 0;
  if ((rc = single_int("SELECT count(*) FROM pragma_table_info('waiters') WHERE name = 'started'",
                       has_started)) != SQLITE_OK)
    return fail(rc);
  if (has_started == 0 &&
      (rc = sqlite3_exec(db_, kWaitersAddStarted, nullptr, nullptr, nullptr)) != SQLITE_OK)
    return fail(rc);
  rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? rc : fail(rc);
}

// SQLite's default busy handler sleeps up to 100 ms between attempts; a WAL write transaction
// here lasts ~0.1 ms, so retry quickly instead (bounded by busy_timeout).
int Connection::busy_handler(void* context, int attempt) {
  auto* self = static_cast<Connection*>(context);
  Clock::time_point now = Clock::now();
  if (self->busy_no_wait_) return 0;
  if (attempt == 0) self->busy_since_ = now;
  if (now - self->busy_since_ >= self->settings_.busy_timeout) return 0;
  if (now - self->busy_since_ < self->busy_spin_) {
    std::this_thread::yield();
    return 1;
  }
  std::this_thread::sleep_for(attempt < 50 ? std::chrono::microseconds(100)
                                           : std::chrono::microseconds(1000));
  return 1;
}

Status Connection::begin_spinning(std::chrono::microseconds spin) {
  busy_spin_ = spin;
  Status begun = run(kBeginImmediate, "BEGIN IMMEDIATE");
  busy_spin_ = std::chrono::microseconds(0);
  return begun;
}

int Connection::wal_hook(void* context, sqlite3* db, const char* name, int wal_frames) {
  auto* self = static_cast<Connection*>(context);
  // As SQLite's own hook: a checkpoint that cannot run now (another one in progress, SQLITE_BUSY)
  // or fails is not the COMMIT's failure; a later one backfills what this one did not.
  if (self->checkpoints_.checkpoint_after_commit(wal_frames))
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  return SQLITE_OK;
}

Status Connection::try_begin(bool& busy) {
  busy_no_wait_ = true;
  Status begun = run(kBeginImmediate, "BEGIN IMMEDIATE");
  busy_no_wait_ = false;
  int code = sqlite3_errcode(db_) & 0xff;
  busy = !begun && (code == SQLITE_BUSY || code == SQLITE_LOCKED);
  return begun;
}

ConnectionPool::Borrowed::~Borrowed() {
  if (connection_) pool_->give_back(std::move(connection_));
}

void ConnectionPool::add(std::unique_ptr<Connection> connection) {
  give_back(std::move(connection));
}

Result<ConnectionPool::Borrowed> ConnectionPool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return Error{"sqlite transport on " + in_quotes(settings_.path) + " is closed"};
    if (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      return Borrowed(this, std::move(c));
    }
  }
  // Opened outside the lock: other threads keep using the pool meanwhile.
  auto c = Connection::open(settings_, /*create_schema=*/false);
  if (!c) return c.error();
  return Borrowed(this, std::move(c.value()));
}

void ConnectionPool::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  idle_.clear();
}

void ConnectionPool::give_back(std::unique_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  if (!closed_) idle_.push_back(std::move(connection));
}

}  // namespace asya::transport::sqlite
