// Bodies above ASYA_SQLITE_FILE_BODY_BYTES stored as files in `<path>.bodies/`: byte-identical
// round trips around the threshold, what removes a file (ack, the orphan sweep) and what never
// does (lease, extension, nack, a killed consumer), several processes, the v2 -> v3 migration,
// and the setting's parsing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/env.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::spawn;
using test::wait_exit;
namespace fs = std::filesystem;

std::int64_t count_rows(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
  std::int64_t value = -1;
  if (sqlite3_step(s) == SQLITE_ROW) value = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return value;
}

void exec_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (message ? message : "");
  sqlite3_free(message);
  sqlite3_close(db);
}

// Deterministic bytes (every value 0..255, NULs included) from a seed.
std::string pattern(std::uint64_t seed, std::size_t size) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word = random();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < size; ++i) bytes[i] = static_cast<char>(random());
  return bytes;
}

fs::path bodies_dir(const SqliteSettings& settings) {
  return settings.path + ".bodies";
}

// The body files (not .tmp) currently in `<path>.bodies/`.
std::set<std::string> body_files(const SqliteSettings& settings) {
  std::set<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(bodies_dir(settings), ec), end; !ec && it != end;
       it.increment(ec)) {
    names.insert(it->path().filename().string());
  }
  return names;
}

void make_old(const fs::path& path, std::chrono::seconds age) {
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - age.count();
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::uintmax_t wal_size(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path + "-wal", ec);
  return ec ? 0 : size;
}

TEST(SqliteFileBodies, BodiesAtBelowAndAboveTheThresholdRoundTripByteIdentical) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 4096;
  auto t = make_sqlite_transport(Options{}, settings);
  const std::vector<std::size_t> sizes = {0, 1, 4095, 4096, 4097, 3u << 20};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_TRUE(t->send("asya-sizes", pattern(i, sizes[i])).ok()) << sizes[i];
  }
  // Only the two bodies above 4096 bytes went to files; the others are in the table.
  EXPECT_EQ(body_files(settings).size(), 2u);
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM bodies"), 4);
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM messages WHERE body_file IS NULL"), 4);

  auto got = t->receive("asya-sizes", 10, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::string& body = (*got)[i].body;
    EXPECT_EQ(body.size(), sizes[i]);
    EXPECT_TRUE(body == pattern(i, sizes[i])) << "body " << i << " differs";
  }
  for (const Delivery& d : *got) ASSERT_TRUE(t->ack(d).ok());
  EXPECT_TRUE(body_files(settings).empty()) << "ack left body files behind";
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM bodies"), 0);
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM messages"), 0);
}

// A body file of 1 MiB or more is mapped, not read into fresh memory (transport/delivery_body.hpp):
// the bytes are the file's, the parser's read-ahead padding after them is readable whatever the
// size's place in its last page, and the body outlives its file (removed by the ack) and moves.
TEST(SqliteFileBodies, ALargeBodyFileIsMappedReadablePastItsEndAndOutlivesItsFile) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 4096;
  auto t = make_sqlite_transport(Options{}, settings);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  // Below the mapping floor; a whole number of pages (the padding is the reservation's); the
  // padding straddling the last file page's end; one byte into a new page.
  const std::vector<std::size_t> sizes = {(1u << 20) - 1, 1u << 20, (1u << 20) + page - 10,
                                          (1u << 20) + 1};
  for (std::size_t i = 0; i < sizes.size(); ++i)
    ASSERT_TRUE(t->send("asya-mapped", pattern(100 + i, sizes[i])).ok()) << sizes[i];
  auto got = t->receive("asya-mapped", 10, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), sizes.size());
  std::vector<DeliveryBody> kept;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const DeliveryBody& body = (*got)[i].body;
    EXPECT_EQ(body.kept(), i > 0) << "size " << sizes[i];
    ASSERT_EQ(body.size(), sizes[i]);
    ASSERT_GE(body.capacity(), body.size() + 64) << "no room for a parser's read-ahead";
    // Reading past the end must not fault; a mapped body's padding reads as zeros.
    unsigned sum = 0;
    for (std::size_t k = 0; k < 64; ++k)
      sum += static_cast<unsigned char>(body.data()[sizes[i] + k]);
    if (body.kept()) {
      EXPECT_EQ(sum, 0u) << "size " << sizes[i];
    }
    kept.push_back(body);  // a copy shares the mapping
  }
  const char* first = (*got)[1].body.data();
  Delivery moved = std::move((*got)[1]);
  EXPECT_EQ(moved.body.data(), first) << "moving a delivery moved its kept bytes";
  for (std::size_t i = 0; i < got->size(); ++i) {
    if (i != 1) {  // [1] was moved
      ASSERT_TRUE(t->ack((*got)[i]).ok());
    }
  }
  ASSERT_TRUE(t->ack(moved).ok());
  EXPECT_TRUE(body_files(settings).empty()) << "ack left body files behind";
  got->clear();
  for (std::size_t i = 0; i < sizes.size(); ++i)
    EXPECT_TRUE(kept[i] == pattern(100 + i, sizes[i])) << "body " << i << " changed after its ack";
  EXPECT_TRUE(moved.body == pattern(101, sizes[1]));
}

TEST(SqliteFileBodies, ThresholdZeroKeepsEveryBodyInTheDatabase) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 0;
  auto t = make_sqlite_transport(Options{}, settings);
  const std::string body = pattern(7, 8u << 20);
  ASSERT_TRUE(t->send("asya-inline", body).ok());
  EXPECT_FALSE(fs::exists(bodies_dir(settings)));
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM bodies"), 1);
  auto got = t->receive("asya-inline", 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  EXPECT_TRUE(got->front().body == body);
  ASSERT_TRUE(t->ack(got->front()).ok());
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM bodies"), 0);
}

// The point of body files: a large send writes the body once (its file), not into the WAL and
// again into the database by the checkpoint; leases, extensions and nacks never touch the file.
TEST(SqliteFileBodies, LeasesExtensionsAndNacksKeepTheFileAndAckRemovesIt) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->ensure_queue("asya-big").ok());
  std::uintmax_t wal_before = wal_size(settings.path);
  const std::string body = pattern(11, 64u << 20);
  ASSERT_TRUE(t->send("asya-big", body).ok());
  EXPECT_LT(wal_size(settings.path), wal_before + (1u << 20)) << "the body went into the WAL";
  auto files = body_files(settings);
  ASSERT_EQ(files.size(), 1u);
  const fs::path file = bodies_dir(settings) / *files.begin();
  EXPECT_EQ(fs::file_size(file), body.size());
  struct stat before {};
  ASSERT_EQ(::stat(file.c_str(), &before), 0);

  auto got = t->receive("asya-big", 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  EXPECT_TRUE(got->front().body == body);
  ASSERT_TRUE(t->extend_lease(got->front(), 60s).ok());
  ASSERT_TRUE(t->nack(got->front(), 20ms).ok());
  auto again = t->receive("asya-big", 1, 5s);
  ASSERT_TRUE(again.ok() && again->size() == 1u);
  EXPECT_EQ(again->front().delivery_count, 2u);
  EXPECT_TRUE(again->front().body == body);
  struct stat after {};
  ASSERT_EQ(::stat(file.c_str(), &after), 0) << "the body file went away before the ack";
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec) << "the body file was rewritten";

  EXPECT_FALSE(t->ack(got->front()).ok()) << "the first lease is gone";
  EXPECT_TRUE(fs::exists(file)) << "an ack of a lost lease removed the file";
  ASSERT_TRUE(t->ack(again->front()).ok());
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(count_rows(settings.path, "SELECT count(*) FROM messages"), 0);
}

TEST(SqliteFileBodies, AConsumerKilledMidLeaseLeavesTheFileAndTheMessageIsRedelivered) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  Options options;
  options.visibility_timeout = 500ms;
  const std::string body = pattern(13, 5u << 20);
  {
    auto producer = make_sqlite_transport(options, settings);
    ASSERT_TRUE(producer->send("asya-kill", body).ok());
  }
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t victim = fork();
  if (victim == 0) {
    int code = 7;
    try {
      auto t = make_sqlite_transport(options, settings);
      auto got = t->receive("asya-kill", 1, 10s);
      if (got.ok() && got->size() == 1 && got->front().body == body) {
        char c = 'r';
        if (::write(report[1], &c, 1) == 1) {
          for (;;) pause();  // holds the lease until killed
        }
      }
    } catch (...) {
    }
    _exit(code);
  }
  ::close(report[1]);
  char c = 0;
  ASSERT_EQ(::read(report[0], &c, 1), 1) << "the consumer did not receive the body intact";
  ::close(report[0]);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(victim, &status, 0), victim);
  ASSERT_EQ(body_files(settings).size(), 1u) << "the killed consumer's body file is gone";

  auto survivor = make_sqlite_transport(options, settings);
  auto got = survivor->receive("asya-kill", 1, 10s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the killed consumer's message was lost";
  EXPECT_EQ(got->front().delivery_count, 2u);
  EXPECT_TRUE(got->front().body == body);
  ASSERT_TRUE(survivor->ack(got->front()).ok());
  EXPECT_TRUE(body_files(settings).empty());
}

// The sweep (on open) removes old files no row names, and nothing else: not a file a row still
// names, however old; not a young file (its sender may be about to insert the row); not a file
// of another name.
TEST(SqliteFileBodies, TheOrphanSweepRemovesOnlyOldUnreferencedBodyFiles) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  const std::string body = pattern(17, 2u << 20);
  {
    auto t = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(t->send("asya-sweep", body).ok());
  }
  auto files = body_files(settings);
  ASSERT_EQ(files.size(), 1u);
  const fs::path referenced = bodies_dir(settings) / *files.begin();
  const fs::path orphan = bodies_dir(settings) / "m-00000000deadbeef-1.body";
  const fs::path orphan_tmp = bodies_dir(settings) / "m-00000000deadbeef-2.body.tmp";
  const fs::path young = bodies_dir(settings) / "m-00000000deadbeef-3.body";
  const fs::path foreign = bodies_dir(settings) / "notes.txt";
  write_file(orphan, "crashed before its row");
  write_file(orphan_tmp, "crashed while writing");
  write_file(young, "its row is about to be inserted");
  write_file(foreign, "not ours");
  for (const fs::path& p : {referenced, orphan, orphan_tmp, foreign}) make_old(p, 1h);

  auto t = make_sqlite_transport(Options{}, settings);  // sweeps
  EXPECT_TRUE(fs::exists(referenced)) << "the sweep removed a file its row still names";
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(orphan_tmp));
  EXPECT_TRUE(fs::exists(young));
  EXPECT_TRUE(fs::exists(foreign));
  auto got = t->receive("asya-sweep", 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  EXPECT_TRUE(got->front().body == body);
  ASSERT_TRUE(t->ack(got->front()).ok());
  EXPECT_FALSE(fs::exists(referenced));
}

// A row under lease whose file was removed by hand can never be delivered: it is dropped (with
// an error in the log) instead of coming back forever.
TEST(SqliteFileBodies, AMessageWhoseFileWasRemovedByHandIsDroppedNotRedeliveredForever) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->send("asya-lost", pattern(19, 2u << 20)).ok());
  ASSERT_TRUE(t->send("asya-lost", "small one").ok());
  auto files = body_files(settings);
  ASSERT_EQ(files.size(), 1u);
  fs::remove(bodies_dir(settings) / *files.begin());
  auto got = t->receive("asya-lost", 10, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().body, "small one");
  ASSERT_TRUE(t->ack(got->front()).ok());
  auto stats = t->stats("asya-lost");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
}

// A body file replaced by a FIFO (whose open would block the receive forever) or a directory (a
// read error on every receive: a wedged queue) is a lost body like a removed one.
TEST(SqliteFileBodies, ABodyFileReplacedByAFifoOrADirectoryIsDroppedNeverAHangOrAWedgedQueue) {
  for (const std::string kind : {"fifo", "directory"}) {
    test::TempDir dir;
    SqliteSettings settings = dir.settings();
    auto t = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(t->send("asya-odd", pattern(23, 2u << 20)).ok());
    ASSERT_TRUE(t->send("asya-odd", "small one").ok());
    auto files = body_files(settings);
    ASSERT_EQ(files.size(), 1u);
    const fs::path file = bodies_dir(settings) / *files.begin();
    fs::remove(file);
    if (kind == "fifo")
      ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);
    else
      fs::create_directory(file);
    auto got = t->receive("asya-odd", 10, 5s);
    ASSERT_TRUE(got.ok()) << kind << ": " << got.error().message;
    ASSERT_EQ(got->size(), 1u) << kind;
    EXPECT_EQ(got->front().body, "small one") << kind;
    ASSERT_TRUE(t->ack(got->front()).ok());
    auto stats = t->stats("asya-odd");
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u) << kind;
  }
}

TEST(SqliteFileBodies, AVersion2FileIsMigratedAndItsInlineBodiesStillRead) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  exec_sql(settings.path,
           "PRAGMA journal_mode=WAL;"
           "CREATE TABLE queues(name TEXT PRIMARY KEY NOT NULL, created_at_ms INTEGER NOT NULL) "
           "WITHOUT ROWID;"
           "CREATE TABLE messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, "
           "visible_at_ms INTEGER NOT NULL, delivery_count INTEGER NOT NULL DEFAULT 0, "
           "lease INTEGER, sent_at_ms INTEGER NOT NULL);"
           "CREATE INDEX messages_by_visibility ON messages(queue, visible_at_ms, id);"
           "CREATE TABLE bodies(id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
           "INSERT INTO queues VALUES('asya-v2', 1);"
           "INSERT INTO messages(queue, visible_at_ms, sent_at_ms) VALUES('asya-v2', 0, 0);"
           "INSERT INTO bodies VALUES(1, x'763200626f6479');"
           "PRAGMA user_version = 2;");
  auto t = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(count_rows(settings.path, "PRAGMA user_version"), 3);
  const std::string big = pattern(23, 2u << 20);
  ASSERT_TRUE(t->send("asya-v2", big).ok());
  auto got = t->receive("asya-v2", 2, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].body, std::string("v2\0body", 7));
  EXPECT_TRUE((*got)[1].body == big);
  for (const Delivery& d : *got) ASSERT_TRUE(t->ack(d).ok());
  EXPECT_TRUE(body_files(settings).empty());
}

// Producers and consumers in separate processes, bodies on both sides of the threshold: every
// message arrives exactly once and intact, and no body file is left behind.
TEST(SqliteFileBodies, ProcessesExchangingLargeBodiesLoseAndDuplicateNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 256u << 10;
  constexpr int kProducers = 2, kPerProducer = 20, kConsumers = 2;
  const std::string queue = "asya-mp-big";
  const std::string stop_file = (dir.path() / "stop").string();
  auto size_of = [](int p, int i) -> std::size_t {
    return (i % 3 == 0) ? (100u << 10) + i : (1u << 20) + 4099u * (p + 1) * i;
  };
  {
    auto setup = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(setup->ensure_queue(queue).ok());
  }
  std::vector<pid_t> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    std::string record = (dir.path() / ("consumer-" + std::to_string(c))).string();
    consumers.push_back(spawn([&, c, record] {
      auto t = make_sqlite_transport(Options{}, settings);
      int fd = ::open(record.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) return 3;
      for (;;) {
        auto got = t->receive(queue, c == 0 ? 1 : 4, 100ms);
        if (!got.ok()) {
          std::fprintf(stderr, "receive: %s\n", got.error().message.c_str());
          return 4;
        }
        if (got->empty() && ::access(stop_file.c_str(), F_OK) == 0) return 0;
        for (const Delivery& d : *got) {
          const std::string body(d.body);  // a kept (mapped) body read as a string
          // The body starts with "<p> <i> " and continues with pattern(p * 1000 + i, ...).
          // (Not sscanf's "%d %d %n": its trailing space would also skip pattern bytes.)
          int p = -1, i = -1;
          std::size_t first = body.find(' ');
          std::size_t second = first == std::string::npos ? first : body.find(' ', first + 1);
          std::size_t header = second == std::string::npos ? 0 : second + 1;
          if (header > 0) {
            p = std::atoi(body.substr(0, first).c_str());
            i = std::atoi(body.substr(first + 1, second - first - 1).c_str());
          }
          bool intact = header > 0 && body.size() == size_of(p, i) &&
                        body.compare(header, std::string::npos,
                                     pattern(p * 1000 + i, body.size() - header)) == 0;
          std::string line = std::to_string(p) + "-" + std::to_string(i) + " " +
                             (intact ? "ok" : "bad") + " " + std::to_string(d.delivery_count) +
                             "\n";
          if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 6;
          if (!t->ack(d).ok()) return 5;
        }
      }
    }));
  }
  std::vector<pid_t> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(spawn([&, p] {
      auto t = make_sqlite_transport(Options{}, settings);
      for (int i = 0; i < kPerProducer; ++i) {
        std::string header = std::to_string(p) + " " + std::to_string(i) + " ";
        std::string body = header + pattern(p * 1000 + i, size_of(p, i) - header.size());
        Status s = t->send(queue, body);
        if (!s.ok()) {
          std::fprintf(stderr, "send: %s\n", s.message().c_str());
          return 7;
        }
      }
      return 0;
    }));
  }
  Clock::time_point deadline = Clock::now() + 240s;
  for (pid_t pid : producers) EXPECT_EQ(wait_exit(pid, deadline), 0);
  auto observer = make_sqlite_transport(Options{}, settings);
  test::wait_drained(*observer, queue, deadline);
  if (HasFatalFailure()) return;
  write_file(stop_file, "stop\n");
  for (pid_t pid : consumers) EXPECT_EQ(wait_exit(pid, deadline), 0);

  std::map<std::string, int> seen;
  for (int c = 0; c < kConsumers; ++c) {
    std::ifstream in(dir.path() / ("consumer-" + std::to_string(c)));
    std::string id, verdict;
    int count = 0;
    while (in >> id >> verdict >> count) {
      ++seen[id];
      EXPECT_EQ(verdict, "ok") << id << " arrived corrupted";
      EXPECT_EQ(count, 1) << id << " was redelivered";
    }
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      std::string id = std::to_string(p) + "-" + std::to_string(i);
      EXPECT_EQ(seen[id], 1) << id;
    }
  }
  EXPECT_TRUE(body_files(settings).empty()) << "body files left behind after every ack";
}

// The settings read from an environment holding only ASYA_SQLITE_FILE_BODY_BYTES=`value`.
SqliteSettings with_threshold(const char* value) {
  return SqliteSettings::from_env(
      Environment(environment_with({{"ASYA_SQLITE_FILE_BODY_BYTES", value}}, nullptr)));
}

TEST(SqliteFileBodies, TheThresholdIsReadFromTheEnvironment) {
  EXPECT_EQ(with_threshold("").file_body_bytes, 1u << 20);
  EXPECT_EQ(with_threshold("4MiB").file_body_bytes, 4u << 20);
  EXPECT_EQ(with_threshold("0").file_body_bytes, 0u);
  for (const char* bad : {"lots", "-1", "1 MiB", "12XB"}) {
    try {
      with_threshold(bad);
      ADD_FAILURE() << "accepted ASYA_SQLITE_FILE_BODY_BYTES=" << bad;
    } catch (const ConfigError& e) {
      std::string message = e.what();
      EXPECT_NE(message.find("ASYA_SQLITE_FILE_BODY_BYTES"), std::string::npos) << message;
      EXPECT_NE(message.find(bad), std::string::npos) << message;
      EXPECT_NE(message.find("0 keeps"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace asya::transport
