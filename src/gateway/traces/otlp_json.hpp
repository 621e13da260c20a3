// Reading OTLP/HTTP JSON trace exports (ExportTraceServiceRequest, the OpenTelemetry protocol's
// JSON encoding: lowerCamelCase field names, trace and span ids as hex strings, 64-bit integers as
// decimal strings or numbers, enums as integers or names) into the spans the gateway keeps, and
// the span document GET /envelopes/{id}/trace answers (docs/dashboard.md).
//
// Pure functions: no I/O, no store.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/otlp/otlp_json.hpp"
#include "common/otlp/span.hpp"
#include "common/result.hpp"

namespace asya::gateway::traces {

// A resource's attributes, read once for all of its spans.
struct SpanResource {
  boost::json::object attributes;  // where a span's missing asya.* fields are looked up
  std::string text;                // JSON text of `attributes`: every document's "resource"
};

// One span of an export, with the Asya attributes the gateway uses to place it.
struct ReceivedSpan {
  std::string trace_id;  // 32 lowercase hex digits
  std::string span_id;   // 16 lowercase hex digits
  std::int64_t start_unix_nano = 0;
  std::string job_id;       // attribute asya.job_id ("" when absent)
  std::string envelope_id;  // attribute asya.envelope_id ("" when absent)

  // The span as the gateway keeps and answers it, as JSON text: ids, name, kind, times,
  // duration, the asya.* attributes as top-level fields (actor, replica, envelope_id, job_id, ...;
  // from the resource when the span lacks one), status, the flattened attributes and the
  // resource's. With `job_id` not empty its "job_id" field is that string (the job the gateway
  // placed the span in), whatever the attribute said or when it had none.
  std::string document_text(std::string_view job_id = {}) const;

  // The parts document_text joins (written by the readers below; no DOM is kept per span).
  std::string head;  // `{"trace_id":...,"duration_ms":n`: the fields before the Asya ones
  std::vector<std::pair<const char*, std::string>> asya_fields;  // name, JSON text of the value
  std::string tail;  // `,"status":{...},"attributes":{...},"resource":`
  std::shared_ptr<const SpanResource> resource;
};

// A span of the export that was not accepted, and why ("resourceSpans[0].scopeSpans[1].spans[2]:
// traceId must be 32 hex digits, got \"xyz\"").
struct RejectedSpan {
  std::string reason;
};

struct ParsedExport {
  std::vector<ReceivedSpan> spans;
  std::vector<RejectedSpan> rejected;
};

// Parses the body of POST /v1/traces. An error (the whole request is refused with 400) when the
// text is not JSON or its shape is not an ExportTraceServiceRequest (resourceSpans not an array,
// ...); a span with bad ids or times is only rejected (ParsedExport::rejected).
Result<ParsedExport> parse_export_request(std::string_view body);

// The resource's attributes as the span documents carry them ("resource").
std::shared_ptr<const SpanResource> span_resource(const otlp::Resource& resource);

// The span the gateway records itself (its call span), exactly as parse_export_request would read
// it back from export_request_json of a process with that resource (`resource`:
// span_resource()), without writing and parsing the JSON text in between.
ReceivedSpan received_span(const otlp::Span& span, std::shared_ptr<const SpanResource> resource);

// An OTLP AnyValue ({"stringValue": ...}, {"intValue": "5"}, arrays, kvlists, ...) as plain JSON
// (int64 as a number, bytes as their base64 text). Null for an empty or unknown value.
boost::json::value any_value_to_json(const boost::json::value& any_value);

}  // namespace asya::gateway::traces
