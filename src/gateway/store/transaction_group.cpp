#include "gateway/store/transaction_group.hpp"

#include <algorithm>
#include <exception>

namespace asya::gateway {

Status TransactionGroup::run(const Body& body) {
  return std::move(run_all({&body}).front());
}

std::vector<Status> TransactionGroup::run_all(const std::vector<const Body*>& bodies) {
  std::vector<Request> requests;
  requests.reserve(bodies.size());
  for (const Body* body : bodies) requests.push_back(Request{body});
  std::unique_lock lock(mutex_);
  for (Request& request : requests) pending_.push_back(&request);
  auto all_done = [&] {
    return std::all_of(requests.begin(), requests.end(), [](const Request& r) { return r.done; });
  };
  while (!all_done()) {
    if (leading_) {
      done_.wait(lock);
      continue;
    }
    // Lead: take what is queued now (these requests among them, unless an earlier leader took
    // them).
    leading_ = true;
    std::size_t take = std::min(pending_.size(), kMaxBatch);
    std::vector<Request*> batch(pending_.begin(), pending_.begin() + take);
    pending_.erase(pending_.begin(), pending_.begin() + take);
    lock.unlock();
    std::vector<const Body*> batch_bodies;
    batch_bodies.reserve(batch.size());
    for (Request* r : batch) batch_bodies.push_back(r->body);
    std::vector<Status> results(batch.size(), Status::Ok());
    try {
      runner_(batch_bodies, results);
    } catch (const std::exception& e) {  // e.g. bad_alloc: the others must not wait forever
      for (Status& s : results) s = Error{std::string("job store transaction: ") + e.what()};
    }
    lock.lock();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i]->result = std::move(results[i]);
      batch[i]->done = true;
    }
    stats_.bodies += batch.size();
    ++stats_.transactions;
    stats_.largest_batch = std::max(stats_.largest_batch, batch.size());
    leading_ = false;
    done_.notify_all();
  }
  std::vector<Status> out;
  out.reserve(requests.size());
  for (Request& request : requests) out.push_back(std::move(request.result));
  return out;
}

TransactionGroup::Stats TransactionGroup::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::size_t TransactionGroup::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

bool TransactionGroup::leading() const {
  std::lock_guard lock(mutex_);
  return leading_;
}

void run_batch(const std::function<Status(const char* sql)>& exec, const char* begin,
               const std::vector<const TransactionGroup::Body*>& bodies,
               std::vector<Status>& results) {
  auto fail_all = [&](const Status& why) {
    for (Status& r : results) r = why;
  };
  if (Status begun = exec(begin); !begun.ok()) return fail_all(begun);
  if (bodies.size() == 1) {
    results[0] = (*bodies[0])();
    Status ended = exec(results[0].ok() ? "COMMIT" : "ROLLBACK");
    if (results[0].ok() && !ended.ok()) {
      (void)exec("ROLLBACK");
      results[0] = ended;
    }
    return;
  }
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (Status saved = exec("SAVEPOINT asya_job_store"); !saved.ok()) {
      (void)exec("ROLLBACK");
      return fail_all(saved);
    }
    results[i] = (*bodies[i])();
    Status ended =
        results[i].ok() ? exec("RELEASE asya_job_store") : exec("ROLLBACK TO asya_job_store");
    if (ended.ok() && !results[i].ok()) ended = exec("RELEASE asya_job_store");
    if (!ended.ok()) {
      (void)exec("ROLLBACK");
      return fail_all(ended);
    }
  }
  if (Status committed = exec("COMMIT"); !committed.ok()) {
    (void)exec("ROLLBACK");
    fail_all(committed);
  }
}

}  // namespace asya::gateway
