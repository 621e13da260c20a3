#include "gateway/call_trace.hpp"

#include <spdlog/spdlog.h>

#include "common/json_text.hpp"
#include "common/otlp/exporter.hpp"
#include "gateway/store/job_store.hpp"
#include "gateway/traces/otlp_json.hpp"

namespace asya::gateway {

struct CallTracer::Collector {
  explicit Collector(otlp::ExporterOptions options) : exporter(std::move(options)) {}
  otlp::Exporter exporter;
};

CallTracer::CallTracer(std::optional<otlp::ExportSettings> collector,
                       otlp::ExportSettings process) {
  (void)process;  // the resource travels with the collector's settings (the same variables)
  if (collector) {
    otlp::ExporterOptions options;
    options.settings = std::move(*collector);
    options.destination = "collector";
    collector_ = std::make_unique<Collector>(std::move(options));
  }
}

CallTracer::~CallTracer() {
  stop(std::chrono::milliseconds(0));
}

CallTracer::Call CallTracer::begin(std::string_view trace_id) const {
  return Call{
      {trace_id.empty() ? otlp::new_trace_id() : std::string(trace_id), otlp::new_span_id(), true},
      std::chrono::system_clock::now()};
}

void CallTracer::end(const Call& call, std::string_view tool, std::string_view job_id,
                     std::string_view queue, std::string_view error) {
  std::shared_ptr<SpanWriter> local;
  {
    std::lock_guard lock(mutex_);
    local = local_;
  }
  if (!collector_ && !local) return;
  otlp::Span span;
  span.trace_id = call.context.trace_id;
  span.span_id = call.context.span_id;
  span.name = "call " + std::string(tool);
  span.kind = otlp::SpanKind::kServer;
  span.start_unix_nano = otlp::unix_nanos(call.started);
  span.end_unix_nano = otlp::unix_nanos(std::chrono::system_clock::now());
  span.attributes = {{"asya.tool", std::string(tool)},
                     {"asya.job_id", std::string(job_id)},
                     {"asya.envelope_id", std::string(job_id)},
                     {"messaging.destination.name", std::string(queue)},
                     {"asya.outcome", std::string(error.empty() ? "published" : "failed")}};
  if (!error.empty()) {
    span.status = otlp::StatusCode::kError;
    span.status_message.assign(error);
  }
  if (local && collector_) {
    collector_->exporter.add({span});
    local->add(std::move(span));
  } else if (collector_) {
    collector_->exporter.add({std::move(span)});
  } else {
    local->add(std::move(span));
  }
}

void CallTracer::set_local_sink(LocalSink sink) {
  auto writer = std::make_shared<SpanWriter>(std::move(sink));
  std::lock_guard lock(mutex_);
  local_ = std::move(writer);
}

void CallTracer::flush_local() {
  std::shared_ptr<SpanWriter> local;
  {
    std::lock_guard lock(mutex_);
    local = local_;
  }
  if (local) local->flush();
}

void CallTracer::stop(std::chrono::milliseconds grace) {
  std::shared_ptr<SpanWriter> local;
  {
    std::lock_guard lock(mutex_);
    local = local_;
  }
  if (local) local->stop();
  if (collector_) collector_->exporter.stop(grace);
}

CallTracer::LocalSink job_store_sink(JobStore& store, const SpanLimits& limits,
                                     otlp::Resource resource) {
  // The documents are built from the spans directly (traces::received_span), as the receiver
  // would read them back from their OTLP JSON: no text written and parsed again per span.
  return
      [&store, limits, resource = traces::span_resource(resource)](std::vector<otlp::Span> spans) {
        std::vector<SpanRecord> records;
        records.reserve(spans.size());
        for (const auto& span : spans) {
          traces::ReceivedSpan received = traces::received_span(span, resource);
          if (received.job_id.empty()) continue;
          std::string document = received.document_text();
          records.push_back(SpanRecord{std::move(received.job_id), std::move(received.trace_id),
                                       std::move(received.span_id), received.start_unix_nano,
                                       std::move(document)});
        }
        if (records.empty()) return;
        auto written = store.add_spans(records, limits, std::chrono::system_clock::now());
        if (!written.ok())
          spdlog::warn("gateway: cannot keep the call span of job {}: {}", records.front().job_id,
                       written.error().message);
      };
}

}  // namespace asya::gateway
