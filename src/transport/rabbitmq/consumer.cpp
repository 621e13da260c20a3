#include "transport/rabbitmq/consumer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace asya::transport::rabbitmq {

namespace {

using Clock = std::chrono::steady_clock;
constexpr amqp_channel_t kConsumeChannel = 1;
constexpr amqp_channel_t kControlChannel = 2;
constexpr auto kSettleWait = std::chrono::milliseconds(2000);
// holds() reads the socket unless it was found empty this recently.
constexpr auto kHoldsLook = std::chrono::microseconds(500);

// An integer header value of any AMQP integer kind; nullopt when absent or not an integer.
std::optional<std::int64_t> integer_header(const amqp_table_t& table, std::string_view key) {
  for (int i = 0; i < table.num_entries; ++i) {
    const amqp_table_entry_t& e = table.entries[i];
    if (view_of(e.key) != key) continue;
    const amqp_field_value_t& v = e.value;
    switch (v.kind) {
      case AMQP_FIELD_KIND_I8:
        return v.value.i8;
      case AMQP_FIELD_KIND_U8:
        return v.value.u8;
      case AMQP_FIELD_KIND_I16:
        return v.value.i16;
      case AMQP_FIELD_KIND_U16:
        return v.value.u16;
      case AMQP_FIELD_KIND_I32:
        return v.value.i32;
      case AMQP_FIELD_KIND_U32:
        return v.value.u32;
      case AMQP_FIELD_KIND_I64:
        return v.value.i64;
      case AMQP_FIELD_KIND_U64:
        return static_cast<std::int64_t>(v.value.u64);
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string receipt_of(std::uint64_t generation, std::uint64_t tag) {
  return std::to_string(generation) + ":" + std::to_string(tag);
}

bool parse_receipt(std::string_view receipt, std::uint64_t& generation, std::uint64_t& tag) {
  auto colon = receipt.find(':');
  if (colon == std::string_view::npos) return false;
  auto a = std::from_chars(receipt.data(), receipt.data() + colon, generation);
  auto b = std::from_chars(receipt.data() + colon + 1, receipt.data() + receipt.size(), tag);
  return a.ec == std::errc() && b.ec == std::errc() && b.ptr == receipt.data() + receipt.size();
}

}  // namespace

Consumer::Consumer(const RabbitmqSettings& settings) : Link(settings, "consumer", 2) {
  start_link();
}

Consumer::~Consumer() {
  stop();
}

void Consumer::interrupt() {
  {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    // No receive() will take more: stop the broker from pushing (and this process from holding)
    // messages other replicas could process. What is buffered already is returned by close().
    cancel_requested_ = true;
    // Not connected: no new connection is of use any more (deliveries of the lost one cannot be
    // acked on it), and a reconnect stuck on a broker that does not answer holds the connection
    // that a receive() caller may be waiting to read: cut it short.
    if (!connected_) connection_.interrupt();
    wake_all();
  }
  wakeup_.notify();
}

bool Consumer::watch_socket() {
  if (drivers_ > 0) return false;  // a receive() caller reads it (read_until)
  if (waiting_ > 0) return true;
  for (const auto& [name, q] : queues_)
    if (!q.buffer.empty()) return false;
  return true;
}

void Consumer::wake_all() {
  changed_.notify_all();
  for (auto& [name, q] : queues_) q.arrived.notify_all();
  if (drivers_ > 0) reader_wakeup_.notify();
}

void Consumer::stop() {
  {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
  }
  stop_link();
}

Result<std::vector<Delivery>> Consumer::receive(const std::string& queue, std::size_t max_messages,
                                                std::chrono::milliseconds wait) {
  // Deliveries pushed since the last call are read here, by the caller, unless the link thread
  // watches the socket (it reads them as they come): a steady stream of deliveries crosses no
  // thread boundary.
  // A caller that finds nothing buffered and would read the socket itself while it waits
  // (wait_for_delivery) skips this read: its poll() there finds what came as quickly, and an
  // empty socket costs one poll() instead of two.
  bool read_first;
  {
    std::lock_guard lock(mutex_);
    auto it = queues_.find(queue);
    const bool reads_while_waiting = wait.count() > 0 && drivers_ == 0 && connected_ &&
                                     !interrupted_ && it != queues_.end() && it->second.consuming &&
                                     !it->second.settling && it->second.buffer.empty();
    read_first = !watching_ && !reads_while_waiting;
  }
  if (read_first) read_if_free();
  std::unique_lock lock(mutex_);
  std::vector<Delivery> out;
  if (interrupted_ || stopping_) return out;
  QueueState& q = queues_[queue];
  if (!q.wanted) {
    q.wanted = true;
    wakeup_.notify();
  }
  auto start = Clock::now();
  auto ready = [&] { return interrupted_ || !q.buffer.empty() || !q.error.empty(); };
  if (!ready()) {
    ++waiting_;
    ++q.waiting;
    wait_for_delivery(lock, q, start + wait, ready);
    --q.waiting;
    --waiting_;
  }
  if (!interrupted_ && q.error.empty() && q.buffer.size() < max_messages &&
      !(connected_ && q.consuming && !q.settling)) {
    // A consumer that just started (or is starting) on a queue holding messages has not been
    // pushed all of them yet: give it a moment, so a short receive still sees what is there.
    ++waiting_;
    ++q.settle_waiting;
    if (!watching_) wakeup_.notify();
    changed_.wait_until(lock, start + std::max(wait, kSettleWait), [&] {
      return interrupted_ || !q.error.empty() || q.buffer.size() >= max_messages ||
             (connected_ && q.consuming && !q.settling) ||
             (!connected_ && !last_error_.empty());  // broker unreachable
    });
    --q.settle_waiting;
    --waiting_;
    q.settling = false;
  }
  if (!q.error.empty()) {
    std::string error = std::move(q.error);
    q.error.clear();
    q.wanted = false;  // the next receive() tries again
    return Error{error};
  }
  if (q.buffer.empty()) {
    if (!connected_ && !interrupted_) {
      return Error{"receive from queue \"" + queue + "\" failed: not connected to RabbitMQ at " +
                   settings_.describe() + " (reconnecting)" +
                   (last_error_.empty() ? "" : ": " + last_error_)};
    }
    return out;
  }
  while (!q.buffer.empty() && out.size() < max_messages) {
    handed_out_.insert(q.buffer.front().first);
    out.push_back(std::move(q.buffer.front().second));
    q.buffer.pop_front();
  }
  if (!q.buffer.empty() && q.waiting > 0) q.arrived.notify_one();  // the rest: the next caller
  return out;
}

Status Consumer::check(const Delivery& delivery) {
  std::uint64_t generation = 0, tag = 0;
  if (!parse_receipt(delivery.receipt, generation, tag)) {
    return Error{"receipt \"" + delivery.receipt + "\" of a message from queue \"" +
                 delivery.queue + "\" is not a RabbitMQ receipt"};
  }
  std::lock_guard lock(mutex_);
  if (generation != generation_) {
    return Error{"message from queue \"" + delivery.queue +
                 "\" was received on a RabbitMQ connection that has since been lost; the broker "
                 "delivers it again (nothing lost)"};
  }
  if (!handed_out_.count(tag)) {
    return Error{"message from queue \"" + delivery.queue + "\" (delivery tag " +
                 std::to_string(tag) + ") was already acked or nacked"};
  }
  return Status::Ok();
}

bool Consumer::holds(const Delivery& delivery) {
  // The socket is read unless it was found empty a moment ago: a settling thread asks this for
  // every message of a batch in a row, and one look serves them all.
  const auto now = Clock::now().time_since_epoch().count();
  if (now - drained_at_.load(std::memory_order_relaxed) >
      std::chrono::nanoseconds(kHoldsLook).count())
    read_if_free();
  {
    std::unique_lock io(io_, std::try_to_lock);
    // Broken and not yet replaced: the broker requeued everything this connection held.
    if (io.owns_lock() && connection_.state() != nullptr && !connection_.is_open()) return false;
  }
  return check(delivery).ok();
}

Status Consumer::ack(const Delivery& delivery) {
  const Delivery* one = &delivery;
  return std::move(ack_many(std::span<const Delivery* const>(&one, 1)).front());
}

std::vector<Status> Consumer::ack_many(std::span<const Delivery* const> deliveries) {
  std::vector<Status> results(deliveries.size());
  bool any = false, held_before = false;
  {
    std::lock_guard lock(mutex_);
    held_before = !settled_.empty();
    const auto now = Clock::now();
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
      const Delivery& delivery = *deliveries[i];
      std::uint64_t generation = 0, tag = 0;
      if (!parse_receipt(delivery.receipt, generation, tag)) {
        results[i] = Error{"receipt \"" + delivery.receipt + "\" of a message from queue \"" +
                           delivery.queue + "\" is not a RabbitMQ receipt"};
        continue;
      }
      if (generation != generation_) {
        results[i] = Error{"message from queue \"" + delivery.queue +
                           "\" was received on a RabbitMQ connection that has since been lost; "
                           "the broker delivers it again (nothing lost)"};
        continue;
      }
      if (!handed_out_.erase(tag)) {
        results[i] = Error{"message from queue \"" + delivery.queue + "\" (delivery tag " +
                           std::to_string(tag) + ") was already acked or nacked"};
        continue;
      }
      unacked_.erase(tag);
      settled_.emplace(tag, now);
      any = true;
    }
  }
  if (!any) return results;
  // Written from this thread when the connection is free, else by the link thread before its
  // next read; acks held for a lower delivery still in progress are the link thread's to write
  // once due, so it is woken when the first is held.
  std::unique_lock io(io_, std::try_to_lock);
  if (io.owns_lock() && connection_.is_open()) {
    send_acks(false);
    bool wake = !connection_.is_open();  // the link thread reconnects
    {
      std::lock_guard lock(mutex_);
      wake = wake || (!held_before && !settled_.empty());
    }
    if (wake) wakeup_.notify();
    return results;
  }
  if (io.owns_lock()) io.unlock();
  wakeup_.notify();
  return results;
}

Status Consumer::requeue(const Delivery& delivery, std::chrono::milliseconds delay) {
  if (Status st = check(delivery); !st) return st;
  std::uint64_t generation = 0, tag = 0;
  parse_receipt(delivery.receipt, generation, tag);
  {
    std::lock_guard lock(mutex_);
    if (generation != generation_ || !handed_out_.erase(tag)) {
      return Error{"message from queue \"" + delivery.queue +
                   "\" was already acked, nacked or redelivered"};
    }
    // Stays in unacked_ (the broker still counts it in flight) until the nack is written.
    requeues_.push_back(PendingRequeue{tag, delivery.queue, Clock::now() + delay});
  }
  wakeup_.notify();
  return Status::Ok();
}

std::uint64_t Consumer::in_flight(const std::string& queue) {
  std::lock_guard lock(mutex_);
  return static_cast<std::uint64_t>(std::count_if(
      unacked_.begin(), unacked_.end(), [&](const auto& entry) { return entry.second == queue; }));
}

std::vector<Delivery> Consumer::cancel_and_drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::vector<Delivery> out;
  if (stopping_ || !connected_) return out;
  cancel_requested_ = true;
  wakeup_.notify();
  changed_.wait_until(lock, Clock::now() + timeout, [&] { return cancelled_ || !connected_; });
  if (!connected_) return out;
  for (auto& [name, q] : queues_) {
    for (auto& [tag, delivery] : q.buffer) {
      handed_out_.insert(tag);
      out.push_back(std::move(delivery));
    }
    q.buffer.clear();
    q.wanted = false;
  }
  return out;
}

bool Consumer::wants_connection() {
  // Connect on the first receive(): a process that only sends never opens this connection.
  bool needed = connected_ || !last_error_.empty();
  for (auto& [name, q] : queues_) needed = needed || q.wanted;
  return needed;
}

Status Consumer::on_open() {
  amqp_basic_qos(connection_.state(), kConsumeChannel, 0,
                 static_cast<std::uint16_t>(settings_.prefetch), 0);
  Status st = connection_.check(amqp_get_rpc_reply(connection_.state()), kConsumeChannel,
                                "setting the prefetch (basic.qos)");
  if (st) st = connection_.declare_exchange(kControlChannel);
  return st;
}

void Consumer::on_connected() {
  cancelled_ = false;
}

void Consumer::on_lost(const std::string& why) {
  std::lock_guard lock(mutex_);
  spdlog::warn(
      "rabbitmq consumer: connection lost ({}); {} unacked delivery(ies) will be "
      "redelivered by the broker",
      why, unacked_.size());
  ++generation_;
  for (auto& [name, q] : queues_) {
    q.buffer.clear();
    q.consuming = false;
    q.settling = false;
  }
  unacked_.clear();
  handed_out_.clear();
  settled_.clear();  // of the lost connection: the broker delivers those messages again
  requeues_.clear();
}

void Consumer::start_consumers() {
  std::vector<std::string> wanted;
  bool cancel = false;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, q] : queues_)
      if (q.wanted && !q.consuming && q.error.empty()) wanted.push_back(name);
    cancel = cancel_requested_;
    if (cancel && cancelled_) return;  // closing: never consume again
  }
  if (cancel) {
    std::vector<std::string> consuming;
    {
      std::lock_guard lock(mutex_);
      for (auto& [name, q] : queues_)
        if (q.consuming) consuming.push_back(name);
    }
    for (const std::string& name : consuming) {
      amqp_basic_cancel(connection_.state(), kConsumeChannel, bytes_of(name));
      if (!connection_.check(amqp_get_rpc_reply(connection_.state()), kConsumeChannel,
                             "cancelling the consumer of \"" + name + "\"")) {
        connection_.set_broken();
        return;
      }
    }
    // Deliveries that arrived before the cancel-ok were queued by rabbitmq-c: buffer them first.
    read_ready_frames();
    std::lock_guard lock(mutex_);
    for (auto& [name, q] : queues_) q.consuming = false;
    cancelled_ = true;
    wake_all();
    return;
  }
  for (const std::string& name : wanted) {
    // Declared on the control channel: a declaration error there leaves the consumers alone.
    Status st = connection_.declare_queue(kControlChannel, name);
    std::uint64_t ready = 0;
    if (st) {
      if (auto counts = connection_.inspect_queue(kControlChannel, name)) ready = counts->messages;
    }
    if (st) {
      amqp_basic_consume(connection_.state(), kConsumeChannel, bytes_of(name), bytes_of(name),
                         /*no_local=*/0, /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
      st = connection_.check(amqp_get_rpc_reply(connection_.state()), kConsumeChannel,
                             "consuming from queue \"" + name + "\"");
      // A consume failure closed the consume channel: all consumers restart.
      if (!st) connection_.set_broken();
    }
    if (!connection_.is_open()) {
      if (!st) set_error(st.message());  // why the link thread reconnects (not an older error)
      return;
    }
    std::lock_guard lock(mutex_);
    QueueState& q = queues_[name];
    if (st) {
      q.consuming = true;
      // The broker pushes what is ready (up to the prefetch) right away.
      q.expected = std::min<std::uint64_t>(ready, static_cast<std::uint64_t>(settings_.prefetch));
      q.settling = q.expected > 0;
    } else {
      q.error = st.message();
    }
    wake_all();
  }
}

void Consumer::send_acks(bool all) {
  AckPlan plan;
  {
    std::lock_guard lock(mutex_);
    if (settled_.empty()) return;
    // Every delivery this consumer holds and has not settled (buffered, handed out, waiting for
    // a requeue) is in unacked_; every settled one not written yet is in settled_. So all tags
    // below the lowest of unacked_ that the broker still holds are in settled_.
    const std::uint64_t floor = unacked_.empty() ? UINT64_MAX : unacked_.begin()->first;
    plan = plan_acks(settled_, floor, settings_.prefetch, !unacked_.empty(), Clock::now(), all);
    if (plan.multiple != 0) settled_.erase(settled_.begin(), settled_.upper_bound(plan.multiple));
    for (std::uint64_t tag : plan.singles) settled_.erase(tag);
  }
  const std::uint64_t multiple = plan.multiple;
  const std::vector<std::uint64_t>& singles = plan.singles;
  auto write = [&](std::uint64_t tag, bool all_below) {
    if (!connection_.is_open()) return false;
    int rc = amqp_basic_ack(connection_.state(), kConsumeChannel, tag, all_below ? 1 : 0);
    if (Status st = connection_.check_status(rc, "acking messages"); !st) {
      set_error(st.message());
      return false;
    }
    return true;
  };
  bool ok = multiple == 0 || write(multiple, true);
  for (std::uint64_t tag : singles) ok = ok && write(tag, false);
}

std::chrono::milliseconds Consumer::idle_wait() {
  if (settled_.empty()) return Link::idle_wait();
  // The oldest held ack falls due then (a millisecond late at most).
  auto due = settled_.begin()->second;
  for (const auto& [tag, when] : settled_) due = std::min(due, when);
  auto left = std::chrono::ceil<std::chrono::milliseconds>(due + kAckHold - Clock::now());
  return std::clamp(left, std::chrono::milliseconds(0), Link::idle_wait());
}

void Consumer::send_due_requeues() {
  std::vector<PendingRequeue> due;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    auto split = std::partition(requeues_.begin(), requeues_.end(),
                                [&](const PendingRequeue& r) { return r.due > now; });
    due.assign(std::make_move_iterator(split), std::make_move_iterator(requeues_.end()));
    requeues_.erase(split, requeues_.end());
    for (const PendingRequeue& r : due) unacked_.erase(r.tag);
  }
  for (const PendingRequeue& r : due) {
    int rc = amqp_basic_nack(connection_.state(), kConsumeChannel, r.tag, /*multiple=*/0,
                             /*requeue=*/1);
    if (Status st = connection_.check_status(rc, "requeueing a message from \"" + r.queue + "\"");
        !st) {
      set_error(st.message());  // the connection is lost: the broker requeues it anyway
      return;
    }
  }
}

void Consumer::write_pending() {
  start_consumers();
  // Deliveries that came while start_consumers() waited for its replies are held by rabbitmq-c,
  // where a caller polling the socket (read_until) does not see them.
  if (connection_.is_open() && amqp_frames_enqueued(connection_.state())) {
    std::lock_guard lock(mutex_);
    if (drivers_ > 0) reader_wakeup_.notify();
  }
  // Requeues first: a nack written lifts the floor of the acks held above it.
  if (connection_.is_open()) send_due_requeues();
  if (connection_.is_open()) send_acks(false);
}

bool Consumer::has_pending() {
  // Acks are not pending work here: each turn writes those that may go (send_acks) and the
  // others fall due by the link thread's timer (idle_wait).
  bool more = cancel_requested_ && !cancelled_;
  const auto now = Clock::now();
  for (const PendingRequeue& r : requeues_)
    if (r.due <= now) more = true;
  if (!cancel_requested_)
    for (auto& [name, q] : queues_)
      if (q.wanted && !q.consuming && q.error.empty()) more = true;
  return more;
}

void Consumer::on_stop() {
  // Acks not written yet (held ones too) go out before the connection closes: the broker would
  // deliver those messages again otherwise.
  if (connection_.is_open()) send_acks(/*all=*/true);
}

void Consumer::on_stopped() {
  settled_.clear();
  requeues_.clear();  // the connection closed: the broker requeued them
}

void Consumer::on_deliver(const amqp_basic_deliver_t& deliver, amqp_channel_t channel) {
  const std::uint64_t tag = deliver.delivery_tag;
  std::string queue(view_of(deliver.consumer_tag));
  const bool redelivered = deliver.redelivered != 0;
  amqp_message_t message;
  amqp_rpc_reply_t reply = amqp_read_message(connection_.state(), channel, &message, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    std::lock_guard lock(mutex_);
    last_error_ = "reading a message from \"" + queue + "\" failed: " + reply_text(reply);
    connection_.set_broken();
    return;
  }
  std::int64_t prior = 0, returns = redelivered ? 1 : 0;
  if (message.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
    const amqp_table_t& headers = message.properties.headers;
    if (auto v = integer_header(headers, "x-asya-delivery-count"))
      prior = std::max<std::int64_t>(*v, 0);
    // Quorum queues count every return of a message exactly.
    if (auto v = integer_header(headers, "x-delivery-count"))
      returns = std::max<std::int64_t>(*v, 0);
  }
  Delivery delivery;
  delivery.queue = queue;
  delivery.body.assign(static_cast<const char*>(message.body.bytes), message.body.len);
  delivery.delivery_count =
      static_cast<std::uint32_t>(std::min<std::int64_t>(prior + returns + 1, UINT32_MAX));
  amqp_destroy_message(&message);
  std::lock_guard lock(mutex_);
  delivery.receipt = receipt_of(generation_, tag);
  unacked_[tag] = queue;
  QueueState& q = queues_[queue];
  if (q.expected > 0) --q.expected;
  q.settling = q.expected > 0;
  q.buffer.emplace_back(tag, std::move(delivery));
  // The first delivery in an empty buffer wakes one waiting caller; one that arrives while the
  // buffer holds some is taken by that caller or passed on by it (receive).
  if (q.waiting > 0 && q.buffer.size() == 1) q.arrived.notify_one();
  if (q.settle_waiting > 0) changed_.notify_all();
  // Read by another thread (the link thread, holds()) while a caller waits in read_until(): the
  // socket will not wake that caller for it.
  if (drivers_ > 0 && reader_ != std::this_thread::get_id()) reader_wakeup_.notify();
}

void Consumer::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_DELIVER_METHOD:
      on_deliver(*static_cast<amqp_basic_deliver_t*>(method.decoded), frame.channel);
      break;
    case AMQP_BASIC_CANCEL_METHOD: {
      // The broker cancelled a consumer (its queue was deleted): consume again (redeclaring it).
      auto* cancel = static_cast<amqp_basic_cancel_t*>(method.decoded);
      std::lock_guard lock(mutex_);
      auto it = queues_.find(view_of(cancel->consumer_tag));
      if (it != queues_.end()) it->second.consuming = false;
      break;
    }
    default:
      break;
  }
}

}  // namespace asya::transport::rabbitmq
