#include "transport/sqlite/sqlite_transport.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "common/env.hpp"
#include "common/log.hpp"
#include "transport/sqlite/queue_waker.hpp"

namespace asya::transport {

SqliteSettings SqliteSettings::from_env() {
  SqliteSettings s;
  s.path = env_string("ASYA_SQLITE_PATH", s.path);
  s.synchronous_full =
      env_choice("ASYA_SQLITE_SYNCHRONOUS", "normal", {"normal", "full"}) == "full";
  s.busy_timeout = env_duration("ASYA_SQLITE_BUSY_TIMEOUT", s.busy_timeout);
  s.poll_interval = env_duration("ASYA_SQLITE_POLL_INTERVAL", s.poll_interval);
  if (s.poll_interval < std::chrono::milliseconds(1)) {
    throw ConfigError("ASYA_SQLITE_POLL_INTERVAL=\"" + format_duration(s.poll_interval) +
                      "\" is too short: use at least 1ms (default 100ms)");
  }
  try {
    s.file_body_bytes = env_bytes("ASYA_SQLITE_FILE_BODY_BYTES", s.file_body_bytes);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(e.what()) +
                      "; bodies above this size are stored as files next to the database, 0 "
                      "keeps them all inside it (default 1MiB)");
  }
  return s;
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Visibility times are wall-clock milliseconds since the epoch: the processes sharing the file
// compare them, so a per-process steady clock would not do.
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

// The processes holding leases: a lease token is (owner << 32) | counter, and each receiving
// transport instance records its owner number with its machine (boot id and pid namespace), pid
// and the pid's start time. Opening the file releases at once the leases of owners on this
// machine whose process is gone, so a restarted sidecar gets back the messages its killed
// predecessor held instead of waiting for their leases to expire.
constexpr const char* kLeaseOwnersSchema = R"sql(
CREATE TABLE IF NOT EXISTS lease_owners(
  owner INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started TEXT NOT NULL
);
)sql";

// Version 2 -> 3: the column naming a body file (no rewrite: every existing body stays inline).
constexpr const char* kMigrateFrom2 = "ALTER TABLE messages ADD COLUMN body_file TEXT;";

// Body files: `m-<16 hex digits unique per transport instance>-<counter>.body`, written as
// `<name>.tmp` first. Files older than kOrphanAge that no row names (a sender or an acker
// crashed between the file and the row) are removed on open and every kSweepInterval.
constexpr std::string_view kBodyPrefix = "m-";
constexpr std::string_view kBodySuffix = ".body";
constexpr std::string_view kTmpSuffix = ".tmp";
constexpr std::chrono::minutes kOrphanAge{15};
constexpr std::chrono::minutes kSweepInterval{10};

// The cached statements of a connection; the enum indexes Connection::statements_.
enum Sql : std::size_t {
  kBeginImmediate,
  kCommit,
  kRollback,
  kSend,
  kSendBody,
  kLease,
  kNextVisible,
  kAck,
  kAckBody,
  kNack,
  kExtend,
  kEnsure,
  kList,
  kStats,
  kFileReferenced,
  kSqlCount
};

constexpr std::array<const char*, kSqlCount> kSqlText = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO messages(queue, visible_at_ms, delivery_count, lease, sent_at_ms, body_file) "
    "VALUES(?1, ?2, 0, NULL, ?3, ?4)",
    "INSERT INTO bodies(id, body) VALUES(?1, ?2)",
    "UPDATE messages SET visible_at_ms = ?3, delivery_count = delivery_count + 1, lease = ?4 "
    "WHERE id IN (SELECT id FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2 "
    "ORDER BY visible_at_ms, id LIMIT ?5) RETURNING id, delivery_count, body_file",
    "SELECT min(visible_at_ms) FROM messages WHERE queue = ?1",
    "DELETE FROM messages WHERE id = ?1 AND lease = ?2 RETURNING body_file",
    "DELETE FROM bodies WHERE id = ?1",
    "UPDATE messages SET visible_at_ms = ?3, lease = NULL WHERE id = ?1 AND lease = ?2",
    "UPDATE messages SET visible_at_ms = ?3 WHERE id = ?1 AND lease = ?2",
    "INSERT OR IGNORE INTO queues(name, created_at_ms) VALUES(?1, ?2)",
    "SELECT name FROM queues UNION SELECT DISTINCT queue FROM messages ORDER BY 1",
    "SELECT coalesce(sum(visible_at_ms <= ?2), 0), "
    "coalesce(sum(visible_at_ms > ?2 AND lease IS NOT NULL), 0), "
    "coalesce(sum(visible_at_ms > ?2 AND lease IS NULL), 0) FROM messages WHERE queue = ?1",
    "SELECT 1 FROM messages WHERE body_file = ?1",
};

// One SQLite connection with its prepared statements. Used by one thread at a time (the pool
// hands it out exclusively), so it is opened with SQLITE_OPEN_NOMUTEX.
class Connection {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (sqlite3_stmt* s : statements_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }

  // Opens the file and applies the per-connection settings; `create_schema` also creates the
  // tables (done once per instance).
  static Result<std::unique_ptr<Connection>> open(const SqliteSettings& settings,
                                                  bool create_schema) {
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

  sqlite3* db() const { return db_; }

  // The cached statement `id`, reset and with its bindings cleared.
  Result<sqlite3_stmt*> statement(Sql id) {
    sqlite3_stmt*& s = statements_[id];
    if (s == nullptr) {
      if (sqlite3_prepare_v3(db_, kSqlText[id], -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) !=
          SQLITE_OK) {
        return Error{std::string("preparing ") + in_quotes(kSqlText[id]) + " failed: " + error()};
      }
    }
    return s;
  }

  // Runs a statement without results (BEGIN, COMMIT, ...); the text is cached like the others.
  Status run(Sql id, const char* what) {
    auto s = statement(id);
    if (!s) return s.error();
    int rc = sqlite3_step(*s);
    sqlite3_reset(*s);
    if (rc != SQLITE_DONE) return Error{std::string(what) + " failed: " + error()};
    return Status::Ok();
  }

  Status exec(const std::string& sql, const char* what) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : error();
      sqlite3_free(message);
      return Error{std::string(what) + " in " + in_quotes(settings_.path) + " failed: " + text};
    }
    return Status::Ok();
  }

  // The last error, with a hint when it is lock contention.
  std::string error() const {
    std::string text = sqlite3_errmsg(db_);
    int code = sqlite3_errcode(db_) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
      text += " (another process held the write lock longer than ASYA_SQLITE_BUSY_TIMEOUT=" +
              format_duration(settings_.busy_timeout) + ")";
    }
    return text + " [" + settings_.path + "]";
  }

 private:
  explicit Connection(const SqliteSettings& settings) : settings_(settings) {}

  // Runs `step` (returning an SQLite result code) again while it fails with SQLITE_BUSY or
  // SQLITE_LOCKED, sleeping 1, 2, 4 ... 50 ms in between, until busy_timeout has passed.
  template <typename Step>
  Status with_retry(const char* what, Step step) {
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

  // Creates the tables or migrates an older layout, in one write transaction; returns an SQLite
  // result code (BUSY is retried by the caller). A file this build cannot use sets
  // schema_error_ and returns SQLITE_OK.
  int create_schema() {
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
    rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? rc : fail(rc);
  }

  // SQLite's default busy handler sleeps up to 100 ms between attempts; a WAL write transaction
  // here lasts ~0.1 ms, so retry quickly instead (bounded by busy_timeout).
  static int busy_handler(void* context, int attempt) {
    auto* self = static_cast<Connection*>(context);
    Clock::time_point now = Clock::now();
    if (attempt == 0) self->busy_since_ = now;
    if (now - self->busy_since_ >= self->settings_.busy_timeout) return 0;
    std::this_thread::sleep_for(attempt < 50 ? std::chrono::microseconds(100)
                                             : std::chrono::microseconds(1000));
    return 1;
  }

  SqliteSettings settings_;
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, kSqlCount> statements_{};
  Clock::time_point busy_since_;
  std::string schema_error_;
  std::string failure_;  // error() of a failed step, kept across its ROLLBACK
};

// Resets a statement when leaving a scope, so a cached statement never keeps a read snapshot.
struct ResetOnExit {
  sqlite3_stmt* statement;
  ~ResetOnExit() {
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
  }
};

void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void bind_blob(sqlite3_stmt* s, int index, std::string_view bytes) {
  // A null pointer would bind NULL, not an empty blob.
  sqlite3_bind_blob64(s, index, bytes.empty() ? "" : bytes.data(), bytes.size(), SQLITE_STATIC);
}

// ---- body files --------------------------------------------------------------------------------

std::string errno_text(int error) {
  return std::strerror(error);
}

// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

Status fsync_directory(const std::filesystem::path& directory) {
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Error{"opening the directory " + in_quotes(directory.string()) +
                 " failed: " + errno_text(errno)};
  }
  FdCloser closer{fd};
  if (::fsync(fd) != 0) {
    return Error{"fsync of the directory " + in_quotes(directory.string()) +
                 " failed: " + errno_text(errno)};
  }
  return Status::Ok();
}

// Writes `body` durably as `directory/name`: into `name.tmp` (created exclusively), fsync, rename
// to `name`, fsync of the directory. On failure nothing is left behind (best effort).
Status write_body_file(const std::filesystem::path& directory, const std::string& name,
                       std::string_view body) {
  std::filesystem::path final_path = directory / name;
  std::filesystem::path tmp_path = directory / (name + std::string(kTmpSuffix));
  int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error{"creating the body file " + in_quotes(tmp_path.string()) +
                 " failed: " + errno_text(errno)};
  }
  auto fail = [&](const char* what) -> Status {
    int error = errno;
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return Error{std::string(what) + " the body file " + in_quotes(tmp_path.string()) +
                 " failed: " + errno_text(error)};
  };
  // Written in 8 MiB chunks, each handed to the disk (sync_file_range, asynchronous) as soon as
  // it is in the page cache: the disk works while the next chunk is copied, so the fsync below
  // waits for the tail only, instead of the whole body after it was all copied.
  constexpr std::size_t kChunk = std::size_t{8} << 20;
  std::size_t done = 0;
  std::size_t kicked = 0;
  while (done < body.size()) {
    ssize_t n = ::write(fd, body.data() + done, std::min(body.size() - done, kChunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("writing");
    }
    done += static_cast<std::size_t>(n);
    if (done - kicked >= kChunk || done == body.size()) {
      // Only a hint: an error here shows again in fsync.
      (void)::sync_file_range(fd, static_cast<off_t>(kicked), static_cast<off_t>(done - kicked),
                              SYNC_FILE_RANGE_WRITE);
      kicked = done;
    }
  }
  if (::fsync(fd) != 0) return fail("fsync of");
  if (::close(fd) != 0) {
    int error = errno;
    ::unlink(tmp_path.c_str());
    return Error{"closing the body file " + in_quotes(tmp_path.string()) +
                 " failed: " + errno_text(error)};
  }
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    int error = errno;
    ::unlink(tmp_path.c_str());
    return Error{"renaming the body file " + in_quotes(tmp_path.string()) + " to " +
                 in_quotes(final_path.string()) + " failed: " + errno_text(error)};
  }
  if (Status s = fsync_directory(directory); !s) {
    ::unlink(final_path.c_str());
    return s;
  }
  return Status::Ok();
}

// Reads the whole file into `body` (sized from fstat, one read pass straight into it). Returns
// ENOENT as `missing` instead of an error.
Status read_body_file(const std::filesystem::path& path, std::string& body, bool& missing) {
  missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return Status::Ok();
    }
    return Error{"opening the body file " + in_quotes(path.string()) +
                 " failed: " + errno_text(errno)};
  }
  FdCloser closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return Error{"fstat of the body file " + in_quotes(path.string()) +
                 " failed: " + errno_text(errno)};
  }
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  body.resize(static_cast<std::size_t>(info.st_size));
  std::size_t done = 0;
  while (done < body.size()) {
    ssize_t n = ::read(fd, body.data() + done, body.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{"reading the body file " + in_quotes(path.string()) +
                   " failed: " + errno_text(errno)};
    }
    if (n == 0) {
      return Error{"the body file " + in_quotes(path.string()) + " ended after " +
                   std::to_string(done) + " of " + std::to_string(body.size()) + " bytes"};
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Parses a receipt "<id>:<lease>".
bool parse_receipt(const std::string& receipt, std::int64_t& id, std::int64_t& lease) {
  const char* begin = receipt.data();
  const char* end = begin + receipt.size();
  auto [p, ec] = std::from_chars(begin, end, id);
  if (ec != std::errc() || p == end || *p != ':') return false;
  auto [q, ec2] = std::from_chars(p + 1, end, lease);
  return ec2 == std::errc() && q == end;
}

// ---- lease owners --------------------------------------------------------------------------

// This machine and pid namespace: pids recorded under the same value can be checked here.
std::string host_identity() {
  std::string boot;
  if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    char buffer[64] = {};
    if (std::fgets(buffer, sizeof buffer, f)) boot = buffer;
    std::fclose(f);
  }
  while (!boot.empty() && (boot.back() == '\n' || boot.back() == ' ')) boot.pop_back();
  std::error_code ec;
  std::string pid_namespace = std::filesystem::read_symlink("/proc/self/ns/pid", ec).string();
  return boot + "/" + pid_namespace;
}

// The start time of `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot), or "" when it
// does not exist or is a zombie: its leases are then dead.
std::string process_start_time(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return "";
  char buffer[1024] = {};
  std::size_t n = std::fread(buffer, 1, sizeof buffer - 1, f);
  std::fclose(f);
  std::string_view text(buffer, n);
  auto close = text.rfind(") ");
  if (close == std::string_view::npos) return "";
  text.remove_prefix(close + 2);  // field 3 (state) onwards
  if (!text.empty() && (text[0] == 'Z' || text[0] == 'X')) return "";
  for (int field = 3; field < 22; ++field) {
    auto space = text.find(' ');
    if (space == std::string_view::npos) return "";
    text.remove_prefix(space + 1);
  }
  return std::string(text.substr(0, text.find(' ')));
}

class SqliteTransport final : public Transport {
 public:
  SqliteTransport(const Options& options, SqliteSettings settings)
      : options_(options),
        settings_(std::move(settings)),
        bodies_dir_(settings_.path + ".bodies"),
        waker_(settings_.path) {
    std::random_device random;
    lease_prefix_ = (static_cast<std::uint64_t>(random()) & 0x7fffffffu) << 32;
    std::uint64_t unique = (static_cast<std::uint64_t>(random()) << 32) ^ random() ^
                           (static_cast<std::uint64_t>(::getpid()) << 16);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(unique));
    file_prefix_ = std::string(kBodyPrefix) + hex + "-";
  }

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
    sweep_orphans(*connection.value());
    release_dead_owners(*connection.value());
    last_sweep_ms_ = now_ms();
    idle_.push_back(std::move(connection.value()));
  }

  std::string_view name() const override { return "sqlite"; }

  Status ensure_queue(std::string_view queue) override {
    auto c = acquire();
    if (!c) return c.error();
    auto s = c->connection->statement(kEnsure);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now_ms());
    if (sqlite3_step(*s) != SQLITE_DONE) return failure("ensure_queue", queue, *c);
    return Status::Ok();
  }

  Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                        milliseconds wait) override {
    if (max_messages == 0) {
      return Error{"receive from queue " + in_quotes(queue) + ": max_messages is 0, use 1 or more"};
    }
    Clock::time_point deadline = Clock::now() + std::max(wait, milliseconds(0));
    for (;;) {
      // Read the generation before looking, so a commit between the look and the wait wakes us.
      std::uint64_t seen = waker_.generation(queue);
      if (waker_.interrupted()) return std::vector<Delivery>{};
      std::int64_t now = now_ms();
      auto next_visible = next_visible_at(queue);
      if (!next_visible) return next_visible.error();
      if (next_visible.value() && *next_visible.value() <= now) {
        auto leased = lease(queue, max_messages);
        if (!leased) return leased.error();
        if (!leased->empty()) return leased;
        continue;  // another consumer took them; look again at once
      }
      Clock::time_point steady_now = Clock::now();
      if (steady_now >= deadline) return std::vector<Delivery>{};
      Clock::time_point until = std::min(deadline, steady_now + settings_.poll_interval);
      if (next_visible.value()) {
        until = std::min(until, steady_now + milliseconds(*next_visible.value() - now));
      }
      waker_.wait(queue, seen, until);
    }
  }

  Status send(std::string_view queue, std::string_view body, milliseconds delay) override {
    if (body.size() > options_.max_message_bytes) {
      return Error{"message_too_large: a message of " + std::to_string(body.size()) +
                   " bytes for queue " + in_quotes(queue) + " exceeds the limit of " +
                   std::to_string(options_.max_message_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)"};
    }
    // A large body goes to its own file first, durably, outside any lock; the row naming it is
    // inserted below. A crash in between leaves an unnamed file for sweep_orphans().
    std::string file_name;
    if (settings_.file_body_bytes > 0 && body.size() > settings_.file_body_bytes) {
      file_name = file_prefix_ + std::to_string(next_file_.fetch_add(1)) + std::string(kBodySuffix);
      Status written = ensure_bodies_dir();
      if (written) written = write_body_file(bodies_dir_, file_name, body);
      if (!written) return Error{"send to queue " + in_quotes(queue) + ": " + written.message()};
    }
    auto discard_file = [&] {
      if (!file_name.empty()) ::unlink((bodies_dir_ / file_name).c_str());
    };
    {
      auto c = acquire();
      if (!c) {
        discard_file();
        return c.error();
      }
      Connection& db = *c->connection;
      // The row and its body (or its file name) in one short write transaction: nothing but the
      // inserts runs while the write lock is held.
      if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) {
        discard_file();
        return Error{"send to queue " + in_quotes(queue) + ": " + s.message()};
      }
      bool committing = false;
      auto insert = [&]() -> Status {
        if (!file_name.empty()) {
          // The sweep removes unnamed files under this same write lock: the file still being
          // there now means it stays (only a sender paused for kOrphanAge gets here without it).
          std::filesystem::path path = bodies_dir_ / file_name;
          if (::access(path.c_str(), F_OK) != 0) {
            int error = errno;
            return Error{"send to queue " + in_quotes(queue) + ": the body file " +
                         in_quotes(path.string()) +
                         " was removed before its message was recorded (" + errno_text(error) +
                         "; the sender paused longer than " + std::to_string(kOrphanAge.count()) +
                         " minutes?)"};
          }
        }
        auto s = db.statement(kSend);
        if (!s) return s.error();
        ResetOnExit reset{*s};
        std::int64_t now = now_ms();
        bind_text(*s, 1, queue);
        sqlite3_bind_int64(*s, 2, now + std::max<std::int64_t>(delay.count(), 0));
        sqlite3_bind_int64(*s, 3, now);
        if (!file_name.empty()) bind_text(*s, 4, file_name);
        if (sqlite3_step(*s) != SQLITE_DONE) return failure("send", queue, *c);
        if (file_name.empty()) {
          std::int64_t id = sqlite3_last_insert_rowid(db.db());
          auto b = db.statement(kSendBody);
          if (!b) return b.error();
          ResetOnExit reset_body{*b};
          sqlite3_bind_int64(*b, 1, id);
          bind_blob(*b, 2, body);
          if (sqlite3_step(*b) != SQLITE_DONE) return failure("send", queue, *c);
        }
        committing = true;
        return db.run(kCommit, "COMMIT");
      };
      if (Status s = insert(); !s) {
        (void)db.run(kRollback, "ROLLBACK");
        // After a failed COMMIT the row's fate is not certain: the sweep decides later.
        if (!committing) discard_file();
        return s;
      }
    }
    waker_.notify(queue);  // after the commit: a receiver woken now finds the message
    maybe_sweep();
    return Status::Ok();
  }

  Status ack(const Delivery& delivery) override {
    Status s = change_lease(kAck, "ack", delivery, 0);
    maybe_sweep();
    return s;
  }

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
    auto c = acquire();
    if (!c) return c.error();
    auto s = c->connection->statement(kStats);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now_ms());
    if (sqlite3_step(*s) != SQLITE_ROW) return failure("stats", queue, *c).error();
    QueueStats stats;
    stats.ready = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 0));
    stats.in_flight = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 1));
    stats.delayed = static_cast<std::uint64_t>(sqlite3_column_int64(*s, 2));
    return stats;
  }

  Result<std::vector<std::string>> list_queues() override {
    auto c = acquire();
    if (!c) return c.error();
    auto s = c->connection->statement(kList);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    std::vector<std::string> names;
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
      names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(*s, 0)),
                         static_cast<std::size_t>(sqlite3_column_bytes(*s, 0)));
    }
    if (rc != SQLITE_DONE) return failure("list_queues", "*", *c).error();
    return names;
  }

  std::size_t max_message_bytes() const override { return options_.max_message_bytes; }

  void interrupt() override { waker_.interrupt(); }

  void close() override {
    waker_.stop();
    if (registered_.exchange(false)) {
      // Every lease of a clean close was settled; later ones expire as usual.
      if (auto c = acquire()) {
        (void)run_owner_sql(*c->connection, "DELETE FROM lease_owners WHERE owner = ?1", owner(),
                            nullptr);
      }
    }
    std::lock_guard lock(pool_mutex_);
    closed_ = true;
    idle_.clear();
  }

 private:
  // A connection borrowed from the pool; returned (or closed, after close()) on destruction.
  struct Borrowed {
    SqliteTransport* owner;
    std::unique_ptr<Connection> connection;
    Borrowed(SqliteTransport* o, std::unique_ptr<Connection> c)
        : owner(o), connection(std::move(c)) {}
    Borrowed(Borrowed&& other) noexcept = default;
    ~Borrowed() {
      if (connection) owner->give_back(std::move(connection));
    }
  };

  Result<Borrowed> acquire() {
    {
      std::lock_guard lock(pool_mutex_);
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

  void give_back(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(pool_mutex_);
    if (!closed_) idle_.push_back(std::move(connection));
  }

  Status failure(const char* operation, std::string_view queue, Borrowed& c) {
    return Error{std::string(operation) + " on queue " + in_quotes(queue) +
                 " failed: " + c.connection->error()};
  }

  // The earliest visible_at_ms of the queue (ready, leased or delayed), or nullopt when empty.
  Result<std::optional<std::int64_t>> next_visible_at(std::string_view queue) {
    auto c = acquire();
    if (!c) return c.error();
    auto s = c->connection->statement(kNextVisible);
    if (!s) return s.error();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    if (sqlite3_step(*s) != SQLITE_ROW) return failure("receive", queue, *c).error();
    if (sqlite3_column_type(*s, 0) == SQLITE_NULL) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(sqlite3_column_int64(*s, 0));
  }

  // Leases up to `max_messages` ready messages in one write transaction.
  Result<std::vector<Delivery>> lease(std::string_view queue, std::size_t max_messages) {
    auto c = acquire();
    if (!c) return c.error();
    Connection& db = *c->connection;
    if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) {
      return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
    }
    // The first lease of this instance records its owner row in the same transaction (best
    // effort: without it the leases still expire).
    bool registering = !registered_.load();
    if (registering) {
      std::string started = process_start_time(::getpid());
      registering = run_owner_sql(db,
                                  "INSERT OR REPLACE INTO lease_owners(owner, host, pid, started) "
                                  "VALUES(?1, ?2, ?3, ?4)",
                                  owner(), nullptr, host_, ::getpid(), started);
    }
    std::vector<Delivery> out;
    std::vector<std::int64_t> ids;
    std::vector<std::string> files;  // the body file's name, empty for a body in the table
    std::int64_t token =
        static_cast<std::int64_t>(lease_prefix_ | (next_lease_.fetch_add(1) & 0xffffffffu));
    {
      auto s = db.statement(kLease);
      if (!s) {
        (void)db.run(kRollback, "ROLLBACK");
        return s.error();
      }
      ResetOnExit reset{*s};
      std::int64_t now = now_ms();
      bind_text(*s, 1, queue);
      sqlite3_bind_int64(*s, 2, now);
      sqlite3_bind_int64(*s, 3, now + options_.visibility_timeout.count());
      sqlite3_bind_int64(*s, 4, token);
      sqlite3_bind_int64(*s, 5, static_cast<std::int64_t>(max_messages));
      int rc;
      while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
        Delivery d;
        d.queue = std::string(queue);
        std::int64_t id = sqlite3_column_int64(*s, 0);
        d.delivery_count = static_cast<std::uint32_t>(sqlite3_column_int64(*s, 1));
        d.receipt = std::to_string(id) + ":" + std::to_string(token);
        ids.push_back(id);
        const unsigned char* file = sqlite3_column_text(*s, 2);
        files.emplace_back(file ? reinterpret_cast<const char*>(file) : "");
        out.push_back(std::move(d));
      }
      if (rc != SQLITE_DONE) {
        Status failed = failure("receive", queue, *c);
        sqlite3_reset(*s);
        (void)db.run(kRollback, "ROLLBACK");
        return failed.error();
      }
    }
    if (Status s = db.run(kCommit, "COMMIT"); !s) {
      (void)db.run(kRollback, "ROLLBACK");
      return Error{"receive from queue " + in_quotes(queue) + ": " + s.message()};
    }
    if (registering) registered_ = true;
    // RETURNING order is unspecified; hand out a batch in id (send) order.
    std::vector<std::size_t> order(out.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return ids[a] < ids[b]; });
    // The bodies are read after the lease committed, outside any write transaction, straight
    // from the database pages (or the body file) into each Delivery's string (one copy, no
    // SQLite-side buffer).
    std::vector<Delivery> sorted;
    sorted.reserve(out.size());
    sqlite3_blob* blob = nullptr;
    Status read_failed = Status::Ok();
    for (std::size_t i : order) {
      if (!files[i].empty()) {
        bool missing = false;
        read_failed = read_body_file(bodies_dir_ / files[i], out[i].body, missing);
        if (!read_failed) {
          read_failed =
              Error{"receive from queue " + in_quotes(queue) + ": " + read_failed.message()};
          break;
        }
        if (missing) {
          if (blob != nullptr) {  // no read snapshot may stay open into a write transaction
            sqlite3_blob_close(blob);
            blob = nullptr;
          }
          // Gone already (the lease expired at once and another receiver acked it), or lost:
          // a row still under this lease whose file is gone can never be delivered.
          drop_lost(db, ids[i], token, queue, files[i]);
          continue;
        }
        sorted.push_back(std::move(out[i]));
        continue;
      }
      int rc = blob == nullptr
                   ? sqlite3_blob_open(db.db(), "main", "bodies", "body", ids[i], 0, &blob)
                   : sqlite3_blob_reopen(blob, ids[i]);
      if (rc != SQLITE_OK) {
        // Gone already: the lease expired at once (visibility timeout ~0) and another receiver
        // acked it. Anything else is an error; the leased messages come back after the timeout.
        bool missing = (rc & 0xff) == SQLITE_ERROR &&
                       std::string_view(sqlite3_errmsg(db.db())).starts_with("no such rowid");
        if (!missing) {
          read_failed = failure("receive (reading the body)", queue, *c);
          break;
        }
        if (blob != nullptr && rc != SQLITE_OK) {
          sqlite3_blob_close(blob);  // a failed reopen leaves the handle unusable
          blob = nullptr;
        }
        continue;
      }
      Delivery& d = out[i];
      d.body.resize(static_cast<std::size_t>(sqlite3_blob_bytes(blob)));
      if (!d.body.empty() &&
          sqlite3_blob_read(blob, d.body.data(), static_cast<int>(d.body.size()), 0) != SQLITE_OK) {
        read_failed = failure("receive (reading the body)", queue, *c);
        break;
      }
      sorted.push_back(std::move(d));
    }
    if (blob != nullptr) sqlite3_blob_close(blob);
    if (!read_failed) return read_failed.error();
    return sorted;
  }

  // ack (delete), nack (visible after `millis`) or extend (visible after `millis`), each only
  // while the row still carries the delivery's lease token.
  Status change_lease(Sql sql, const char* operation, const Delivery& delivery,
                      std::int64_t millis) {
    std::int64_t id = 0;
    std::int64_t token = 0;
    if (!parse_receipt(delivery.receipt, id, token)) {
      return Error{std::string(operation) + " on queue " + in_quotes(delivery.queue) +
                   ": the receipt " + in_quotes(delivery.receipt) +
                   " was not produced by the sqlite transport"};
    }
    auto c = acquire();
    if (!c) return c.error();
    Connection& db = *c->connection;
    bool changed = false;
    std::string file;  // ack: the body file of the deleted row
    auto apply = [&]() -> Status {
      auto s = db.statement(sql);
      if (!s) return s.error();
      ResetOnExit reset{*s};
      sqlite3_bind_int64(*s, 1, id);
      sqlite3_bind_int64(*s, 2, token);
      if (sql != kAck) sqlite3_bind_int64(*s, 3, now_ms() + millis);
      int rc = sqlite3_step(*s);
      if (sql == kAck && rc == SQLITE_ROW) {  // DELETE ... RETURNING body_file
        changed = true;
        const unsigned char* name = sqlite3_column_text(*s, 0);
        if (name) file = reinterpret_cast<const char*>(name);
        rc = sqlite3_step(*s);
      } else if (sql != kAck) {
        changed = sqlite3_changes(db.db()) != 0;
      }
      if (rc != SQLITE_DONE) return failure(operation, delivery.queue, *c);
      if (sql != kAck || !changed || !file.empty()) return Status::Ok();
      auto b = db.statement(kAckBody);
      if (!b) return b.error();
      ResetOnExit reset_body{*b};
      sqlite3_bind_int64(*b, 1, id);
      if (sqlite3_step(*b) != SQLITE_DONE) return failure(operation, delivery.queue, *c);
      return Status::Ok();
    };
    if (sql == kAck) {
      // The row and its body go in one short write transaction.
      if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) {
        return Error{std::string(operation) + " on queue " + in_quotes(delivery.queue) + ": " +
                     s.message()};
      }
      Status s = apply();
      if (s) s = db.run(kCommit, "COMMIT");
      if (!s) {
        (void)db.run(kRollback, "ROLLBACK");
        return s;
      }
    } else if (Status s = apply(); !s) {
      return s;
    }
    if (!changed) {
      return Error{std::string(operation) + " of message " + std::to_string(id) + " on queue " +
                   in_quotes(delivery.queue) +
                   " failed: the lease is no longer held (it expired and the message was "
                   "received again, or it was already acked or nacked); nothing was changed"};
    }
    // After the row is gone for good; a crash before this leaves an orphan for the sweep.
    if (!file.empty()) remove_body_file(file);
    return Status::Ok();
  }

  void remove_body_file(const std::string& name) {
    std::filesystem::path path = bodies_dir_ / name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn(
          "sqlite transport: removing the body file {} failed: {} (the orphan sweep "
          "retries later)",
          path.string(), errno_text(errno));
    }
  }

  // Creates `<path>.bodies/` when missing (and makes its entry durable).
  Status ensure_bodies_dir() {
    std::error_code ec;
    if (std::filesystem::is_directory(bodies_dir_, ec)) return Status::Ok();
    bool created = std::filesystem::create_directory(bodies_dir_, ec);
    if (ec && !std::filesystem::is_directory(bodies_dir_)) {
      return Error{"creating the body file directory " + in_quotes(bodies_dir_.string()) +
                   " failed: " + ec.message()};
    }
    if (created) {
      std::filesystem::path parent = bodies_dir_.parent_path();
      return fsync_directory(parent.empty() ? std::filesystem::path(".") : parent);
    }
    return Status::Ok();
  }

  // A leased row whose body file is missing: if the row is still under this lease the body is
  // lost (removed by hand?) and the message can never be delivered, so it is deleted, loudly.
  // If the row is gone, another receiver acked it after this lease expired: nothing to do.
  void drop_lost(Connection& db, std::int64_t id, std::int64_t token, std::string_view queue,
                 const std::string& file) {
    if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;  // it comes back after the lease
    bool deleted = false;
    {
      auto s = db.statement(kAck);
      if (s) {
        ResetOnExit reset{*s};
        sqlite3_bind_int64(*s, 1, id);
        sqlite3_bind_int64(*s, 2, token);
        deleted = sqlite3_step(*s) == SQLITE_ROW;
      }
    }
    if (!deleted || !db.run(kCommit, "COMMIT")) {
      (void)db.run(kRollback, "ROLLBACK");
      return;
    }
    spdlog::error(
        "sqlite transport: message {} of queue {} was dropped: its body file {} is missing", id,
        std::string(queue), (bodies_dir_ / file).string());
  }

  // Every kSweepInterval, from send() or ack() of whichever thread comes first.
  void maybe_sweep() {
    std::int64_t now = now_ms();
    std::int64_t last = last_sweep_ms_.load();
    if (now - last < std::chrono::duration_cast<milliseconds>(kSweepInterval).count()) return;
    if (!last_sweep_ms_.compare_exchange_strong(last, now)) return;
    auto c = acquire();
    if (c) sweep_orphans(*c->connection);
  }

  // Removes body files that no row names and that are older than kOrphanAge: `.tmp` files of a
  // sender that crashed while writing, and bodies whose sender crashed before inserting the row
  // or whose acker crashed after deleting it. Whether a row names a file is checked under the
  // write lock, the same lock send() holds while it checks its file is there and inserts the
  // row, so a file is never removed while its row is (or is about to be) committed.
  void sweep_orphans(Connection& db) {
    std::error_code ec;
    std::filesystem::directory_iterator it(bodies_dir_, ec);
    if (ec) return;  // no body file was ever written next to this database
    auto cutoff = std::filesystem::file_time_type::clock::now() - kOrphanAge;
    std::vector<std::string> bodies;
    std::size_t removed = 0;
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.starts_with(kBodyPrefix)) continue;
      bool tmp = ends_with(name, std::string(kBodySuffix) + std::string(kTmpSuffix));
      if (!tmp && !ends_with(name, kBodySuffix)) continue;
      std::error_code time_ec;
      auto written = std::filesystem::last_write_time(it->path(), time_ec);
      if (time_ec || written > cutoff) continue;
      if (tmp) {
        if (::unlink(it->path().c_str()) == 0) ++removed;
      } else {
        bodies.push_back(std::move(name));
      }
    }
    constexpr std::size_t kBatch = 64;  // bounds how long one sweep holds the write lock
    for (std::size_t start = 0; start < bodies.size(); start += kBatch) {
      if (!db.run(kBeginImmediate, "BEGIN IMMEDIATE")) return;
      for (std::size_t i = start; i < std::min(bodies.size(), start + kBatch); ++i) {
        auto s = db.statement(kFileReferenced);
        if (!s) break;
        ResetOnExit reset{*s};
        bind_text(*s, 1, bodies[i]);
        int rc = sqlite3_step(*s);
        if (rc == SQLITE_DONE && ::unlink((bodies_dir_ / bodies[i]).c_str()) == 0) ++removed;
      }
      (void)db.run(kCommit, "COMMIT");
    }
    if (removed > 0) {
      spdlog::info("sqlite transport: removed {} orphaned body file(s) from {}", removed,
                   bodies_dir_.string());
    }
  }

  // This instance's owner number in lease_owners (the high half of its lease tokens).
  std::int64_t owner() const { return static_cast<std::int64_t>(lease_prefix_ >> 32); }

  // Runs one statement on lease_owners with `owner` as ?1 (and optionally host ?2, pid ?3,
  // started ?4); rows of a SELECT go to `row`. Returns false when it failed. Rare (open, first
  // lease, close), so not among the cached statements.
  bool run_owner_sql(Connection& db, const char* sql, std::int64_t owner_number,
                     const std::function<void(sqlite3_stmt*)>& row, const std::string& host = "",
                     pid_t pid = 0, const std::string& started = "") {
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

  // Makes the messages leased by processes of this machine that are gone visible again at once
  // (their delivery count stays, as after a nack) and forgets those owners.
  void release_dead_owners(Connection& db) {
    std::vector<std::pair<std::int64_t, pid_t>> dead;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.db(), "SELECT owner, pid, started FROM lease_owners WHERE host = ?1",
                           -1, &s, nullptr) != SQLITE_OK)
      return;
    bind_text(s, 1, host_);
    while (sqlite3_step(s) == SQLITE_ROW) {
      auto pid = static_cast<pid_t>(sqlite3_column_int64(s, 1));
      const unsigned char* started = sqlite3_column_text(s, 2);
      if (process_start_time(pid) != (started ? reinterpret_cast<const char*>(started) : ""))
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
      ok = ok && run_owner_sql(db, "DELETE FROM lease_owners WHERE owner = ?1", number, nullptr);
      if (!ok || !db.run(kCommit, "COMMIT")) {
        (void)db.run(kRollback, "ROLLBACK");
        return;
      }
      if (released > 0) {
        spdlog::info(
            "sqlite transport: {} message(s) leased by process {}, which is gone, are visible "
            "again",
            released, pid);
        for (const auto& queue : queues) waker_.notify(queue);
      }
    }
  }

  Options options_;
  SqliteSettings settings_;
  std::filesystem::path bodies_dir_;  // <path>.bodies
  std::string file_prefix_;           // "m-<16 hex digits>-", unique per instance
  std::atomic<std::uint64_t> next_file_{1};
  std::atomic<std::int64_t> last_sweep_ms_{0};
  QueueWaker waker_;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
  bool closed_ = false;
  std::uint64_t lease_prefix_ = 0;
  std::atomic<std::uint64_t> next_lease_{1};
  std::atomic<bool> registered_{false};  // this instance's row is in lease_owners
  std::string host_ = host_identity();
};

}  // namespace

std::unique_ptr<Transport> make_sqlite_transport(const Options& options,
                                                 const SqliteSettings& settings) {
  auto transport = std::make_unique<SqliteTransport>(options, settings);
  transport->open();
  return transport;
}

std::unique_ptr<Transport> make_sqlite_transport(const Options& options) {
  return make_sqlite_transport(options, SqliteSettings::from_env());
}

}  // namespace asya::transport
