// One SQLite connection to the queue database with its cached prepared statements, the schema it
// creates (or migrates) on the first open of a transport instance, and the pool that hands
// connections to the calling threads.
//
// Threads: a Connection is used by one thread at a time (ConnectionPool lends it exclusively), so
// it is opened with SQLITE_OPEN_NOMUTEX. The pool is thread-safe: each concurrently calling thread
// borrows its own connection, opened on demand and kept for later calls. Neither may cross fork().
//
// Durability: nothing here commits on its own. A caller's change is durable once its
// `run(kCommit, ...)` returned Ok: with synchronous=NORMAL (default) a commit survives a crash of
// any process but the last commits may be lost on power loss; with ASYA_SQLITE_SYNCHRONOUS=full it
// also survives a power loss.
//
// Write-lock holds: run() times each write transaction from BEGIN IMMEDIATE to its COMMIT or
// ROLLBACK (write_lock_stats.hpp). Keep file I/O, fsync and anything slow out of them.
//
// Locking: a write waits for another process's write lock up to busy_timeout (a fast busy handler,
// not SQLite's default 100 ms sleeps) and then fails with an error() that names
// ASYA_SQLITE_BUSY_TIMEOUT. Opening retries the WAL switch and the schema setup, which SQLite
// reports busy without waiting, with backoff (1 ms doubling to 50 ms) until busy_timeout.
#pragma once

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/sqlite_settings.hpp"

namespace asya::transport::sqlite {

// Visibility times are wall-clock milliseconds since the epoch: the processes sharing the file
// compare them, so a per-process steady clock would not do.
std::int64_t now_ms();

// `text` in double quotes, for error messages.
std::string in_quotes(std::string_view text);

// The cached statements of a connection (texts in connection.cpp).
enum Sql : std::size_t {
  kBeginImmediate,
  kCommit,
  kRollback,
  kSend,         // ?1 queue, ?2 visible_at_ms, ?3 sent_at_ms, ?4 body_file (NULL: inline body)
  kSendBody,     // ?1 id, ?2 body
  kLease,        // ?1 queue -> id, delivery_count, body_file, visible_at_ms of its first 2 rows
  kLeaseRow,     // ?1 id, ?2 lease until, ?3 token (delivery_count + 1)
  kLeaseMany,    // ?1 queue, ?2 now, ?3 lease until, ?4 token, ?5 limit; RETURNING id, count, file
  kNextVisible,  // ?1 queue -> min(visible_at_ms) or NULL
  kAck,          // ?1 id, ?2 token -> body_file of the row while leased with that token
  kAckInline,    // ?1 id, ?2 token: deletes a row whose body is in the table (no RETURNING)
  kAckBody,      // ?1 id
  kNack,         // ?1 id, ?2 token, ?3 visible_at_ms (clears the lease)
  kExtend,       // ?1 id, ?2 token, ?3 visible_at_ms
  kEnsure,       // ?1 queue, ?2 created_at_ms
  kList,         // -> name
  kStats,        // ?1 queue, ?2 now -> ready, in flight, delayed
  kFileReferenced,  // ?1 body_file -> a row when some message names it
  kBodyUpTo,        // ?1 id, ?2 bytes -> body, when it is at most that long
  // Hand-off to waiting receivers (hand_off.hpp):
  kSendHanded,     // ?1 queue, ?2 visible_at_ms, ?3 sent_at_ms, ?4 body_file, ?5 lease token
  kWaiterInsert,   // ?1 token, ?2 queue, ?3 owner, ?4 host, ?5 pid, ?6 visibility_ms, ?7 since_ms,
                   // ?8 started
  kWaiterPick,     // ?1 queue, ?2 host -> token, visibility_ms, pid, started, since_ms of each
                   // waiting row (unordered)
  kWaiterHanded,   // ?1 token, ?2 message id
  kWaiterDelete,   // ?1 token
  kWaiterRead,     // ?1 token, ?2 bytes -> message_id, id, delivery_count, body_file, body
  kWaiterRelease,  // ?1 message id, ?2 token, ?3 now; RETURNING queue
  kAckRow,         // ?1 id (after kAck found it leased)
  kSqlCount
};

// When a connection checkpoints the WAL (Connection::open installs this policy instead of SQLite's
// automatic checkpoint, which runs one after every COMMIT that leaves 1,000 frames or more in the
// WAL). A checkpoint backfills the WAL into the database file with two fsyncs; the WAL is reset
// only by the next writer that finds it wholly backfilled, so on a file that several processes
// write (every sidecar of `asya up`, the gateway), each commit made while others commit stayed
// above the threshold and checkpointed again (with its fsyncs) for a handful of new frames. Here a
// connection checkpoints when its COMMIT leaves at least kFirstFrames in the WAL and then again
// only after the WAL grew by kStepFrames more, or after it was reset. Checkpoints stay passive
// (never wait for or block a reader or writer), their fsyncs and durability are SQLite's.
struct CheckpointPolicy {
  static constexpr int kFirstFrames = 1000;  // SQLite's default threshold
  static constexpr int kStepFrames = 250;

  // Whether a COMMIT that left `wal_frames` frames in the WAL checkpoints now; records it.
  bool checkpoint_after_commit(int wal_frames) {
    if (wal_frames < kFirstFrames) {
      checkpointed_at = 0;  // reset (or never that large): the next crossing checkpoints
      return false;
    }
    if (checkpointed_at != 0 && wal_frames >= checkpointed_at &&
        wal_frames < checkpointed_at + kStepFrames)
      return false;
    checkpointed_at = wal_frames;
    return true;
  }

  int checkpointed_at = 0;  // the WAL's size at this connection's last checkpoint, 0 for none
};

class Connection {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Opens the file and applies the per-connection settings (WAL, synchronous, busy handler);
  // `create_schema` also creates the tables or migrates an older layout (done once per transport
  // instance). The error names the path and the SQLite error, or the unknown schema version.
  static Result<std::unique_ptr<Connection>> open(const SqliteSettings& settings,
                                                  bool create_schema);

  sqlite3* db() const { return db_; }

  // The cached statement `id`, prepared on first use. Reset it after use (ResetOnExit).
  Result<sqlite3_stmt*> statement(Sql id);

  // Runs a statement without results (BEGIN, COMMIT, ...); `what` names it in the error.
  Status run(Sql id, const char* what);

  // BEGIN IMMEDIATE that, while another connection holds the write lock, retries at once
  // (sched_yield between attempts) for up to `spin` before the busy handler's usual sleeps. For a
  // receiver woken just before a sender's COMMIT, which releases the lock within microseconds.
  Status begin_spinning(std::chrono::microseconds spin);

  // BEGIN IMMEDIATE that gives up at once while another connection holds the write lock: then
  // `busy` is set and the Error says so. For a receiver waiting for the COMMIT of the sender
  // that woke it while it reads whether that sender handed it the message (hand_off.hpp).
  Status try_begin(bool& busy);

  // The last error, with a hint when it is lock contention, and the path.
  std::string error() const;

 private:
  explicit Connection(const SqliteSettings& settings) : settings_(settings) {}

  template <typename Step>
  Status with_retry(const char* what, Step step);
  int create_schema();
  static int busy_handler(void* context, int attempt);
  // The WAL hook: CheckpointPolicy's passive checkpoint after a COMMIT.
  static int wal_hook(void* context, sqlite3* db, const char* name, int wal_frames);

  SqliteSettings settings_;
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, kSqlCount> statements_{};
  std::chrono::steady_clock::time_point busy_since_;
  std::chrono::microseconds busy_spin_{0};  // begin_spinning(): yield, not sleep, this long
  CheckpointPolicy checkpoints_;
  bool busy_no_wait_ = false;  // try_begin(): no retry at all
  std::string schema_error_;
  std::string failure_;  // error() of a failed step, kept across its ROLLBACK
  // When run(kBeginImmediate) took the write lock; reset when the transaction ends.
  std::optional<std::chrono::steady_clock::time_point> lock_taken_;
};

// Connections for the threads of one transport instance.
class ConnectionPool {
 public:
  // A connection lent to one thread; goes back to the pool (or is closed, after close()) when
  // destroyed.
  class Borrowed {
   public:
    Borrowed(ConnectionPool* pool, std::unique_ptr<Connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Borrowed(Borrowed&& other) noexcept = default;
    ~Borrowed();
    Connection& connection() const { return *connection_; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  explicit ConnectionPool(const SqliteSettings& settings) : settings_(settings) {}

  // Adds an open connection (the first one, opened with the schema) to the idle ones.
  void add(std::unique_ptr<Connection> connection);

  // An idle connection, or a new one opened outside the pool's lock; an error after close() or
  // when opening fails.
  Result<Borrowed> acquire();

  // Closes the idle connections; borrowed ones are closed when returned. Later acquire() calls
  // fail. Idempotent.
  void close();

 private:
  void give_back(std::unique_ptr<Connection> connection);

  SqliteSettings settings_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
  bool closed_ = false;
};

// Resets a statement when leaving a scope, so a cached statement never keeps a read snapshot.
struct ResetOnExit {
  sqlite3_stmt* statement;
  ~ResetOnExit() {
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
  }
};

// An ack's row, inside a write transaction on `db`: deletes message `id` while it is leased with
// `token` (kAck, then kAckRow; a DELETE ... RETURNING would collect its one row in a temporary
// table opened per ack). `deleted` says whether it was; `body_file` is the row's body file (empty
// for a body in the table). Returns SQLITE_DONE, or the SQLite error code of the failed step.
int delete_leased_row(Connection& db, std::int64_t id, std::int64_t token, bool& deleted,
                      std::string& body_file);

inline void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

inline void bind_blob(sqlite3_stmt* s, int index, std::string_view bytes) {
  // A null pointer would bind NULL, not an empty blob.
  sqlite3_bind_blob64(s, index, bytes.empty() ? "" : bytes.data(), bytes.size(), SQLITE_STATIC);
}

}  // namespace asya::transport::sqlite
