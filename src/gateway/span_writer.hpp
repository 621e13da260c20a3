// Hands the gateway's own call spans to their local sink (the job store) from a background
// thread, in batches, so that a tool call's answer does not wait for a job-store transaction of
// its span: the spans of the calls of a `linger` window (or kMaxBatch of them) share one write.
//
// Spans are observability, not part of a call's durability contract: a span added shortly before
// the gateway is killed may be lost (the job and its envelope are not: Service::start_call).
// Readers of this gateway see every span added before they read: they call flush() first
// (GET /envelopes/{id}/trace does).
//
// Thread-safe. The sink runs on the writer's own thread only, one batch at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/otlp/span.hpp"

namespace asya::gateway {

class SpanWriter {
 public:
  using Sink = std::function<void(std::vector<otlp::Span>)>;
  // At most this many spans are handed to the sink at once.
  static constexpr std::size_t kMaxBatch = 256;

  // Starts the writer thread. `linger`: how long the writer collects spans after the first one
  // arrives before it writes them (shorter when kMaxBatch are pending or flush() asks).
  // `max_pending`: spans waiting at most; add() drops beyond it (a store that cannot keep up must
  // not grow the gateway's memory without bound).
  explicit SpanWriter(Sink sink, std::chrono::milliseconds linger = std::chrono::milliseconds(100),
                      std::size_t max_pending = 10000);
  // stop().
  ~SpanWriter();
  SpanWriter(const SpanWriter&) = delete;
  SpanWriter& operator=(const SpanWriter&) = delete;

  // Queues `span` for the sink and returns at once. False when it was dropped: max_pending spans
  // wait already, or the writer stopped.
  bool add(otlp::Span span);

  // Returns once every span add() accepted before this call has been handed to the sink and the
  // sink returned (the writer stops lingering for them). Blocking; returns at once after stop().
  void flush();

  // Hands what is pending to the sink, then ends the thread. Idempotent; later add() calls drop.
  void stop();

  // Spans dropped by add() so far.
  std::uint64_t dropped() const;

 private:
  void run();

  Sink sink_;
  std::chrono::milliseconds linger_;
  std::size_t max_pending_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer: spans pending, or stop
  std::condition_variable written_;  // flush(): a batch was written
  std::vector<otlp::Span> pending_;
  std::uint64_t accepted_ = 0;       // spans add() accepted
  std::uint64_t written_count_ = 0;  // of them handed to the sink (and the sink returned)
  std::uint64_t dropped_ = 0;
  std::uint64_t flush_upto_ = 0;  // flush() waits for the spans accepted up to this count
  bool stopping_ = false;
  bool finished_ = false;  // the thread ended: flush() has nothing to wait for
  std::thread thread_;
};

}  // namespace asya::gateway
