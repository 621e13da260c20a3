#include "transport/sqlite/group_commit.hpp"

#include <algorithm>
#include <exception>

#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport::sqlite {

Status GroupCommit::run(const std::string& what, Operation op) {
  Request request{&what, &op};
  std::unique_lock lock(mutex_);
  pending_.push_back(&request);
  while (!request.done) {
    if (leading_) {
      done_.wait(lock);
      continue;
    }
    // Lead: take what is queued now (this request among them, unless an earlier leader took it).
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
  }
  return request.result;
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
  if (try_batch(db, batch) || batch.size() == 1) return;
  // The shared transaction was rolled back: each operation alone, so only a bad one fails.
  for (Request* r : batch) {
    std::vector<Request*> one{r};
    try_batch(db, one);
  }
}

bool GroupCommit::try_batch(Connection& db, std::vector<Request*>& batch) {
  {
    std::lock_guard lock(mutex_);
    ++stats_.transactions;
  }
  if (Status s = db.run(kBeginImmediate, "BEGIN IMMEDIATE"); !s) {
    for (Request* r : batch) r->result = Error{*r->what + ": " + s.message()};
    return false;
  }
  for (Request* r : batch) {
    bool abort = false;
    try {
      r->result = (*r->op)(db, abort);
    } catch (...) {  // no connection goes back to the pool inside a transaction
      (void)db.run(kRollback, "ROLLBACK");
      throw;
    }
    if (abort) {
      (void)db.run(kRollback, "ROLLBACK");
      return false;
    }
  }
  if (Status s = db.run(kCommit, "COMMIT"); !s) {
    (void)db.run(kRollback, "ROLLBACK");
    for (Request* r : batch) r->result = Error{*r->what + ": " + s.message()};
    return false;
  }
  return true;
}

}  // namespace asya::transport::sqlite
