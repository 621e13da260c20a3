// The gateway's span of a tool call (docs/tracing.md): "call <tool>" (kind SERVER, service
// asya-gateway), the root of the job's trace; the envelope it publishes carries it as its
// `traceparent`, so the first actor's hop is its child. Exported to the collector of
// ASYA_OTLP_ENDPOINT (otlp::Exporter: asynchronous, bounded) and handed to the local sink, which
// keeps the spans of jobs in the job store (so traces are visible with no collector). The local
// sink runs on a background thread (span_writer.hpp), in batches: a call's answer never waits
// for the write of its span; flush_local() waits for it.
// Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/otlp/export_settings.hpp"
#include "common/otlp/span.hpp"
#include "gateway/span_writer.hpp"

namespace asya::gateway {

class CallTracer {
 public:
  // `collector`: nullopt for none; `process`: the resource of the gateway's spans.
  CallTracer(std::optional<otlp::ExportSettings> collector, otlp::ExportSettings process);
  ~CallTracer();

  // A call that has begun: its trace context (a new trace) and start time.
  struct Call {
    otlp::TraceContext context;
    std::chrono::system_clock::time_point started;
  };
  // Starts a call's span in trace `trace_id` (32 lowercase hex digits, e.g. trace_id_of_job_id),
  // or in a new random trace when it is empty.
  Call begin(std::string_view trace_id = {}) const;
  // Ends the span of `call` for tool `tool`, job `job_id`, published to `queue`; `error` empty
  // when it was published. Never blocks on the network.
  void end(const Call& call, std::string_view tool, std::string_view job_id, std::string_view queue,
           std::string_view error);

  // Where the gateway keeps the spans of its jobs (set once at start-up, before the first end()).
  // Called on the span writer's thread with batches of spans (at most SpanWriter::kMaxBatch).
  using LocalSink = std::function<void(std::vector<otlp::Span>)>;
  void set_local_sink(LocalSink sink);

  // Returns once the span of every call that ended before this call was handed to the local sink
  // (and the sink returned). Blocking: call it on the blocking pool, before reading spans.
  void flush_local();

  // Writes the spans waiting for the local sink, sends what is queued to the collector for at
  // most `grace`, then stops. Idempotent.
  void stop(std::chrono::milliseconds grace);

 private:
  // The exporter (otlp/exporter.hpp), kept out of this header: it brings the HTTP client's
  // namespace asya::http, which the gateway's own http:: would then collide with.
  struct Collector;
  std::unique_ptr<Collector> collector_;
  std::mutex mutex_;
  std::shared_ptr<SpanWriter> local_;
};

class JobStore;
struct SpanLimits;

// The local sink that keeps spans in the job store, as POST /v1/traces does (each span belongs to
// the job of its asya.job_id): encoded with `resource` and read back by the receiver's own reader
// (traces/otlp_json.hpp), so both kinds of spans are answered alike. A store error is logged.
CallTracer::LocalSink job_store_sink(JobStore& store, const SpanLimits& limits,
                                     otlp::Resource resource);

}  // namespace asya::gateway
