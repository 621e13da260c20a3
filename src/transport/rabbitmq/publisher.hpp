// The publishing side of the RabbitMQ transport: one connection (a Link). Channel 1 is in
// confirm mode and carries every publish; channel 2 carries declarations and passive
// inspections, so a "not found" there cannot disturb unconfirmed publishes.
//
// A publish is written by the calling thread when the connection is free, and that thread then
// reads the socket until its confirm arrives (confirms for others are settled on the way);
// otherwise it is queued for the link thread. At most one thread reads at a time: a caller that
// finds another reading writes its own publishes (when the connection is free) and sleeps on a
// condition variable of its own, woken only when its last confirm is read; a reader whose own
// publishes are confirmed hands the reading to one such waiting caller (the link thread when none
// waits). So a confirm wakes the caller it is for and no other thread. Publishes are windowed: up
// to confirm_window messages are written before their confirms arrive, so concurrent send() calls
// share round trips. A publish is retried on the next connection when the connection fails before
// its confirm; a caller that gives up (confirm_timeout) gets an error, and a message not written
// yet is then dropped from the queue.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "transport/rabbitmq/amqp_connection.hpp"
#include "transport/rabbitmq/link.hpp"
#include "transport/rabbitmq/publish_frames.hpp"
#include "transport/transport.hpp"

namespace asya::transport::rabbitmq {

class Publisher final : public Link {
  struct Job;
  struct Waiter;

 public:
  explicit Publisher(const RabbitmqSettings& settings);
  ~Publisher() override;

  // Publishes `body` persistent to `queue` (declaring it first if this connection has not), or
  // with a non-zero `delay` to its delay queue. `delivered` > 0 is written as the
  // x-asya-delivery-count header (deliveries so far). Returns once the broker confirmed it.
  // Thread-safe; blocks up to confirm_timeout. `body` must stay valid until it returns.
  Status publish(const std::string& queue, std::string_view body, std::chrono::milliseconds delay,
                 std::uint32_t delivered);

  // publish() of every message (delivery count 0) at once: all are written before any confirm is
  // awaited (within the confirm window), so they share the broker's round trips. One status per
  // message, in order, each what publish() would have returned for it. Blocks up to
  // confirm_timeout in total. The views must stay valid until it returns.
  std::vector<Status> publish_many(std::span<const OutgoingMessage> messages);

  // publish_many() in two steps (Transport::start_send_many). Owned by the caller; not
  // thread-safe; must be finished (or destroyed, which finishes it) before the Publisher is.
  class InFlight {
   public:
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    // Whether finish() returns without waiting: every message confirmed or failed, or the
    // publisher gave up (stopping, interrupted while disconnected, confirm_timeout passed).
    bool ready();
    // What publish_many() would have returned; waits as it would for what is not done.
    std::vector<Status> finish();

   private:
    friend class Publisher;
    InFlight() = default;
    Publisher* publisher_ = nullptr;
    std::vector<std::shared_ptr<Job>> jobs_;
    std::vector<std::size_t> index_;  // jobs_[k] publishes message index_[k]
    std::vector<Status> results_;     // one per message (those that failed at once are set)
    std::unique_ptr<Waiter> waiter_;  // null: nothing was queued (results_ are final)
    std::chrono::steady_clock::time_point started_;
    bool finished_ = false;
  };

  // Queues every message (as publish_many() does) and writes them now when the connection is
  // free (else the link thread does), without waiting for a confirm: their confirms are read by
  // whoever reads the socket (the link thread, or a caller waiting for its own). `on_ready` is
  // called with the publisher's lock held (it must only wake someone) when the last of them is
  // confirmed or failed and whenever the link changes state (connected, lost, stopping,
  // interrupted). The views must stay valid until finish() returns.
  std::unique_ptr<InFlight> start_many(std::span<const OutgoingMessage> messages,
                                       std::function<void()> on_ready);

  // Declares the exchange and the queue (bound by its name). Blocks up to confirm_timeout.
  Status ensure_queue(const std::string& queue);

  // Ready count of `queue` and the ready counts of its delay queues declared by this instance.
  Result<QueueStats> inspect(const std::string& queue);

  // Removes the ready messages of `queue` (queue.purge) and returns how many there were; messages
  // delivered and not yet acked stay, and so do those waiting in its delay queues. A queue that
  // does not exist fails with "queue_not_found: ...". Blocks up to confirm_timeout.
  Result<std::uint64_t> purge(const std::string& queue);

  // Ok once connected (waits up to confirm_timeout).
  Status ping();

  // Fails waiting calls and stops the thread; later calls fail at once.
  void stop();

  // The process is stopping (Transport::interrupt): from now on a call that would wait for a
  // lost connection to come back fails at once instead (nothing it published is acked by the
  // caller then, so nothing is lost). Calls on a working connection still complete. Thread-safe.
  void interrupt();

 private:
  // What drive() achieved.
  enum class Drove {
    kDone,     // every job is done
    kWritten,  // the jobs are written (or queued behind a full window); another thread reads
    kBusy,     // the connection is busy, down or closing: the link thread takes over
  };
  Result<std::shared_ptr<Job>> publish_job(const std::string& queue, std::string_view body,
                                           std::chrono::milliseconds delay,
                                           std::uint32_t delivered);
  // submit_all()'s first step (mutex_ not held): the jobs are queued for `waiter`, which is
  // listed in waiters_ (`started`: in started_, woken through its on_ready until it waits). False
  // when they cannot be (stopping, given up): `results` then says why for each.
  bool begin_all(const std::vector<std::shared_ptr<Job>>& jobs, Waiter& waiter, bool started,
                 std::vector<Status>& results);
  // submit_all()'s last step: waits for the jobs (driving the socket when offered the reading)
  // up to confirm_timeout from `started`, then delists `waiter`; one result each.
  std::vector<Status> finish_all(const std::vector<std::shared_ptr<Job>>& jobs, Waiter& waiter,
                                 std::chrono::steady_clock::time_point started);
  // start_many()'s write: the queued publishes are written when the connection is free, and the
  // link thread is woken when it must write them or watch for their confirms.
  void write_started();
  Status submit(const std::shared_ptr<Job>& job);
  // Queues every job at once and waits for all of them (up to confirm_timeout); one result each.
  std::vector<Status> submit_all(const std::vector<std::shared_ptr<Job>>& jobs);
  // Drives the connection from the calling thread until every job is done or `deadline`: writes
  // the queued publishes and reads the confirms. When another caller reads already, only writes.
  Drove drive(const std::vector<std::shared_ptr<Job>>& jobs,
              std::chrono::steady_clock::time_point deadline);
  // mutex_ held: `job` is done with `result`; wakes its caller when it was that caller's last.
  void complete(Job& job, Status result);
  // mutex_ held: `job` left kRunning; wakes a caller that timed out and waits for that.
  void left_running(Job& job);
  // mutex_ held: a driver leaves while publishes are unconfirmed. Another waiting
  // caller is offered the reading (one wake-up, its own confirms among those read); the link
  // thread is woken when no caller waits.
  void hand_over_reading();
  void wake_all() override;
  // mutex_ held: interrupted and not connected, so waiting for the connection is pointless.
  bool given_up() const { return interrupted_ && !connected_; }
  // mutex_ held: what a call that gave up says.
  std::string given_up_text() const;
  void run_job(const std::shared_ptr<Job>& job);
  // Declares what `job` publishes to (once per connection) and says where: views of the settings,
  // the job or delay_declared_, valid until the next call.
  Status prepare_target(Job& job, std::string_view& routing_key, std::string_view& exchange);
  // Writes the publishes encoded into frames_ (run_job) and makes them unconfirmed; on a failed
  // write the connection is broken and they are queued again, in order.
  void flush_frames();
  void finish(const std::shared_ptr<Job>& job, Status result);
  void requeue(const std::shared_ptr<Job>& job);
  void confirm(std::uint64_t tag, bool multiple, bool ok);

  // Link hooks.
  Status on_open() override;
  void on_connected() override;
  void on_lost(const std::string& why) override;
  void write_pending() override;
  void handle_frame(const amqp_frame_t& frame) override;
  bool has_pending() override;
  bool watch_socket() override;
  void on_stopped() override;

  // Guarded by mutex_.
  bool interrupted_ = false;                // interrupt() was called
  std::deque<std::shared_ptr<Job>> queue_;  // waiting to be run/written, in order
  std::vector<Waiter*> waiters_;            // submit_all() calls waiting for their jobs
  std::vector<Waiter*> started_;            // start_many() calls not finishing yet
  // Delay queues declared by this instance per queue (for stats).
  std::map<std::string, std::set<std::string>> delay_queues_;

  // Guarded by io_.
  std::map<std::uint64_t, std::shared_ptr<Job>> unconfirmed_;
  std::uint64_t next_tag_ = 1;
  bool exchange_declared_ = false;
  std::set<std::string> declared_;  // on the current connection
  std::map<std::string, std::chrono::steady_clock::time_point> delay_declared_;
  PublishFrames frames_;  // publishes of this turn encoded, not yet written
  std::vector<std::pair<std::uint64_t, std::shared_ptr<Job>>> framed_;  // their tags and jobs
};

}  // namespace asya::transport::rabbitmq
