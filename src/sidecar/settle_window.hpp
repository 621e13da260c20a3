// The sidecar's settle window (internal to the sidecar binary). On a transport that holds a
// received message until it is settled and shares the round trips of sends made together
// (Transport::holds_until_settled: RabbitMQ, whose broker confirms a persistent publish in tens of
// milliseconds), a worker hands a decided message over here (its outputs to send, then its ack or
// nack) and takes its next message while the publishes wait for their confirms. Without it, a
// worker waits for its own confirm before it takes the next message, so concurrency N allows only
// N messages in flight however large the prefetch (docs/performance.md, rabbitmq_hop_c8).
//
// Settling threads (at most `threads`, started when needed) each take every item waiting (at most
// `max_batch`) and settle them together in two steps (the runner's: StartedSettle of
// batch_settle.hpp): start writes the batch's outputs without waiting for their confirms (one
// start_send_many, sharing the publisher's confirm window), finish waits for them and acks (one
// ack_many, with basic.ack(multiple) where safe). A thread keeps up to `batches_per_thread`
// batches started and not finished: while the oldest waits for its confirms, it starts the items
// handed over meanwhile as the next batch, instead of leaving them for another thread; it finishes
// its batches in the order it started them, each once its start says it is ready. While it has
// batches in flight, it starts the next only once `min_batch` items wait (the runner: one per
// worker), so the outputs still leave in a few larger writes. At most
// `max_pending` items are handed over and not settled yet; submit() waits for room beyond that (the
// transport's prefetch bounds the items first: a message that is not acked takes a prefetch slot).
//
// The durability contract of transport.hpp is the settle function's: an item is acked only after
// every one of its outputs was confirmed, and an item one of whose sends failed is not acked (it
// is nacked, i.e. delivered again). drain() returns once every item handed over is settled (a
// SIGTERM lets pending settles finish); abandon() gives back the items not started yet so the
// caller can return them; a crash loses nothing (every message not acked is delivered again).
//
// Threads: submit(), drain(), idle() and abandon() are thread-safe. The settle function runs on
// the window's threads, several calls at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "envelope/envelope.hpp"
#include "sidecar/router.hpp"
#include "transport/transport.hpp"

namespace asya::sidecar {

// A decided message handed over for settling; it owns everything settling needs.
struct PendingSettle {
  transport::Delivery delivery;
  // Parsed from delivery.body (its views point into that string, which never moves: the item is
  // only ever handled through a pointer). nullopt when the body is not an envelope.
  std::optional<envelope::Envelope> in;
  Decision decision;
  bool tracked = false;  // the gateway tracks the envelope (fan-out children are announced)
  std::chrono::steady_clock::time_point started;  // when the message was received
};

class SettleWindow {
 public:
  // A batch whose settling was started.
  class Started {
   public:
    virtual ~Started() = default;
    // Whether finish() would not wait. Called without the window's lock.
    virtual bool ready() = 0;
    // Settles the batch (its acks only after its outputs are durable). Called once.
    virtual void finish() = 0;
  };
  // Starts settling `items` (they stay valid until finish() returned); `ready` is to be called,
  // from any thread and with no lock that the window's threads take while calling in, whenever
  // ready() may have turned true. The window checks ready() once after start too.
  using Start = std::function<std::unique_ptr<Started>(std::span<PendingSettle* const> items,
                                                       std::function<void()> ready)>;
  // Settling in one step (start does it all; finish does nothing).
  using Settle = std::function<void(std::span<PendingSettle* const> items)>;

  SettleWindow(Start start, std::size_t threads, std::size_t max_pending, std::size_t max_batch,
               std::size_t batches_per_thread, std::size_t min_batch = 1);
  SettleWindow(Settle settle, std::size_t threads, std::size_t max_pending, std::size_t max_batch);
  // drain(), then stops the threads.
  ~SettleWindow();
  SettleWindow(const SettleWindow&) = delete;
  SettleWindow& operator=(const SettleWindow&) = delete;

  // Hands `item` over; returns at once unless max_pending items are pending, then waits for room.
  // After abandon() the item is kept and never settled (the transport delivers it again).
  // Returns how many items are pending (waiting or being settled), this one included.
  std::size_t submit(std::unique_ptr<PendingSettle> item);
  // Returns once no item is waiting or being settled (at once after abandon() for those waiting).
  void drain();
  // Whether nothing is waiting or being settled.
  bool idle() const;
  // Items handed over and not settled yet (waiting or being settled).
  std::size_t pending() const;
  // Stops taking items: returns those waiting (not started), for the caller to return to their
  // queue. Items being settled finish.
  std::vector<std::unique_ptr<PendingSettle>> abandon();

 private:
  struct Batch;
  void loop();

  const Start start_;
  const std::size_t max_threads_;
  const std::size_t max_pending_;
  const std::size_t max_batch_;
  const std::size_t batches_per_thread_;
  const std::size_t min_batch_;

  mutable std::mutex mutex_;
  std::condition_variable work_;     // items waiting, a started batch may be ready, or stopping
  std::condition_variable settled_;  // an item was settled (room, drain)
  std::deque<std::unique_ptr<PendingSettle>> waiting_;
  std::size_t settling_ = 0;      // items taken by a thread and not settled yet
  std::size_t idle_threads_ = 0;  // threads waiting that could take items
  bool abandoned_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace asya::sidecar
