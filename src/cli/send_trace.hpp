// The trace `asya send` starts (docs/tracing.md): the new envelope's `traceparent` names the
// span "send <queue>" (kind PRODUCER, service asya-cli), a child of the traceparent the user gave
// with --header, else the root of a new trace. When ASYA_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_*)
// is set, the span is exported before the command returns (waiting at most 2 s for the
// collector; a collector that is down costs the send nothing but that wait).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/otlp/exporter.hpp"
#include "common/otlp/span.hpp"

namespace asya::cli {

class SendTrace {
 public:
  // `given_traceparent`: the value of --header traceparent=…, if any (an invalid one is replaced,
  // as W3C Trace Context asks). Reads the export settings from the environment (ConfigError).
  explicit SendTrace(const std::optional<std::string>& given_traceparent);
  ~SendTrace();

  // The value for the envelope's traceparent header.
  std::string traceparent() const;
  // When the send starts (also the envelope's asya-sent-at).
  std::chrono::system_clock::time_point started() const { return started_; }
  // Ends the span (envelope `envelope_id` sent to `queue`, or failed) and exports it.
  void finish(std::string_view envelope_id, std::string_view queue, bool ok);

 private:
  otlp::TraceContext context_;
  std::string parent_span_id_;
  std::chrono::system_clock::time_point started_;
  std::unique_ptr<otlp::Exporter> exporter_;
};

}  // namespace asya::cli
