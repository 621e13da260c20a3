// How long this process waited for, and held, the SQLite queue database's write lock: every write
// transaction of the transport runs BEGIN IMMEDIATE ... COMMIT/ROLLBACK through
// Connection::run(), which reports here. Exported on every metrics endpoint of the process
// (common/process_metrics.hpp) as
//   asya_sqlite_write_lock_hold_seconds_max   gauge    longest hold (BEGIN IMMEDIATE → end)
//   asya_sqlite_write_lock_wait_seconds_max   gauge    longest wait for BEGIN IMMEDIATE
//   asya_sqlite_write_transactions_total      counter  write transactions ended
//   asya_sqlite_write_lock_slow_holds_total   counter  holds longer than kSlowHold
//   asya_sqlite_group_commit_operations_total counter  sends and acks committed by group commit
//   asya_sqlite_group_commit_batches_total    counter  their batches (operations / batches =
//                                                      the mean number sharing a transaction)
// and a new longest hold above kSlowHold is logged (warn): another process's send or receive
// waits that long, and fails after ASYA_SQLITE_BUSY_TIMEOUT.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace asya::transport::sqlite {

struct WriteLockStats {
  static constexpr std::chrono::milliseconds kSlowHold{100};

  std::uint64_t transactions = 0;
  std::uint64_t slow_holds = 0;
  std::chrono::nanoseconds longest_hold{0};
  std::chrono::nanoseconds longest_wait{0};
  std::uint64_t group_operations = 0;
  std::uint64_t group_batches = 0;

  // The process's figures so far.
  static WriteLockStats snapshot();
  // Records one write transaction that held the lock for `held` (`path`: the database, logged).
  static void record_hold(std::chrono::nanoseconds held, const std::string& path);
  // Records a BEGIN IMMEDIATE that waited `waited` for the lock (whether or not it got it).
  static void record_wait(std::chrono::nanoseconds waited);
  // Records one group-commit batch of `operations` (group_commit.hpp).
  static void record_group_commit(std::size_t operations);
  // The families above, Prometheus text format.
  static std::string metrics_text();
  // Adds metrics_text() to the process's metrics (once per process; idempotent).
  static void export_once();
};

}  // namespace asya::transport::sqlite
