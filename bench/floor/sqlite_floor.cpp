// bench_floor_sqlite: the physical floor of `sidecar_cpu_per_msg` (SQLite): the least CPU a
// consumer process can spend per message on a durable hop through a SQLite queue, fed one message
// at a time at a steady rate by another process. SQLite's C API and Linux system calls only, no
// Asya code (docs/performance.md, "The physical floor of the CPU rows").
//
//   consume --db PATH [--wake futex|inotify] [--transactions 2|3]
//       until killed: sleeps until woken, then per message the sidecar's two write transactions:
//       the lease (UPDATE ... RETURNING, one transaction), then the output inserted and the input
//       deleted in one transaction (BEGIN IMMEDIATE ... COMMIT). `--transactions 3`: the insert
//       and the delete each in a transaction of its own, as the bare transport consumer of the
//       rows' baseline does (receive, send, ack): for comparing with it, not the floor.
//       `--hand-off true` (with the pacer's): the floor of the transport's hand-off to a waiting
//       receiver: the pacer inserts each message already leased to the consumer (lease -1) and
//       copies its id and body to a slot of the shared mapping after its COMMIT; the consumer
//       takes it from the slot (no lease, no read) and runs only the settle transaction.
//   pace --db PATH --rate R --seconds S [--payload B] [--wake futex|inotify] [--timeout S]
//        [--hand-off true]
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
#include <fcntl.h>
#include <linux/futex.h>
#include <sqlite3.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstring>
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

bool hand_off_of(const Args& args) {
  std::string hand_off = args.text("hand-off", "false");
  if (hand_off != "true" && hand_off != "false")
    throw std::runtime_error("--hand-off \"" + hand_off + "\" is not known: use true or false");
  return hand_off == "true";
}

// A copy of a handed message (--hand-off): written by the pacer after its COMMIT, before it
// counts the message; `number` (the count after it) last, so a reader that sees its number sees
// the rest. Message n goes to slot n % kSlots: the pacer overwrites a slot only kSlots messages
// later, and the consumer checks `number` again after its copy.
struct Slot {
  std::atomic<std::uint32_t> number;
  std::uint32_t size;
  std::int64_t id;
  char body[496];
};
constexpr std::size_t kSlots = 64;
constexpr std::size_t kMappedBytes = 4096 + kSlots * sizeof(Slot);

// The shared counter of committed messages (the first 4 bytes of `<db>-floor-wake`), and the
// hand-off slots after it.
class WakeCounter {
 public:
  WakeCounter(const std::string& db_path, Wake wake) : wake_(wake), path_(db_path + "-floor-wake") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) die("open " + path_);
    if (::ftruncate(fd_, kMappedBytes) != 0) die("ftruncate " + path_);
    void* mapped = ::mmap(nullptr, kMappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (mapped == MAP_FAILED) die("mmap " + path_);
    word_ = static_cast<std::atomic<std::uint32_t>*>(mapped);
    slots_ = reinterpret_cast<Slot*>(static_cast<char*>(mapped) + 4096);
  }
  std::uint32_t load() const { return word_->load(std::memory_order_acquire); }

  // The pacer, after a COMMIT and before committed_one(): a copy of message number `number`
  // (counted from 1). A body too large for a slot is not copied (the consumer reads it).
  void stage(std::uint32_t number, std::int64_t id, const std::string& body) {
    Slot& slot = slots_[(number - 1) % kSlots];
    slot.number.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    if (body.size() > sizeof slot.body) return;
    slot.id = id;
    slot.size = static_cast<std::uint32_t>(body.size());
    std::memcpy(slot.body, body.data(), body.size());
    slot.number.store(number, std::memory_order_release);
  }
  // The consumer: the copy of message `number`, false when the slot does not hold it.
  bool take(std::uint32_t number, std::int64_t& id, std::string& body) const {
    const Slot& slot = slots_[(number - 1) % kSlots];
    if (slot.number.load(std::memory_order_acquire) != number) return false;
    id = slot.id;
    body.assign(slot.body, slot.size);
    std::atomic_thread_fence(std::memory_order_acquire);
    return slot.number.load(std::memory_order_relaxed) == number;
  }

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
  Slot* slots_ = nullptr;
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
  sqlite3* handle() const { return db_; }
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
  std::string transactions = args.text("transactions", "2");
  if (transactions != "2" && transactions != "3")
    throw std::runtime_error("--transactions \"" + transactions + "\" is not known: use 2 or 3");
  const bool one_settle = transactions == "2";
  const bool hand_off = hand_off_of(args);
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
  sqlite3_stmt* handed = db.prepare(
      "SELECT id, body FROM floor WHERE queue = 'in' AND lease = -1 ORDER BY id LIMIT 1");
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
  // A message handed to this consumer, read from the database (when its slot no longer holds it).
  auto read_handed = [&](std::int64_t& id) {
    int rc = sqlite3_step(handed);
    bool got = rc == SQLITE_ROW;
    if (got) {
      id = sqlite3_column_int64(handed, 0);
      body.assign(static_cast<const char*>(sqlite3_column_blob(handed, 1)),
                  static_cast<std::size_t>(sqlite3_column_bytes(handed, 1)));
    }
    sqlite3_reset(handed);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) db.fail("read a handed message");
    return got;
  };
  // One settle transaction: the output inserted and the input deleted together.
  auto settle = [&](std::int64_t id, std::int64_t lease_token) {
    if (one_settle) db.run(begin);
    sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_STATIC);
    db.run(insert);
    sqlite3_bind_int64(remove, 1, id);
    sqlite3_bind_int64(remove, 2, lease_token);
    db.run(remove);
    if (one_settle) db.run(commit);
  };
  // What was queued before this consumer started is taken first; from then on the counter says
  // how many messages there are, and the consumer leases only when one is there.
  std::uint32_t taken = counter.load();
  for (std::int64_t id = 0; lease_one(id);) settle(id, token);
  for (std::int64_t id = 0; read_handed(id);) settle(id, -1);
  for (;;) {
    std::uint32_t committed = counter.load();
    if (committed == taken) {
      counter.wait_while(taken);
      continue;
    }
    std::int64_t id = 0;
    if (hand_off && (counter.take(taken + 1, id, body) || read_handed(id))) {
      settle(id, -1);
      ++taken;
    } else if (!hand_off && lease_one(id)) {
      settle(id, token);
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
  const bool hand_off = hand_off_of(args);
  WakeCounter counter(path, wake_of(args));
  Database db(path);
  // Handed: leased to the consumer (-1) for 10 minutes as it is inserted.
  sqlite3_stmt* insert = db.prepare(
      hand_off ? "INSERT INTO floor(queue, body, visible_at, lease) VALUES('in', ?1, ?2, -1)"
               : "INSERT INTO floor(queue, body, visible_at) VALUES('in', ?1, 0)");
  sqlite3_stmt* waiting = db.prepare("SELECT count(*) FROM floor WHERE queue = 'in'");
  std::int64_t start = monotonic_ns();
  for (std::uint64_t i = 0; i < total; ++i) {
    sleep_until_ns(start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate));
    sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_STATIC);
    if (hand_off) sqlite3_bind_int64(insert, 2, wall_ms() + 600'000);
    db.run(insert);
    if (hand_off) counter.stage(counter.load() + 1, sqlite3_last_insert_rowid(db.handle()), body);
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
               "usage: bench_floor_sqlite consume --db PATH [--wake futex|inotify] "
               "[--transactions 2|3] [--hand-off true]\n"
               "       bench_floor_sqlite pace --db PATH --rate R --seconds S [--payload B] "
               "[--wake futex|inotify] [--timeout S] [--hand-off true]\n");
  return 2;
}
