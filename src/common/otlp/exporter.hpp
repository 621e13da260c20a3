// An OTLP/HTTP JSON span exporter: add() hands spans to a bounded queue and returns at once; one
// background thread sends them in batches (`POST <url>` with an ExportTraceServiceRequest,
// otlp_json.hpp) through the one HTTP client (common/http). A caller is never delayed by the
// receiver: when it is slow or down, spans wait in the queue up to its bound, and beyond it new
// spans are dropped. Every dropped span is counted in
//   asya_trace_spans_dropped_total{destination,reason="queue_full"|"export_failed"|"shutdown"}
// and every span a receiver accepted in asya_trace_spans_exported_total{destination}, process-wide
// metrics (common/process_metrics.hpp) present from the first exporter of a destination on.
// A failed request (no answer, 408, 429, 5xx) is tried once more after a short delay; a batch that
// still fails is dropped, and logged at warn at most once a minute with the count since.
// The export thread is named "asya-otlp" (/proc/PID/task/*/comm), so its CPU can be told apart.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/http/client.hpp"
#include "common/otlp/export_settings.hpp"
#include "common/otlp/otlp_json.hpp"
#include "common/otlp/span.hpp"

namespace asya::otlp {

struct ExporterOptions {
  ExportSettings settings;                // url (required), headers, resource, limits
  std::string destination = "collector";  // the metrics' `destination` label
  int max_attempts = 2;                   // per batch
  std::chrono::milliseconds retry_delay{500};
};

class Exporter {
 public:
  // Starts the export thread.
  explicit Exporter(ExporterOptions options);
  ~Exporter();  // stop(0)
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Queues `spans` for export. Never blocks on the network; thread-safe. Spans beyond the
  // queue's bound (ExportSettings::max_queue_spans) are dropped and counted; returns how many
  // were queued. The spans are encoded (otlp_json.hpp) on the calling thread.
  std::size_t add(std::vector<Span> spans);
  // The same for spans already encoded (SpanWriter), with no Span in between. Spans added while
  // the last queued part holds less than a batch (ExportSettings::max_batch_spans) are appended to
  // it (a copy of their JSON, into a buffer sized for a batch: no allocation per add); a batch
  // takes whole parts where it can, and splits one larger than a batch. The rvalue form queues a
  // part that does not fit the last one as it is.
  std::size_t add(const EncodedSpans& spans);
  std::size_t add(EncodedSpans&& spans);

  // Sends what is queued at once, a partial batch included (it does not wait for
  // schedule_delay), and waits up to `budget` until every span queued before the call has been
  // sent (or dropped). Returns true when the queue is empty and no request is in flight. A zero
  // budget only starts the sending.
  bool flush(std::chrono::milliseconds budget);

  // Sends what is queued for at most `grace`, then stops the thread; spans still queued are
  // dropped (reason "shutdown") and a request still running is cancelled. Idempotent.
  void stop(std::chrono::milliseconds grace);

  const std::string& url() const { return options_.settings.url; }

  // How many buffers of sent parts are kept for the next ones (see spare_parts_): for tests.
  std::size_t spare_part_buffers();

 private:
  void run();
  std::size_t enqueue(const EncodedSpans& spans, EncodedSpans* movable);
  // Under mutex_: appends `spans` to the last part when the batch it makes has room, else queues
  // them as a part of their own (moved from `movable` when not null).
  void append_part(const EncodedSpans& spans, EncodedSpans* movable);
  // Sends one batch, retrying as described above; counts the outcome. Leaves `batch` as it was.
  void send(const std::vector<EncodedSpans>& batch, std::size_t spans);
  // Under mutex_: keeps the buffers of a sent batch's parts for the next parts (append_part).
  void keep_spare_parts(std::vector<EncodedSpans>& batch);
  // Gives the kept buffers back and trims the heap (malloc_trim, without holding `lock`).
  void release_buffers(std::unique_lock<std::mutex>& lock);

  ExporterOptions options_;
  http::Headers headers_;
  http::Client client_;
  std::mutex mutex_;
  // The thread waits on it for a full batch, a flush or stop; add() notifies it only when a
  // batch is full (a partial one waits for schedule_delay): no wake-up per span.
  std::condition_variable cv_;
  std::condition_variable idle_cv_;  // flush() waits on it
  std::deque<EncodedSpans> queue_;
  std::size_t queued_spans_ = 0;  // in queue_
  bool busy_ = false;
  bool stopping_ = false;
  // flush() asks for everything queued to be sent now: flushes_asked_ > flushes_done_ until the
  // queue has been emptied after the ask.
  std::uint64_t flushes_asked_ = 0;
  std::uint64_t flushes_done_ = 0;
  std::atomic<bool> cancel_{false};
  std::chrono::steady_clock::time_point last_warning_{};
  std::uint64_t failed_since_warning_ = 0;  // these three: the export thread's only
  bool failing_ = false;
  std::chrono::steady_clock::time_point last_trim_{};
  // Buffers kept from batch to batch while spans keep coming: the parts' (each sized for a batch,
  // ~250 KB of JSON, filled by the adding threads) and the request body's (the export thread's).
  // Made anew for every batch, they cost a page fault per 4 KiB written, about one per message
  // and sidecar, on the adding thread and on this one. Released, and the heap trimmed
  // (malloc_trim), when the exporter goes idle: a batch went out partial (less than a batch of
  // spans per schedule_delay) and nothing is queued; at most once a second.
  std::vector<std::string> spare_parts_;  // under mutex_
  std::string body_;                      // the export thread's
  std::thread thread_;
};

// What the exporters of `destination` did so far in this process (for tests and the docs).
struct ExportCounts {
  std::uint64_t exported = 0;
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t dropped_export_failed = 0;
  std::uint64_t dropped_shutdown = 0;
};
ExportCounts export_counts(std::string_view destination);

}  // namespace asya::otlp
