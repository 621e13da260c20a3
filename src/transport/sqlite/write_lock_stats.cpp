#include "transport/sqlite/write_lock_stats.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/log.hpp"
#include "common/process_metrics.hpp"

namespace asya::transport::sqlite {

namespace {
std::atomic<std::uint64_t> g_transactions{0};
std::atomic<std::uint64_t> g_slow_holds{0};
std::atomic<std::int64_t> g_longest_hold_ns{0};
std::atomic<std::int64_t> g_longest_wait_ns{0};
std::atomic<std::uint64_t> g_group_operations{0};
std::atomic<std::uint64_t> g_group_batches{0};

// Raises `maximum` to `value`; true when `value` became the new maximum.
bool raise(std::atomic<std::int64_t>& maximum, std::int64_t value) {
  std::int64_t seen = maximum.load(std::memory_order_relaxed);
  while (value > seen) {
    if (maximum.compare_exchange_weak(seen, value, std::memory_order_relaxed)) return true;
  }
  return false;
}

std::string seconds_text(std::int64_t ns) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9f", static_cast<double>(ns) / 1e9);
  return buffer;
}
}  // namespace

WriteLockStats WriteLockStats::snapshot() {
  WriteLockStats s;
  s.transactions = g_transactions.load();
  s.slow_holds = g_slow_holds.load();
  s.longest_hold = std::chrono::nanoseconds(g_longest_hold_ns.load());
  s.longest_wait = std::chrono::nanoseconds(g_longest_wait_ns.load());
  s.group_operations = g_group_operations.load();
  s.group_batches = g_group_batches.load();
  return s;
}

void WriteLockStats::record_hold(std::chrono::nanoseconds held, const std::string& path) {
  g_transactions.fetch_add(1, std::memory_order_relaxed);
  bool slow = held >= kSlowHold;
  if (slow) g_slow_holds.fetch_add(1, std::memory_order_relaxed);
  if (raise(g_longest_hold_ns, held.count()) && slow) {
    spdlog::warn(
        "sqlite transport: a write transaction on {} held the write lock for {} ms, the longest "
        "in this process so far (other writers wait meanwhile; they fail after "
        "ASYA_SQLITE_BUSY_TIMEOUT)",
        path, std::chrono::duration_cast<std::chrono::milliseconds>(held).count());
  }
}

void WriteLockStats::record_wait(std::chrono::nanoseconds waited) {
  raise(g_longest_wait_ns, waited.count());
}

void WriteLockStats::record_group_commit(std::size_t operations) {
  g_group_operations.fetch_add(operations, std::memory_order_relaxed);
  g_group_batches.fetch_add(1, std::memory_order_relaxed);
}

std::string WriteLockStats::metrics_text() {
  WriteLockStats s = snapshot();
  std::string out;
  out +=
      "# HELP asya_sqlite_write_lock_hold_seconds_max Longest time a write transaction of this "
      "process held the SQLite queue database's write lock (BEGIN IMMEDIATE to COMMIT or "
      "ROLLBACK)\n"
      "# TYPE asya_sqlite_write_lock_hold_seconds_max gauge\n"
      "asya_sqlite_write_lock_hold_seconds_max " +
      seconds_text(s.longest_hold.count()) + "\n";
  out +=
      "# HELP asya_sqlite_write_lock_wait_seconds_max Longest time a write transaction of this "
      "process waited for the SQLite queue database's write lock\n"
      "# TYPE asya_sqlite_write_lock_wait_seconds_max gauge\n"
      "asya_sqlite_write_lock_wait_seconds_max " +
      seconds_text(s.longest_wait.count()) + "\n";
  out +=
      "# HELP asya_sqlite_write_transactions_total Write transactions of this process on the "
      "SQLite queue database\n"
      "# TYPE asya_sqlite_write_transactions_total counter\n"
      "asya_sqlite_write_transactions_total " +
      std::to_string(s.transactions) + "\n";
  out +=
      "# HELP asya_sqlite_write_lock_slow_holds_total Write transactions of this process that "
      "held the SQLite queue database's write lock 100 ms or longer\n"
      "# TYPE asya_sqlite_write_lock_slow_holds_total counter\n"
      "asya_sqlite_write_lock_slow_holds_total " +
      std::to_string(s.slow_holds) + "\n";
  out +=
      "# HELP asya_sqlite_group_commit_operations_total Sends and acks of this process committed "
      "by group commit (several pending at once share a write transaction)\n"
      "# TYPE asya_sqlite_group_commit_operations_total counter\n"
      "asya_sqlite_group_commit_operations_total " +
      std::to_string(s.group_operations) + "\n";
  out +=
      "# HELP asya_sqlite_group_commit_batches_total Group-commit batches of this process (one "
      "write transaction each, unless rolled back and retried one by one)\n"
      "# TYPE asya_sqlite_group_commit_batches_total counter\n"
      "asya_sqlite_group_commit_batches_total " +
      std::to_string(s.group_batches) + "\n";
  return out;
}

void WriteLockStats::export_once() {
  static std::once_flag once;
  std::call_once(once, [] { add_process_metrics([] { return WriteLockStats::metrics_text(); }); });
}

}  // namespace asya::transport::sqlite
