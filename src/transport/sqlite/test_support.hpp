// Test helpers for the sqlite transport tests (not part of the library).
#pragma once

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <sqlite3.h>

#include <cstdint>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/transport.hpp"

namespace asya::transport::test {

// Options with `timeout` as the visibility timeout.
inline Options visibility(std::chrono::milliseconds timeout) {
  Options o;
  o.visibility_timeout = timeout;
  return o;
}

// One integer from `sql` on the database (-1 when it returns no row).
inline std::int64_t query(const SqliteSettings& settings, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(settings.path.c_str(), &db);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  std::int64_t value = s && sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return value;
}

// Waits until `sql` returns `expected`; fails the test after 20 s.
inline void wait_for(const SqliteSettings& settings, const std::string& sql,
                     std::int64_t expected) {
  using namespace std::chrono_literals;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (query(settings, sql) != expected) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << sql << " never returned " << expected;
    std::this_thread::sleep_for(5ms);
  }
}

// The hand-off rows of `pid` still waiting (no message handed to them).
inline std::string waiting_rows_of(pid_t pid) {
  return "SELECT count(*) FROM waiters WHERE message_id IS NULL AND pid = " + std::to_string(pid);
}

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "asya-sqlite-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Settings for a database file inside this directory.
  SqliteSettings settings() const {
    SqliteSettings s;
    s.path = (path_ / "queues.db").string();
    return s;
  }

 private:
  std::filesystem::path path_;
};

// Reads one line from a pipe (a child process's report), waiting up to `wait`; empty on timeout
// or EOF.
inline std::string read_line(int fd, std::chrono::milliseconds wait) {
  using Clock = std::chrono::steady_clock;
  std::string line;
  Clock::time_point deadline = Clock::now() + wait;
  char c;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int remaining = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(remaining, 1)) <= 0) continue;
    if (::read(fd, &c, 1) != 1) return {};
    if (c == '\n') return line;
    line += c;
  }
  return {};
}

// Runs `body` in a forked child process; its return value is the child's exit code (100 when it
// throws, after printing the exception).
inline pid_t spawn(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 100;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child failed: %s\n", e.what());
    }
    std::fflush(nullptr);
    _exit(code);
  }
  return pid;
}

// Waits for `pid` until `deadline`; returns its exit code (128 + signal when killed), or -1 after
// killing it on timeout.
inline int wait_exit(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Waits until `queue` has nothing ready, in flight or delayed (every message acknowledged),
// polling its stats through `observer`; fails the test at `deadline`.
inline void wait_drained(Transport& observer, const std::string& queue,
                         std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto stats = observer.stats(queue);
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    if (stats->ready + stats->in_flight + stats->delayed == 0) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "consumers did not drain " << queue;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace asya::transport::test
