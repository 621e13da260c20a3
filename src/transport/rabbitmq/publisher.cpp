#include "transport/rabbitmq/publisher.hpp"

#include "common/env.hpp"
#include "transport/rabbitmq/publisher_job.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

namespace asya::transport::rabbitmq {

namespace {

using Clock = std::chrono::steady_clock;
using publisher_detail::kControlChannel;
using publisher_detail::kPublishChannel;

template <typename Jobs>
bool every_job_done(const Jobs& jobs) {
  return std::all_of(jobs.begin(), jobs.end(), [](const auto& job) {
    return job->state == std::decay_t<decltype(*job)>::State::kDone;
  });
}

}  // namespace

// One submit_all() call. It sleeps on its own condition variable, woken when its last job is
// done, when the link changes state (wake_all), or when a driver leaving offers it the reading:
// a confirm wakes only the caller whose publishes it settles, not every caller.
struct Publisher::Waiter {
  std::condition_variable cv;
  std::size_t remaining = 0;   // jobs not done yet
  bool watch_running = false;  // timed out: woken when a job leaves kRunning
  bool offered = false;        // a driver left: this caller may read the socket now
  // start_many(): called (mutex_ held) when the last job is done and on wake_all().
  std::function<void()> on_ready;
};

Publisher::Publisher(const RabbitmqSettings& settings) : Link(settings, "publisher", 2) {
  start_link();
}

Publisher::~Publisher() {
  stop();
}

void Publisher::stop() {
  stop_link();
  std::lock_guard lock(mutex_);
  for (auto& job : queue_) complete(*job, Error{job->what() + " failed: the transport was closed"});
  queue_.clear();
  wake_all();
}

void Publisher::complete(Job& job, Status result) {
  if (job.state == Job::State::kDone) return;  // an abandoned job dropped again on stop()
  job.state = Job::State::kDone;
  job.result = std::move(result);
  if (job.waiter != nullptr && --job.waiter->remaining == 0) {
    job.waiter->cv.notify_one();
    if (job.waiter->on_ready) job.waiter->on_ready();
  }
}

void Publisher::left_running(Job& job) {
  if (job.waiter != nullptr && job.waiter->watch_running) job.waiter->cv.notify_one();
}

void Publisher::interrupt() {
  std::lock_guard lock(mutex_);
  interrupted_ = true;
  wake_all();
}

std::string Publisher::given_up_text() const {
  return "not confirmed: the transport is stopping and the connection to " + settings_.describe() +
         " is down" + (last_error_.empty() ? std::string() : " (" + last_error_ + ")") +
         "; not waiting for a reconnect";
}

void Publisher::wake_all() {
  changed_.notify_all();
  for (Waiter* waiter : waiters_) waiter->cv.notify_one();
  for (Waiter* waiter : started_) waiter->on_ready();
}

void Publisher::hand_over_reading() {
  for (Waiter* waiter : waiters_) {
    if (waiter->remaining > 0 && !waiter->offered) {
      waiter->offered = true;
      waiter->cv.notify_one();
      return;
    }
  }
  wakeup_.notify();
}

Status Publisher::submit(const std::shared_ptr<Job>& job) {
  return std::move(submit_all({job}).front());
}

bool Publisher::begin_all(const std::vector<std::shared_ptr<Job>>& jobs, Waiter& waiter,
                          bool started, std::vector<Status>& results) {
  waiter.remaining = jobs.size();
  std::lock_guard lock(mutex_);
  if (stopping_) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      results[i] = Error{jobs[i]->what() + " failed: the transport was closed"};
    return false;
  }
  if (given_up()) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      results[i] = Error{jobs[i]->what() + " failed: " + given_up_text()};
    return false;
  }
  for (const auto& job : jobs) {
    job->waiter = &waiter;
    queue_.push_back(job);
  }
  (started ? started_ : waiters_).push_back(&waiter);
  return true;
}

std::vector<Status> Publisher::submit_all(const std::vector<std::shared_ptr<Job>>& jobs) {
  std::vector<Status> results(jobs.size());
  Waiter waiter;
  if (!begin_all(jobs, waiter, /*started=*/false, results)) return results;
  const auto started = Clock::now();
  if (drive(jobs, started + settings_.confirm_timeout) == Drove::kBusy) wakeup_.notify();
  return finish_all(jobs, waiter, started);
}

std::vector<Status> Publisher::finish_all(const std::vector<std::shared_ptr<Job>>& jobs,
                                          Waiter& waiter, Clock::time_point started) {
  std::vector<Status> results(jobs.size());
  auto all_done = [&] { return every_job_done(jobs); };
  const auto deadline = started + settings_.confirm_timeout;
  std::unique_lock lock(mutex_);
  if (auto it = std::find(started_.begin(), started_.end(), &waiter); it != started_.end()) {
    // A started call comes to wait: from now on it is offered the reading like any caller.
    started_.erase(it);
    waiter.on_ready = nullptr;
    waiters_.push_back(&waiter);
  }
  if (!ever_connected_ && settings_.connect_timeout < settings_.confirm_timeout) {
    // The broker was never reached: a wrong URL or a broker that is down fails within
    // connect_timeout, naming the reason, rather than after the whole confirm_timeout.
    waiter.cv.wait_until(lock, started + settings_.connect_timeout,
                         [&] { return all_done() || ever_connected_ || stopping_ || given_up(); });
    if (!ever_connected_) {
      const std::string why = last_error_.empty()
                                  ? "cannot connect to RabbitMQ at " + settings_.describe()
                                  : last_error_;
      for (const auto& job : jobs) {
        if (job->state != Job::State::kQueued) continue;
        job->abandoned = true;  // not written: the link thread drops it
        complete(*job, Error{job->what() +
                             " failed: no connection within ASYA_RABBITMQ_CONNECT_TIMEOUT=" +
                             format_duration(settings_.connect_timeout) + ": " + why});
      }
    }
  }
  while (!all_done()) {
    if (waiter.offered) {
      // The driver before us left with publishes unconfirmed: read them (ours among them).
      waiter.offered = false;
      lock.unlock();
      Drove drove = drive(jobs, deadline);
      if (drove == Drove::kBusy) wakeup_.notify();
      lock.lock();
      continue;
    }
    if (!waiter.cv.wait_until(lock, deadline,
                              [&] { return all_done() || waiter.offered || given_up(); }))
      break;  // timed out
    if (given_up() && !waiter.offered) break;
  }
  if (waiter.offered) hand_over_reading();  // not taken: the next caller or the link thread
  waiter.offered = false;
  waiter.watch_running = true;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    Job& job = *jobs[i];
    if (job.state != Job::State::kDone) {
      // Timed out. The thread may be writing the body right now: wait for that to finish, so
      // the body is not used after we return.
      waiter.cv.wait(lock, [&] { return job.state != Job::State::kRunning; });
    }
    if (job.state == Job::State::kDone) {
      results[i] = std::move(job.result);
      continue;
    }
    job.abandoned = true;
    if (given_up()) {
      results[i] = Error{job.what() + " failed: " + given_up_text()};
      continue;
    }
    std::string state = job.state == Job::State::kQueued ? "not written" : "written, not confirmed";
    results[i] = Error{job.what() + " failed: no confirm from RabbitMQ at " + settings_.describe() +
                       " within ASYA_RABBITMQ_CONFIRM_TIMEOUT=" +
                       std::to_string(settings_.confirm_timeout.count()) + "ms (" + state + ")" +
                       (last_error_.empty() ? "" : "; last error: " + last_error_)};
  }
  for (const auto& job : jobs) job->waiter = nullptr;
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
  return results;
}

Publisher::Drove Publisher::drive(const std::vector<std::shared_ptr<Job>>& jobs,
                                  Clock::time_point deadline) {
  bool driving = false, first = true, readable = false;
  // `io_held`: unconfirmed_ may be read (it belongs to io_).
  auto leave = [&](Drove drove, bool io_held) {
    if (!driving) return drove;
    std::lock_guard lock(mutex_);
    --drivers_;
    if (drivers_ > 0) return drove;
    // Others' confirms may still come: one of them reads next (else the link thread).
    if (io_held && !unconfirmed_.empty() && connection_.is_open())
      hand_over_reading();
    else if (!io_held || !unconfirmed_.empty() || !queue_.empty())
      wakeup_.notify();
    return drove;
  };
  while (true) {
    std::unique_lock io(io_, std::try_to_lock);
    if (!io.owns_lock()) return leave(Drove::kBusy, false);
    if (!connection_.is_open()) return leave(Drove::kBusy, true);
    bool other_reads = false;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return leave(Drove::kBusy, true);
      if (!driving) {
        other_reads = drivers_ > 0;
        if (!other_reads) {
          ++drivers_;
          driving = true;
        }
      }
    }
    if (other_reads) {
      // Another caller reads the socket already: it settles these publishes too. They are
      // written now, while the connection is free, so neither it nor the link thread is woken
      // for that.
      turn(/*read=*/false);
      return connection_.is_open() ? Drove::kWritten : Drove::kBusy;
    }
    // First the queued publishes (this one's too) are written: their confirms cannot be there
    // yet, so the socket is only polled below; frames rabbitmq-c holds already are read now.
    turn(/*read=*/!first, readable);
    if (first && connection_.is_open() && holds_frames()) read_ready_frames();
    first = false;
    bool done;
    {
      std::lock_guard lock(mutex_);
      done = every_job_done(jobs);
    }
    if (done) return leave(Drove::kDone, true);
    if (!connection_.is_open()) return leave(Drove::kBusy, true);
    int fd = connection_.fd();
    io.unlock();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return leave(Drove::kBusy, false);
    // Bounded slices: the link thread may close and reopen the connection meanwhile.
    pollfd pfd{fd, POLLIN, 0};
    readable = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 200))) > 0;
  }
}

Result<std::shared_ptr<Publisher::Job>> Publisher::publish_job(const std::string& queue,
                                                               std::string_view body,
                                                               std::chrono::milliseconds delay,
                                                               std::uint32_t delivered) {
  auto job = std::make_shared<Job>();
  job->queue = queue;
  job->body = body;
  job->bucket = rabbitmq_delay_bucket(delay);
  job->delivered = delivered;
  if (job->bucket.count() > 0) {
    if (job->bucket.count() > 0xFFFFFFFFLL - 3'600'000LL) {
      return Error{"delay " + std::to_string(delay.count()) + "ms for queue \"" + queue +
                   "\" is too long: RabbitMQ accepts at most about 48 days"};
    }
  }
  return job;
}

Status Publisher::publish(const std::string& queue, std::string_view body,
                          std::chrono::milliseconds delay, std::uint32_t delivered) {
  auto job = publish_job(queue, body, delay, delivered);
  if (!job) return job.error();
  return submit(*job);
}

std::vector<Status> Publisher::publish_many(std::span<const OutgoingMessage> messages) {
  std::vector<Status> results(messages.size());
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::size_t> index;  // jobs[k] publishes messages[index[k]]
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto job = publish_job(std::string(messages[i].queue), messages[i].body, messages[i].delay, 0);
    if (!job) {
      results[i] = job.error();
      continue;
    }
    jobs.push_back(std::move(*job));
    index.push_back(i);
  }
  if (jobs.empty()) return results;
  std::vector<Status> submitted = submit_all(jobs);
  for (std::size_t k = 0; k < jobs.size(); ++k) results[index[k]] = std::move(submitted[k]);
  return results;
}

std::unique_ptr<Publisher::InFlight> Publisher::start_many(
    std::span<const OutgoingMessage> messages, std::function<void()> on_ready) {
  std::unique_ptr<InFlight> call(new InFlight());
  call->publisher_ = this;
  call->results_.resize(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto job = publish_job(std::string(messages[i].queue), messages[i].body, messages[i].delay, 0);
    if (!job) {
      call->results_[i] = job.error();
      continue;
    }
    call->jobs_.push_back(std::move(*job));
    call->index_.push_back(i);
  }
  call->started_ = Clock::now();
  if (call->jobs_.empty()) return call;
  auto waiter = std::make_unique<Waiter>();
  waiter->on_ready = std::move(on_ready);
  std::vector<Status> failed(call->jobs_.size());
  if (!begin_all(call->jobs_, *waiter, /*started=*/true, failed)) {
    for (std::size_t k = 0; k < failed.size(); ++k)
      call->results_[call->index_[k]] = std::move(failed[k]);
    return call;
  }
  call->waiter_ = std::move(waiter);
  write_started();
  return call;
}

void Publisher::write_started() {
  std::unique_lock io(io_, std::try_to_lock);
  if (!io.owns_lock()) {
    wakeup_.notify();  // the link thread writes them when the connection is free
    return;
  }
  if (connection_.is_open()) turn(/*read=*/false);
  bool wake;
  {
    std::lock_guard lock(mutex_);
    // Not written (connection down or closing, window full), or written with nobody to read
    // their confirms: a driver reads them on its way, the link thread when it watches the socket.
    wake = !connection_.is_open() || stopping_ || !queue_.empty() ||
           (drivers_ == 0 && !watching_ && !unconfirmed_.empty());
  }
  io.unlock();
  if (wake) wakeup_.notify();
}

Publisher::InFlight::~InFlight() {
  if (!finished_) (void)finish();
}

bool Publisher::InFlight::ready() {
  if (finished_ || !waiter_) return true;
  Publisher& p = *publisher_;
  std::lock_guard lock(p.mutex_);
  const auto now = Clock::now();
  return every_job_done(jobs_) || p.stopping_ || p.given_up() ||
         now >= started_ + p.settings_.confirm_timeout ||
         (!p.ever_connected_ && now >= started_ + p.settings_.connect_timeout);
}

std::vector<Status> Publisher::InFlight::finish() {
  if (finished_) return {};
  finished_ = true;
  if (waiter_) {
    std::vector<Status> done = publisher_->finish_all(jobs_, *waiter_, started_);
    for (std::size_t k = 0; k < done.size(); ++k) results_[index_[k]] = std::move(done[k]);
  }
  return std::move(results_);
}

Status Publisher::ensure_queue(const std::string& queue) {
  auto job = std::make_shared<Job>();
  job->description = "declaring queue \"" + queue + "\"";
  job->task = [this, queue](AmqpConnection& c) -> Status {
    if (!exchange_declared_) {
      if (Status st = c.declare_exchange(kControlChannel); !st) return st;
      exchange_declared_ = true;
    }
    if (Status st = c.declare_queue(kControlChannel, queue); !st) return st;
    declared_.insert(queue);
    return Status::Ok();
  };
  return submit(job);
}

Result<QueueStats> Publisher::inspect(const std::string& queue) {
  std::set<std::string> delays;
  {
    std::lock_guard lock(mutex_);
    if (auto it = delay_queues_.find(queue); it != delay_queues_.end()) delays = it->second;
  }
  QueueStats stats;
  auto job = std::make_shared<Job>();
  job->description = "inspecting queue \"" + queue + "\"";
  job->task = [&stats, &delays, queue](AmqpConnection& c) -> Status {
    auto counts = c.inspect_queue(kControlChannel, queue);
    if (!counts) return counts.error();
    stats.ready = counts->messages;
    stats.delayed = 0;
    for (const std::string& d : delays) {
      // A delay queue that expired (or was deleted) holds nothing: not an error.
      if (auto delayed = c.inspect_queue(kControlChannel, d))
        stats.delayed += delayed->messages;
      else if (!c.is_open())
        return delayed.error();
    }
    return Status::Ok();
  };
  if (Status st = submit(job); !st) return st.error();
  return stats;
}

Result<std::uint64_t> Publisher::purge(const std::string& queue) {
  std::uint64_t removed = 0;
  auto job = std::make_shared<Job>();
  job->description = "purging queue \"" + queue + "\"";
  job->task = [&removed, queue](AmqpConnection& c) -> Status {
    // A passive declare first: queue.purge of a missing queue is a 404 that reads like any
    // other channel error.
    if (auto counts = c.inspect_queue(kControlChannel, queue); !counts) {
      if (!c.is_open()) return counts.error();
      return Error{"queue_not_found: there is no queue \"" + queue + "\" on RabbitMQ at " +
                   c.settings().describe() + " (" + counts.error().message + ")"};
    }
    amqp_queue_purge_ok_t* ok = amqp_queue_purge(c.state(), kControlChannel, bytes_of(queue));
    if (Status st = c.check(amqp_get_rpc_reply(c.state()), kControlChannel,
                            "purging queue \"" + queue + "\"");
        !st)
      return st;
    removed = ok ? ok->message_count : 0;
    return Status::Ok();
  };
  if (Status st = submit(job); !st) return st.error();
  return removed;
}

Status Publisher::ping() {
  auto job = std::make_shared<Job>();
  job->description = "connecting";
  job->task = [](AmqpConnection&) { return Status::Ok(); };
  return submit(job);
}

Status Publisher::on_open() {
  amqp_confirm_select(connection_.state(), kPublishChannel);
  return connection_.check(amqp_get_rpc_reply(connection_.state()), kPublishChannel,
                           "enabling publisher confirms");
}

void Publisher::on_connected() {
  next_tag_ = 1;
  exchange_declared_ = false;
  declared_.clear();
  delay_declared_.clear();
}

void Publisher::on_lost(const std::string& why) {
  std::lock_guard lock(mutex_);
  spdlog::warn(
      "rabbitmq publisher: connection lost ({}); {} unconfirmed message(s) will be "
      "published again after reconnecting",
      why, unconfirmed_.size());
  // Unconfirmed messages go back to the front, in their original order.
  for (auto it = unconfirmed_.rbegin(); it != unconfirmed_.rend(); ++it) {
    if (it->second->abandoned) continue;
    it->second->state = Job::State::kQueued;
    queue_.push_front(it->second);
  }
  unconfirmed_.clear();
}

void Publisher::confirm(std::uint64_t tag, bool multiple, bool ok) {
  auto settle = [&](std::map<std::uint64_t, std::shared_ptr<Job>>::iterator it) {
    Job& job = *it->second;
    complete(job, ok ? Status::Ok()
                     : Status(Error{job.what() +
                                    " failed: RabbitMQ refused the message "
                                    "(basic.nack: its queue is full and rejects publishes "
                                    "(x-overflow=reject-publish), or an internal broker error)"}));
    return unconfirmed_.erase(it);
  };
  std::lock_guard lock(mutex_);
  if (multiple) {
    for (auto it = unconfirmed_.begin(); it != unconfirmed_.end() && it->first <= tag;)
      it = settle(it);
  } else if (auto it = unconfirmed_.find(tag); it != unconfirmed_.end()) {
    settle(it);
  }
}

void Publisher::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      auto* ack = static_cast<amqp_basic_ack_t*>(method.decoded);
      confirm(ack->delivery_tag, ack->multiple, true);
      break;
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* nack = static_cast<amqp_basic_nack_t*>(method.decoded);
      confirm(nack->delivery_tag, nack->multiple, false);
      break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      // Unroutable (no queue bound): the broker returns it before confirming it.
      auto* ret = static_cast<amqp_basic_return_t*>(method.decoded);
      std::string routing_key(view_of(ret->routing_key));
      amqp_message_t message;
      amqp_rpc_reply_t reply = amqp_read_message(connection_.state(), frame.channel, &message, 0);
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        connection_.set_broken();
        return;
      }
      std::uint64_t tag = 0;
      if (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        std::string_view id = view_of(message.properties.message_id);
        std::from_chars(id.data(), id.data() + id.size(), tag);
      }
      amqp_destroy_message(&message);
      std::lock_guard lock(mutex_);
      if (auto it = unconfirmed_.find(tag); it != unconfirmed_.end()) {
        Job& job = *it->second;
        declared_.erase(job.queue);
        delay_declared_.clear();
        complete(job, Error{job.what() +
                            " failed: RabbitMQ could not route it (no queue bound "
                            "to routing key \"" +
                            routing_key + "\" on exchange \"" + settings_.exchange +
                            "\"; was the queue deleted?)"});
        unconfirmed_.erase(it);
      }
      break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
      spdlog::warn("rabbitmq publisher: the broker blocked publishing (resource alarm)");
      break;
    default:
      break;
  }
}

bool Publisher::watch_socket() {
  // Nothing unconfirmed: nothing is expected from the broker but a close, found at the next tick.
  return drivers_ == 0 && !unconfirmed_.empty();
}

bool Publisher::has_pending() {
  return !queue_.empty() &&
         unconfirmed_.size() < static_cast<std::size_t>(settings_.confirm_window);
}

void Publisher::on_stopped() {
  for (auto& [tag, job] : unconfirmed_)
    complete(*job,
             Error{job->what() + " failed: the transport was closed before RabbitMQ confirmed it"});
  unconfirmed_.clear();
}

}  // namespace asya::transport::rabbitmq
