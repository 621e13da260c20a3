// Reading OTLP/HTTP JSON trace exports (ExportTraceServiceRequest, the OpenTelemetry protocol's
// JSON encoding: lowerCamelCase field names, trace and span ids as hex strings, 64-bit integers as
// decimal strings or numbers, enums as integers or names) into the spans the gateway keeps, and
// the span document GET /envelopes/{id}/trace answers (docs/dashboard.md).
//
// Pure functions: no I/O, no store.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/otlp/otlp_json.hpp"
#include "common/otlp/span.hpp"
#include "common/result.hpp"

namespace asya::gateway::traces {

// One span of an export, with the Asya attributes the gateway uses to place it.
struct ReceivedSpan {
  std::string trace_id;  // 32 lowercase hex digits
  std::string span_id;   // 16 lowercase hex digits
  std::int64_t start_unix_nano = 0;
  std::string job_id;       // attribute asya.job_id ("" when absent)
  std::string envelope_id;  // attribute asya.envelope_id ("" when absent)
  // The span as the gateway answers it (span_document below): ids, name, kind, times, status,
  // flattened attributes, the asya.* attributes as top-level fields, and the resource's.
  boost::json::object document;
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
boost::json::object resource_object(const otlp::Resource& resource);

// The span the gateway records itself (its call span), exactly as parse_export_request would read
// it back from export_request_json of a process with that resource (`resource`:
// resource_object()), without writing and parsing the JSON text in between.
ReceivedSpan received_span(const otlp::Span& span, const boost::json::object& resource);

// An OTLP AnyValue ({"stringValue": ...}, {"intValue": "5"}, arrays, kvlists, ...) as plain JSON
// (int64 as a number, bytes as their base64 text). Null for an empty or unknown value.
boost::json::value any_value_to_json(const boost::json::value& any_value);

}  // namespace asya::gateway::traces
