// Throughput of the SQLite transport: one hop is send + receive + ack.
//   sqlite_transport_bench [messages=5000] [body_bytes=1024] [only=normal|full|threads]
// Prints msg/s for a tight single-thread loop (synchronous NORMAL and FULL), for a producer
// thread and a consumer thread sharing one instance, and for batched receives.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

using namespace asya::transport;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "failed: %s\n", what.c_str());
    std::exit(1);
  }
}

double rate(int n, Clock::time_point start) {
  return n / std::chrono::duration<double>(Clock::now() - start).count();
}

void tight_loop(const char* label, bool full, int n, const std::string& body) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.synchronous_full = full;
  auto t = make_sqlite_transport(Options{}, settings);
  Clock::time_point start = Clock::now();
  for (int i = 0; i < n; ++i) {
    check(t->send("asya-bench", body).ok(), "send");
    auto got = t->receive("asya-bench", 1, 0ms);
    check(got.ok() && got->size() == 1, "receive");
    check(t->ack(got->front()).ok(), "ack");
  }
  std::printf("%-44s %8.0f msg/s\n", label, rate(n, start));
}

void two_threads(std::size_t batch, int n, const std::string& body) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  Clock::time_point start = Clock::now();
  std::thread producer([&] {
    for (int i = 0; i < n; ++i) check(t->send("asya-bench", body).ok(), "send");
  });
  int received = 0;
  while (received < n) {
    auto got = t->receive("asya-bench", batch, 1000ms);
    check(got.ok(), "receive");
    for (const Delivery& d : *got) {
      check(t->ack(d).ok(), "ack");
      ++received;
    }
  }
  producer.join();
  std::printf("producer + consumer threads, batch %-3zu          %8.0f msg/s\n", batch,
              rate(n, start));
}

}  // namespace

int main(int argc, char** argv) {
  asya::log::init("sqlite-bench", "warn");  // transport warnings: JSON on stderr, never stdout
  int n = argc > 1 ? std::atoi(argv[1]) : 5000;
  std::string body(argc > 2 ? std::atoi(argv[2]) : 1024, 'x');
  std::string only = argc > 3 ? argv[3] : "";
  std::printf("%d messages of %zu bytes\n", n, body.size());
  if (only.empty() || only == "normal") {
    tight_loop("send+receive+ack loop, synchronous=NORMAL", false, n, body);
  }
  if (only.empty() || only == "full") {
    tight_loop("send+receive+ack loop, synchronous=FULL", true, n / 4, body);
  }
  if (only.empty() || only == "threads") {
    two_threads(1, n, body);
    two_threads(16, n, body);
  }
  return 0;
}
