#include "transport/sqlite/group_commit.hpp"

#include <algorithm>
#include <exception>

#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport::sqlite {

Status GroupCommit::run(const std::string& what, Operation op) {
  std::vector<Job> jobs;
  jobs.push_back(Job{what, std::move(op)});
  return std::move(run_many(jobs).front());
}

std::vector<Status> GroupCommit::run_many(std::vector<Job>& jobs) {
  std::vector<Request> requests;
  requests.reserve(jobs.size());
  for (Job& job : jobs) requests.push_back(Request{&job.what, &job.op, &job.wakes});
  std::size_t left = requests.size();
  std::unique_lock lock(mutex_);
  for (Request& request : requests) pending_.push_back(&request);
  auto count_done = [&] {
    left = 0;
    for (const Request& r : requests) left += r.done ? 0 : 1;
  };
  while (left > 0) {
    if (leading_) {
      done_.wait(lock);
      count_done();
      continue;
    }
    // Lead: take what is queued now (these requests among them, unless an earlier leader took
    // them).
    leading_ = true;
    std::size_t take = std::min(pending_.size(), kMaxBatch);
    std::vector<Request*> batch(pending_.begin(), pending_.begin() + take);
    pending_.erase(pending_.begin(), pending_.begin() + take);
    lock.unlock();
    try {
      commit_batch(batch);
    } catch (const std::exception& e) {  // e.g. bad_alloc: the others must not wait forever
      for (Request* r : batch) r->result = Error{*r->what + ": " + e.what()};
    }
    WriteLockStats::record_group_commit(batch.size());
    lock.lock();
    for (Request* r : batch) r->done = true;
    stats_.operations += batch.size();
    stats_.largest_batch = std::max(stats_.largest_batch, batch.size());
    leading_ = false;
    done_.notify_all();
    count_done();
  }
  std::vector<Status> results;
  results.reserve(requests.size());
  for (Request& r : requests) results.push_back(std::move(r.result));
  return results;
}

GroupCommit::Stats GroupCommit::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::size_t GroupCommit::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

bool GroupCommit::leading() const {
  std::lock_guard lock(mutex_);
  return leading_;
}

void GroupCommit::commit_batch(std::vector<Request*>& batch) {
  auto c = pool_.acquire();
  if (!c) {
    for (Request* r : batch) r->result = Error{*r->what + ": " + c.error().message};
    return;
  }
  Connection& db = c->connection();
  if (try_batch(db, batch) != Outcome::kOperationAborted || batch.size() == 1) return;
  // An operation's statement failed: each operation alone, so only a bad one fails.
  for (Request* r : batch) {
    std::vector<Request*> one{r};
    try_batch(db, one);
  }
}

GroupCommit::Outcome GroupCommit::try_batch(Connection& db, std::vector<Request*>& batch) {
  {
    std::lock_guard lock(mutex_);
    ++stats_.transactions;
  }
  if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) {
    for (Request* r : batch) r->result = Error{*r->what + ": " + s.message()};
    return Outcome::kFailed;
  }
  for (Request* r : batch) {
    bool abort = false;
    try {
      r->result = (*r->op)(db, abort);
    } catch (...) {  // no connection goes back to the pool inside a transaction
      (void)db.run(kRollback, "ROLLBACK");
      if (ended_) ended_(false);
      throw;
    }
    if (abort) {
      (void)db.run(kRollback, "ROLLBACK");
      if (ended_) ended_(false);
      return Outcome::kOperationAborted;
    }
  }
  wake_before_commit(batch);
  if (Status s = db.run(kCommit, "COMMIT"); !s) {
    (void)db.run(kRollback, "ROLLBACK");
    if (ended_) ended_(false);
    for (Request* r : batch) r->result = Error{*r->what + ": " + s.message()};
    return Outcome::kFailed;
  }
  if (ended_) ended_(true);
  return Outcome::kCommitted;
}

void GroupCommit::wake_before_commit(const std::vector<Request*>& batch) {
  if (!wake_) return;
  std::vector<std::string_view> woken;
  for (const Request* r : batch) {
    for (std::string_view queue : *r->wakes) {
      if (std::find(woken.begin(), woken.end(), queue) != woken.end()) continue;
      woken.push_back(queue);
      wake_(queue);
    }
  }
}

}  // namespace asya::transport::sqlite
