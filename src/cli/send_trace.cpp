#include "cli/send_trace.hpp"

#include "common/env.hpp"

namespace asya::cli {

SendTrace::SendTrace(const std::optional<std::string>& given_traceparent)
    : started_(std::chrono::system_clock::now()) {
  std::optional<otlp::TraceContext> parent;
  if (given_traceparent) parent = otlp::parse_traceparent(*given_traceparent);
  context_.trace_id = parent ? parent->trace_id : otlp::new_trace_id();
  context_.sampled = parent ? parent->sampled : true;
  if (parent) parent_span_id_ = parent->span_id;
  context_.span_id = otlp::new_span_id();
  if (auto settings = otlp::read_export_settings(Environment(), "asya-cli")) {
    otlp::ExporterOptions options;
    options.settings = std::move(*settings);
    options.settings.timeout = std::min(options.settings.timeout, std::chrono::milliseconds(2000));
    options.max_attempts = 1;
    exporter_ = std::make_unique<otlp::Exporter>(std::move(options));
  }
}

SendTrace::~SendTrace() = default;

std::string SendTrace::traceparent() const {
  return otlp::format_traceparent(context_);
}

void SendTrace::finish(std::string_view envelope_id, std::string_view queue, bool ok) {
  if (!exporter_) return;
  otlp::Span span;
  span.trace_id = context_.trace_id;
  span.span_id = context_.span_id;
  span.parent_span_id = parent_span_id_;
  span.name = "send " + std::string(queue);
  span.kind = otlp::SpanKind::kProducer;
  span.start_unix_nano = otlp::unix_nanos(started_);
  span.end_unix_nano = otlp::unix_nanos(std::chrono::system_clock::now());
  span.attributes = {{"asya.envelope_id", std::string(envelope_id)},
                     {"messaging.destination.name", std::string(queue)}};
  if (!ok) span.status = otlp::StatusCode::kError;
  exporter_->add({std::move(span)});
  exporter_->stop(std::chrono::milliseconds(2000));
}

}  // namespace asya::cli
