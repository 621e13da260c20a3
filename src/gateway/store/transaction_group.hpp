// Group commit for the job store: transactions that threads of one gateway start at the same
// moment (concurrent tool calls, progress reports) share one database transaction, each body in
// its own SAVEPOINT, instead of taking the write lock and committing once each.
//
// How: a thread calling run() queues its body. If no thread is running a batch, it leads at once:
// it takes every queued body (at most kMaxBatch) and hands them to the backend's BatchRunner,
// which runs them in one transaction and commits; then it wakes their threads with their results.
// A thread arriving while a batch runs waits for it and joins the next one. Nothing waits on a
// timer: a lone body runs at once in a transaction of its own, exactly as without grouping.
//
// Durability (job_store.hpp): run() returns Ok only after the COMMIT that contains the body
// returned. A body that fails is rolled back to its savepoint and fails only its own caller; a
// failed BEGIN or COMMIT fails every body of the batch (none was told it succeeded).
//
// Bodies run on the leader's thread: they must touch only the backend (through its query()) and
// their own captures, and must not call run() again.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace asya::gateway {

class TransactionGroup {
 public:
  static constexpr std::size_t kMaxBatch = 32;
  using Body = std::function<Status()>;
  // Runs `bodies` in one transaction and fills `results` (same size): see run_batch below.
  using BatchRunner =
      std::function<void(const std::vector<const Body*>& bodies, std::vector<Status>& results)>;

  struct Stats {
    std::uint64_t bodies = 0;
    std::uint64_t transactions = 0;
    std::size_t largest_batch = 0;
  };

  explicit TransactionGroup(BatchRunner runner) : runner_(std::move(runner)) {}

  // Runs `body` in a shared transaction; returns its result once that transaction committed (or
  // failed). Thread-safe.
  Status run(const Body& body);
  // Runs `bodies` in order, queued together so that they share a transaction (at most kMaxBatch
  // per transaction: more are split over consecutive ones), each in its own savepoint; returns
  // their results in order once all committed (or failed). One failing body fails only itself.
  // Thread-safe.
  std::vector<Status> run_all(const std::vector<const Body*>& bodies);

  Stats stats() const;
  // Bodies queued behind the batch being run, and whether one is (tests).
  std::size_t pending() const;
  bool leading() const;

 private:
  struct Request {
    const Body* body;
    Status result = Status::Ok();
    bool done = false;
  };

  BatchRunner runner_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Request*> pending_;
  bool leading_ = false;
  Stats stats_;
};

// The BatchRunner of a backend that runs SQL text with `exec`: `begin` (e.g. "BEGIN IMMEDIATE"),
// then each body — alone: as it is; several: between SAVEPOINT and RELEASE, rolled back to the
// savepoint when it fails — then COMMIT (ROLLBACK when a lone body failed). `exec` returns the
// statement's status. A failed BEGIN or COMMIT is every body's result.
void run_batch(const std::function<Status(const char* sql)>& exec, const char* begin,
               const std::vector<const TransactionGroup::Body*>& bodies,
               std::vector<Status>& results);

}  // namespace asya::gateway
