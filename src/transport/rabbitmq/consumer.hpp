// The consuming side of the RabbitMQ transport: one connection (a Link: its thread reads the
// deliveries), channel 1 with basic.qos(prefetch) and one consumer (manual ack) per queue that
// receive() was called for.
//
// The connection is opened on the first receive(), so a process that only sends uses one
// connection. Deliveries pushed by the broker wait in a per-queue buffer until receive() hands them
// out. Every delivery (buffered or handed out) stays unacked at the broker until ack(). A receipt
// is
// "<connection generation>:<delivery tag>"; after a reconnect the old deliveries are redelivered
// by the broker, so acks for them fail ("stale") without sending anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "transport/rabbitmq/amqp_connection.hpp"
#include "transport/rabbitmq/link.hpp"
#include "transport/transport.hpp"

namespace asya::transport::rabbitmq {

// The acks of `tags` (sorted, distinct, of the current connection) written at once: every tag
// below `floor` (the lowest delivery tag the broker still holds for this consumer that must not
// be acked now) is acked by one basic.ack(multiple) of the largest of them when there are two or
// more; the rest one by one. Returns (multiple tag or 0, the tags to ack singly).
std::pair<std::uint64_t, std::vector<std::uint64_t>> coalesce_acks(
    const std::vector<std::uint64_t>& tags, std::uint64_t floor);

// How long an ack may wait to be written with others (see plan_acks).
constexpr auto kAckHold = std::chrono::milliseconds(50);

// Which settled acks to write now (plan_acks). Each basic.ack is a command in a quorum queue's
// log: a few acks covering many messages cost the broker far less than one per message.
struct AckPlan {
  std::uint64_t multiple = 0;          // basic.ack(multiple) of this tag, 0 for none
  std::vector<std::uint64_t> singles;  // basic.ack of each alone
};

// `settled`: the tags acked by callers and not written yet, each with when it was acked;
// `floor`: the lowest tag still held and not settled; `others_held`: whether any is. Writes
// nothing while other deliveries are held, fewer than a quarter of `prefetch` are settled and
// none waited 50 ms (the next settle or the link thread's timer writes them): then those below
// the floor as one basic.ack(multiple) (coalesce_acks), and those above it once half the
// prefetch is settled or each after 50 ms. `all`: every one now (closing).
AckPlan plan_acks(const std::map<std::uint64_t, std::chrono::steady_clock::time_point>& settled,
                  std::uint64_t floor, int prefetch, bool others_held,
                  std::chrono::steady_clock::time_point now, bool all);

class Consumer final : public Link {
 public:
  explicit Consumer(const RabbitmqSettings& settings);
  ~Consumer() override;

  // Starts consuming `queue` on first use, then waits up to `wait` for deliveries. Right after a
  // consumer starts on a queue that holds messages, waits (up to 2s) for the first of them even
  // when `wait` is shorter, so "receive what is there" works on a push-based broker. Fails when
  // not connected at the end of the wait, or when the queue cannot be consumed.
  Result<std::vector<Delivery>> receive(const std::string& queue, std::size_t max_messages,
                                        std::chrono::milliseconds wait);

  // Checks that `delivery` was handed out by this consumer on the current connection and is not
  // acked yet.
  Status check(const Delivery& delivery);

  // check() after reading what the broker sent meanwhile (when the connection is free, and unless
  // the socket was found empty in the last 0.5 ms: the calls for a batch of messages share one
  // look): a connection the broker closed or reset is found here at once, not at the link
  // thread's next tick, so a delivery lost with it is reported lost before its outputs are sent.
  bool holds(const Delivery& delivery);

  // Settles `delivery`; its basic.ack is written when plan_acks says (at once for a lone
  // message; with others held, together with theirs, at most 50 ms later), from the calling
  // thread when the connection is free, else by the link thread (always before the connection
  // closes on stop). Never waits for the broker: AMQP has no answer to an ack. An ack that a
  // connection loss keeps from the broker fails nothing: the broker delivers the message again.
  // Fails (writing nothing) for a delivery already settled or of a lost connection.
  Status ack(const Delivery& delivery);

  // ack() of several deliveries. One status per delivery.
  std::vector<Status> ack_many(std::span<const Delivery* const> deliveries);

  // Returns `delivery` to its queue with basic.nack(requeue) once `delay` has passed (up to a
  // second late), for a nack that could not publish its copy: a delivery left unacked on a live
  // connection would be held until that connection closes, taking a prefetch slot for good. The
  // broker counts the return (redelivered flag, x-delivery-count). Never waits; fails when the
  // delivery is no longer held (the broker delivers it again anyway).
  Status requeue(const Delivery& delivery, std::chrono::milliseconds delay);

  // Deliveries of `queue` held unacked by this consumer (buffered or handed out).
  std::uint64_t in_flight(const std::string& queue);

  // Stops consuming (basic.cancel) and hands out every buffered delivery, so the caller can
  // return them without counting a delivery (see RabbitmqTransport::close).
  std::vector<Delivery> cancel_and_drain(std::chrono::milliseconds timeout);

  // Wakes receive() callers; later receive() calls return empty at once. Cancels the consumers
  // (in the background), so nothing more is pushed to this process.
  void interrupt();
  // Sends the acks still queued, then closes the connection (the broker requeues the rest).
  void stop();

 private:
  struct PendingRequeue {
    std::uint64_t tag = 0;  // on the current connection (the list is cleared when it is lost)
    std::string queue;
    std::chrono::steady_clock::time_point due;
  };
  struct QueueState {
    std::deque<std::pair<std::uint64_t, Delivery>> buffer;  // (delivery tag, delivery)
    bool wanted = false;                                    // receive() asked for it
    bool consuming = false;      // basic.consume-ok on the current connection
    bool settling = false;       // consuming; messages were ready and not all arrived yet
    std::uint64_t expected = 0;  // deliveries still expected from what was ready at consume time
    std::string error;           // consuming failed (reported once by receive)
    // receive() callers of this queue wait here for a delivery: one is woken when the buffer
    // gets its first delivery, and a caller that leaves some behind wakes the next, so a
    // delivery wakes one caller, not every worker (wake_all wakes them all).
    std::condition_variable arrived;
    int waiting = 0;         // callers waiting on `arrived`
    int settle_waiting = 0;  // callers in the start-up wait (on changed_)
  };

  // Link hooks.
  bool wants_connection() override;
  Status on_open() override;
  void on_connected() override;
  void on_lost(const std::string& why) override;
  void write_pending() override;
  void handle_frame(const amqp_frame_t& frame) override;
  bool has_pending() override;
  // While a caller waits, or while nothing is buffered (the next delivery is read as it comes,
  // so a caller about to wait need not wake this thread first). Not while deliveries are
  // buffered: the callers read what comes next themselves when they take those.
  bool watch_socket() override;
  void wake_all() override;
  void on_stop() override;
  void on_stopped() override;

  void start_consumers();
  // Writes the acks of settled_ that may go now: those below every delivery still held as one
  // basic.ack(multiple) (coalesce_acks), the others alone once held kAckHold (`all`: at once).
  void send_acks(bool all);
  std::chrono::milliseconds idle_wait() override;
  void send_due_requeues();
  void on_deliver(const amqp_basic_deliver_t& deliver, amqp_channel_t channel);
  // receive()'s wait for a delivery (lock holds mutex_): when nobody reads the socket, this
  // caller reads it itself (read_until), else it waits on q.arrived. Returns when ready() or at
  // the deadline.
  void wait_for_delivery(std::unique_lock<std::mutex>& lock, QueueState& q,
                         std::chrono::steady_clock::time_point deadline,
                         const std::function<bool()>& ready);
  // The reading caller's loop: reads what is ready, then polls the socket and reader_wakeup_
  // (without mutex_) until ready(), the deadline, or the connection is lost or stopping.
  void read_until(std::unique_lock<std::mutex>& lock,
                  std::chrono::steady_clock::time_point deadline,
                  const std::function<bool()>& ready);

  // Guarded by mutex_.
  std::map<std::string, QueueState, std::less<>> queues_;
  std::map<std::uint64_t, std::string> unacked_;  // tag -> queue, current connection
  std::set<std::uint64_t> handed_out_;            // tags given to receive() callers
  // Tags acked by a caller (gone from unacked_) whose basic.ack is not written yet, and since
  // when. Written by whoever holds io_ next; one above a delivery still held waits for it (up to
  // kAckHold), so that a single basic.ack(multiple) covers both.
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> settled_;
  std::vector<PendingRequeue> requeues_;  // for the link thread, once due
  std::uint64_t generation_ = 1;
  bool interrupted_ = false;
  bool cancel_requested_ = false;
  bool cancelled_ = false;
  int waiting_ = 0;  // receive() callers waiting for a delivery
  // The receive() caller reading the socket itself (drivers_ is 1 then), and how to wake it from
  // poll(): a delivery read by another thread, wake_all().
  std::thread::id reader_;
  Wakeup reader_wakeup_;
};

}  // namespace asya::transport::rabbitmq
