// bench_floor_sqlite: the physical floor of `sidecar_cpu_per_msg` (SQLite): the least CPU a
// consumer process can spend per message on a durable hop through a SQLite queue, fed one message
// at a time at a steady rate by another process. SQLite's C API and Linux system calls only, no
// Asya code (docs/performance.md, "The physical floor of the CPU rows").
//
//   consume --db PATH [--wake futex|inotify]
//       until killed: sleeps until woken, then per message the sidecar's two write transactions:
//       the lease (UPDATE ... RETURNING, one transaction), then the output inserted and the input
//       deleted in one transaction (BEGIN IMMEDIATE ... COMMIT).
//   pace --db PATH --rate R --seconds S [--payload B] [--wake futex|inotify] [--timeout S]
//       inserts R*S messages into queue "in", one per 1/R s, each its own transaction, and wakes
//       the consumer after each COMMIT; then waits until the consumer took them all (queue "in"
//       empty) and prints {"sent": N, "msgs_per_s": R'}.
//
// The database: WAL, synchronous=NORMAL (the transport's settings), one table with an index on
// (queue, visible_at, id) - the schema of bench_queue raw-cycle, the sqlite_hop rows' baseline.
//
// The wake-up (`--wake`, default futex): a 32-bit counter in a shared mapping of
// `<db>-floor-wake` counts the messages the pacer committed. The pacer adds one after its COMMIT
// and calls FUTEX_WAKE; the consumer, once it has taken as many messages as the counter says,
// sleeps in FUTEX_WAIT on it. One system call on each side per message, no descriptor to read,
// and it works between two unrelated processes that share only a file (a futex on a shared file
// mapping is keyed by the file, not the address space), as a queue's sender and receiver do. The
// alternatives cost more: an eventfd or a pipe needs a common parent or a descriptor passed over
// a socket, and the consumer must read() it after poll() returns; inotify (`--wake inotify`, what
// the SQLite transport uses: the pacer reads one byte of the wake file after its COMMIT, raising
// IN_ACCESS) makes the kernel queue an event that the consumer must read(). The counter also
// tells the consumer that a message is there, so it never runs a lease that finds nothing (one
// pacer and one consumer: a floor, not a queue for many).
#include <linux/futex.h>
#include <sqlite3.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fcntl.h>
#include <atomic>
#include <cinttypes>
#include <string>
#include <thread>

#include "floor/floor_args.hpp"
#include "support/raw_io.hpp"

namespace {

using namespace asya::bench;
using namespace asya::bench::floor;

enum class Wake { kFutex, kInotify };

Wake wake_of(const Args& args) {
  std::string wake = args.text("wake", "futex");
  if (wake == "futex") return Wake::kFutex;
  if (wake == "inotify") return Wake::kInotify;
  throw std::runtime_error("--wake \"" + wake + "\" is not known: use futex or inotify");
}

// The shared counter of committed messages (the first 4 bytes of `<db>-floor-wake`).
class WakeCounter {
 public:
  WakeCounter(const std::string& db_path, Wake wake) : wake_(wake), path_(db_path + "-floor-wake") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) die("open " + path_);
    if (::ftruncate(fd_, 4096) != 0) die("ftruncate " + path_);
    void* mapped = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (mapped == MAP_FAILED) die("mmap " + path_);
    word_ = static_cast<std::atomic<std::uint32_t>*>(mapped);
  }
  std::uint32_t load() const { return word_->load(std::memory_order_acquire); }

  // The pacer, after a COMMIT: counts the message and wakes the consumer.
  void committed_one() {
    word_->fetch_add(1, std::memory_order_release);
    if (wake_ == Wake::kFutex) {
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word_), FUTEX_WAKE, 1, nullptr, nullptr,
                0);
    } else {
      char byte;
      if (::pread(fd_, &byte, 1, 0) != 1) die("pread " + path_);  // IN_ACCESS to the watcher
    }
  }

  // The consumer: returns once the counter may differ from `seen` (at once if it does already).
  void wait_while(std::uint32_t seen) {
    if (wake_ == Wake::kFutex) {
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word_), FUTEX_WAIT, seen, nullptr,
                nullptr, 0);
      return;
    }
    if (inotify_fd_ < 0) {
      inotify_fd_ = ::inotify_init1(IN_CLOEXEC);
      if (inotify_fd_ < 0 || ::inotify_add_watch(inotify_fd_, path_.c_str(), IN_ACCESS) < 0)
        die("inotify on " + path_);
      return;  // the counter may have moved before the watch existed: look again first
    }
    // Events queue up, so one raised after the caller loaded `seen` is read here at once.
    alignas(inotify_event) char events[4096];
    if (load() == seen && ::read(inotify_fd_, events, sizeof events) < 0 && errno != EINTR)
      die("read inotify");
  }

 private:
  Wake wake_;
  std::string path_;
  int fd_ = -1;
  int inotify_fd_ = -1;
  std::atomic<std::uint32_t>* word_ = nullptr;
};

class Database {
 public:
  explicit Database(const std::string& path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      fail("open");
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(
        "CREATE TABLE IF NOT EXISTS floor(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT "
        "NULL, body BLOB NOT NULL, visible_at INTEGER NOT NULL, lease INTEGER)");
    exec("CREATE INDEX IF NOT EXISTS floor_visible ON floor(queue, visible_at, id)");
  }
  ~Database() { sqlite3_close_v2(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const char* sql) {
    for (int attempt = 0;; ++attempt) {
      if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK) return;
      if (attempt >= 100 || (sqlite3_errcode(db_) & 0xff) != SQLITE_BUSY) fail(sql);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Prepared once, kept for the process's life (as the transport keeps its statements).
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) !=
        SQLITE_OK)
      fail(sql);
    return statement;
  }
  // Steps a statement that returns no rows to the end.
  void run(sqlite3_stmt* statement) {
    int rc = sqlite3_step(statement);
    sqlite3_reset(statement);
    if (rc != SQLITE_DONE) fail(sqlite3_sql(statement));
  }
  [[noreturn]] void fail(const std::string& what) {
    die(path_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

std::int64_t wall_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

int consume(const Args& args) {
  std::string path = args.text("db");
  WakeCounter counter(path, wake_of(args));
  Database db(path);
  sqlite3_stmt* lease = db.prepare(
      "UPDATE floor SET visible_at = ?2, lease = ?3 WHERE id = (SELECT id FROM floor WHERE queue "
      "= 'in' AND visible_at <= ?1 ORDER BY visible_at, id LIMIT 1) RETURNING id, body");
  sqlite3_stmt* begin = db.prepare("BEGIN IMMEDIATE");
  sqlite3_stmt* insert =
      db.prepare("INSERT INTO floor(queue, body, visible_at) VALUES('out', ?1, 0)");
  sqlite3_stmt* remove = db.prepare("DELETE FROM floor WHERE id = ?1 AND lease = ?2");
  sqlite3_stmt* commit = db.prepare("COMMIT");
  std::string body;
  std::int64_t token = 0;
  // One lease transaction: takes the oldest visible message of "in" for 10 minutes. False when
  // there was none.
  auto lease_one = [&](std::int64_t& id) {
    std::int64_t now = wall_ms();
    sqlite3_bind_int64(lease, 1, now);
    sqlite3_bind_int64(lease, 2, now + 600'000);
    sqlite3_bind_int64(lease, 3, ++token);
    int rc = sqlite3_step(lease);
    bool got = rc == SQLITE_ROW;
    if (got) {
      id = sqlite3_column_int64(lease, 0);
      body.assign(static_cast<const char*>(sqlite3_column_blob(lease, 1)),
                  static_cast<std::size_t>(sqlite3_column_bytes(lease, 1)));
      rc = sqlite3_step(lease);
    }
    sqlite3_reset(lease);
    if (rc != SQLITE_DONE) db.fail("lease");
    return got;
  };
  // One settle transaction: the output inserted and the input deleted together.
  auto settle = [&](std::int64_t id) {
    db.run(begin);
    sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_STATIC);
    db.run(insert);
    sqlite3_bind_int64(remove, 1, id);
    sqlite3_bind_int64(remove, 2, token);
    db.run(remove);
    db.run(commit);
  };
  // What was queued before this consumer started is taken first; from then on the counter says
  // how many messages there are, and the consumer leases only when one is there.
  std::uint32_t taken = counter.load();
  for (std::int64_t id = 0; lease_one(id);) settle(id);
  for (;;) {
    std::uint32_t committed = counter.load();
    if (committed == taken) {
      counter.wait_while(taken);
      continue;
    }
    std::int64_t id = 0;
    if (lease_one(id)) {
      settle(id);
      ++taken;
    } else {
      taken = committed;  // counted before this consumer drained them at its start
    }
  }
}

int pace(const Args& args) {
  std::string path = args.text("db");
  double rate = args.number("rate", 100);
  std::uint64_t total = paced_count(rate, args.number("seconds", 1));
  double timeout_s = args.number("timeout", 60);
  std::string body = envelope_with_payload(static_cast<std::size_t>(args.number("payload", 64)));
  WakeCounter counter(path, wake_of(args));
  Database db(path);
  sqlite3_stmt* insert =
      db.prepare("INSERT INTO floor(queue, body, visible_at) VALUES('in', ?1, 0)");
  sqlite3_stmt* waiting = db.prepare("SELECT count(*) FROM floor WHERE queue = 'in'");
  std::int64_t start = monotonic_ns();
  for (std::uint64_t i = 0; i < total; ++i) {
    sleep_until_ns(start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate));
    sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_STATIC);
    db.run(insert);
    counter.committed_one();
  }
  double elapsed_s = static_cast<double>(monotonic_ns() - start) / 1e9;
  std::int64_t deadline = monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9);
  for (;;) {
    if (sqlite3_step(waiting) != SQLITE_ROW) db.fail("count");
    std::int64_t left = sqlite3_column_int64(waiting, 0);
    sqlite3_reset(waiting);
    if (left == 0) break;
    if (monotonic_ns() > deadline) {
      std::fprintf(stderr,
                   "bench_floor_sqlite: %" PRId64
                   " messages still in \"in\" after %.0f s: "
                   "is a consumer running on %s?\n",
                   left, timeout_s, path.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::printf("{\"sent\": %" PRIu64 ", \"msgs_per_s\": %.1f}\n", total,
              static_cast<double>(total) / elapsed_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "";
  try {
    Args args(argc, argv, 2);
    if (command == "consume") return consume(args);
    if (command == "pace") return pace(args);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_floor_sqlite: %s\n", error.what());
    return 2;
  }
  std::fprintf(stderr,
               "usage: bench_floor_sqlite consume --db PATH [--wake futex|inotify]\n"
               "       bench_floor_sqlite pace --db PATH --rate R --seconds S [--payload B] "
               "[--wake futex|inotify] [--timeout S]\n");
  return 2;
}
