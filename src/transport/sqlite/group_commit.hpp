// Group commit: the sends and acks that threads of one process have pending at the same moment
// share one write transaction (one lock acquisition, one WAL append and one commit) instead of
// one each.
//
// How: a thread calling run() queues its operation. If no thread is committing, it becomes the
// leader at once: it takes every queued operation (at most kMaxBatch), runs them in one
// BEGIN IMMEDIATE ... COMMIT on a pooled connection, and wakes their threads with their results;
// then, if more queued up meanwhile, the first of their threads leads the next batch. A thread
// arriving while a batch commits waits for it to finish and joins the next one. Nothing ever
// waits on a timer: a lone operation is committed at once, exactly as without grouping.
//
// Durability (transport.hpp's contract): run() returns Ok only after the COMMIT containing the
// operation returned; an operation's effects are never visible before that commit; a crash
// before the COMMIT loses the whole batch and no caller was told it succeeded (send did not
// return, ack did not return, so the input stays leased and comes back). A caller's ordering is
// kept: a thread's send returns before its ack is queued.
//
// Several operations of one caller (run_many: a sidecar settling a batch of messages) are queued
// together, so they share a transaction with each other (at most kMaxBatch per transaction) and
// with whatever other threads have pending; run_many returns once all of them are done.
//
// Failures: an operation reports a failure that wrote nothing (a lease no longer held, a body
// file gone) as its own result, and the batch goes on. A statement failure (abort = true) rolls
// the batch back and each of its operations is run again alone, so one bad operation fails only
// its own caller. A failed BEGIN or COMMIT (the write lock held past the busy timeout, a full
// disk) is no operation's fault: the batch is rolled back, nothing of it is committed, and every
// operation of it fails with that error (running each again alone would wait the busy timeout
// once per operation).
//
// Wake-ups: a job names the queues it made a message ready on (`wakes`). Once every statement of
// a batch ran, the leader calls the `wake` callback for each queue the batch names (once per
// queue), still holding the write lock, and then commits. A receiver woken this way wakes up
// while the COMMIT is being written; its lease (BEGIN IMMEDIATE) waits for the write lock, so it
// sees the commit, never the state before it. A batch that fails its COMMIT or is rolled back
// only woke its receivers for nothing: they look, find no message and wait again.
//
// Threads: run() is thread-safe; operations run on the leader's thread, so they must only touch
// the Connection they are given and their own captures.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/connection.hpp"

namespace asya::transport::sqlite {

class GroupCommit {
 public:
  // At most this many operations share a transaction (bounds how long one holds the lock).
  static constexpr std::size_t kMaxBatch = 64;

  // Runs the operation's statements inside an open write transaction on `db`. Sets `abort` when
  // a statement failed (the transaction must be rolled back); returns the caller's result. May
  // be run more than once (after a rolled-back batch): it must start from scratch each time.
  using Operation = std::function<Status(Connection& db, bool& abort)>;

  struct Stats {
    std::uint64_t operations = 0;
    std::uint64_t transactions = 0;
    std::size_t largest_batch = 0;
  };

  // Wakes the receivers of a queue (QueueWaker::notify); called with the write lock held.
  using Wake = std::function<void(std::string_view queue)>;

  // Called by the leader after each transaction it began: true right after its COMMIT returned,
  // false after it was rolled back or its COMMIT failed (hand-off slots, hand_off_slots.hpp).
  using Ended = std::function<void(bool committed)>;

  explicit GroupCommit(ConnectionPool& pool, Wake wake = {}, Ended ended = {})
      : pool_(pool), wake_(std::move(wake)), ended_(std::move(ended)) {}

  // Runs `op` in a shared write transaction; returns once that transaction committed (or failed)
  // with `op`'s result. `what` names the operation in errors of BEGIN/COMMIT ("send to queue
  // \"x\"").
  Status run(const std::string& what, Operation op);

  // Runs several operations, queued together; returns once each is done, their results in order.
  struct Job {
    std::string what;
    Operation op;
    // Queues on which `op` makes a message ready: woken just before the COMMIT (see above).
    std::vector<std::string_view> wakes = {};
  };
  std::vector<Status> run_many(std::vector<Job>& jobs);

  // Operations and transactions so far (tests, metrics).
  Stats stats() const;
  // Operations queued behind a batch being committed, and whether one is (tests).
  std::size_t pending() const;
  bool leading() const;

 private:
  struct Request {
    const std::string* what;
    Operation* op;
    const std::vector<std::string_view>* wakes;
    Status result = Status::Ok();
    bool done = false;
  };

  enum class Outcome { kCommitted, kOperationAborted, kFailed };
  void commit_batch(std::vector<Request*>& batch);
  // One transaction for `batch`: committed, rolled back because an operation aborted, or rolled
  // back because BEGIN or COMMIT failed (every result then says so).
  Outcome try_batch(Connection& db, std::vector<Request*>& batch);

  // Wakes the receivers of the queues `batch` names, once per queue.
  void wake_before_commit(const std::vector<Request*>& batch);

  ConnectionPool& pool_;
  Wake wake_;
  Ended ended_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Request*> pending_;
  bool leading_ = false;
  Stats stats_;
};

}  // namespace asya::transport::sqlite
