// The Publisher's writing side (publisher.hpp): declaring a publish's target and writing its
// frames, several publishes per system call (publish_frames.hpp), or with rabbitmq-c over TLS.
#include <charconv>
#include <utility>

#include "transport/rabbitmq/publisher.hpp"
#include "transport/rabbitmq/publisher_job.hpp"

namespace asya::transport::rabbitmq {

namespace {
using Clock = std::chrono::steady_clock;
using publisher_detail::kControlChannel;
using publisher_detail::kDelayRedeclare;
using publisher_detail::kPublishChannel;
}  // namespace

void Publisher::requeue(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(mutex_);
  job->state = Job::State::kQueued;
  queue_.push_front(job);
  left_running(*job);
}

void Publisher::finish(const std::shared_ptr<Job>& job, Status result) {
  std::lock_guard lock(mutex_);
  complete(*job, std::move(result));
}

Status Publisher::prepare_target(Job& job, std::string_view& routing_key,
                                 std::string_view& exchange) {
  if (!exchange_declared_) {
    if (Status st = connection_.declare_exchange(kControlChannel); !st) return st;
    exchange_declared_ = true;
  }
  if (!declared_.count(job.queue)) {
    if (Status st = connection_.declare_queue(kControlChannel, job.queue); !st) return st;
    declared_.insert(job.queue);
  }
  if (job.bucket.count() == 0) {
    exchange = settings_.exchange;
    routing_key = job.queue;
    return Status::Ok();
  }
  std::string delay_queue = rabbitmq_delay_queue_name(job.queue, job.bucket);
  auto it = delay_declared_.find(delay_queue);
  auto now = Clock::now();
  if (it == delay_declared_.end() || now - it->second > kDelayRedeclare) {
    if (Status st =
            connection_.declare_delay_queue(kControlChannel, delay_queue, job.queue, job.bucket);
        !st) {
      return st;
    }
    it = delay_declared_.insert_or_assign(delay_queue, now).first;
    std::lock_guard lock(mutex_);
    delay_queues_[job.queue].insert(delay_queue);
  }
  exchange = {};  // the default exchange routes by queue name
  routing_key = it->first;
  return Status::Ok();
}

void Publisher::run_job(const std::shared_ptr<Job>& job) {
  if (job->task) {
    flush_frames();  // publishes before it go first
    if (!connection_.is_open()) {
      requeue(job);
      return;
    }
    Status st = job->task(connection_);
    if (!st && !connection_.is_open()) {
      requeue(job);  // the connection failed under the task: run it again after reconnecting
      return;
    }
    finish(job, std::move(st));
    return;
  }
  std::string_view exchange, routing_key;
  if (Status st = prepare_target(*job, routing_key, exchange); !st) {
    if (!connection_.is_open()) {
      requeue(job);
      return;
    }
    finish(job, std::move(st));
    return;
  }
  const std::uint64_t tag = next_tag_;
  char message_id[24];
  auto id_end = std::to_chars(message_id, message_id + sizeof message_id, tag).ptr;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = 2;  // persistent
  props.message_id = amqp_bytes_t{static_cast<std::size_t>(id_end - message_id), message_id};
  amqp_table_entry_t count;
  if (job->delivered > 0) {
    count.key = amqp_cstring_bytes("x-asya-delivery-count");
    count.value.kind = AMQP_FIELD_KIND_I64;
    count.value.value.i64 = job->delivered;
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{1, &count};
  }
  // Over plain TCP the frames are encoded here and written with the others of this turn.
  if (!settings_.tls &&
      frames_.add(kPublishChannel, exchange, routing_key, /*mandatory=*/true, props, job->body,
                  static_cast<std::size_t>(amqp_get_frame_max(connection_.state())))) {
    ++next_tag_;
    framed_.emplace_back(tag, job);
    return;
  }
  flush_frames();  // a large body (several body frames) or TLS: rabbitmq-c writes it, in order
  if (!connection_.is_open()) {
    requeue(job);
    return;
  }
  int rc = amqp_basic_publish(connection_.state(), kPublishChannel, bytes_of(exchange),
                              bytes_of(routing_key), /*mandatory=*/1, /*immediate=*/0, &props,
                              bytes_of(job->body));
  if (rc != AMQP_STATUS_OK) {
    Status st = connection_.check_status(rc, "publishing to \"" + std::string(routing_key) + "\"");
    set_error(st.message());
    requeue(job);
    return;
  }
  ++next_tag_;
  std::lock_guard lock(mutex_);
  job->state = Job::State::kUnconfirmed;
  unconfirmed_.emplace(tag, job);
  left_running(*job);
}

void Publisher::flush_frames() {
  if (framed_.empty()) return;
  Status st = connection_.is_open()
                  ? frames_.write(connection_.fd(), settings_.step_timeout())
                  : Status(Error{"the connection was lost before the publishes were written"});
  frames_.clear();
  if (!st) {
    // Part may have been written: the stream is no longer whole. They go back to the front of
    // the queue, in order, and are published again on the next connection.
    connection_.set_broken();
    set_error("publishing on " + settings_.describe() + " failed: " + st.message() +
              (st.message().find("no progress") != std::string::npos
                   ? " (ASYA_RABBITMQ_RPC_TIMEOUT): is the broker frozen, blocking publishers (a "
                     "resource alarm), or the network to it cut?"
                   : ""));
    for (auto it = framed_.rbegin(); it != framed_.rend(); ++it) requeue(it->second);
    framed_.clear();
    return;
  }
  std::lock_guard lock(mutex_);
  for (auto& [tag, job] : framed_) {
    job->state = Job::State::kUnconfirmed;
    unconfirmed_.emplace(tag, job);
    left_running(*job);
  }
  framed_.clear();
}

void Publisher::write_pending() {
  // Over TLS rabbitmq-c sends each of a publish's three frames alone: several publishes at once
  // are corked, so that they leave in as few TCP segments as fit and the broker reads them
  // together. Over plain TCP they are written together already (flush_frames).
  bool corked = false;
  if (settings_.tls) {
    std::lock_guard lock(mutex_);
    if (queue_.size() > 1 && connection_.is_open()) corked = connection_.set_cork(true);
  }
  // What the confirm window allows.
  while (connection_.is_open() && unconfirmed_.size() + framed_.size() <
                                      static_cast<std::size_t>(settings_.confirm_window)) {
    std::shared_ptr<Job> job;
    {
      std::lock_guard lock(mutex_);
      while (!queue_.empty() && queue_.front()->abandoned) queue_.pop_front();
      if (queue_.empty() || stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
      job->state = Job::State::kRunning;
    }
    run_job(job);
  }
  flush_frames();
  if (corked && connection_.is_open()) connection_.set_cork(false);  // sends the rest now
}

}  // namespace asya::transport::rabbitmq
