// The OTLP JSON encoding of spans (OpenTelemetry protocol, "JSON Protobuf Encoding"): the body of
// `POST /v1/traces` with `Content-Type: application/json`. As the specification defines it:
// field names in lowerCamelCase, trace and span ids as hex strings (not base64), enum values
// (kind, status code) as integers, 64-bit integers (times in nanoseconds, intValue) as decimal
// strings, an absent field left out rather than written empty.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/otlp/span.hpp"

namespace asya::otlp {

// What every span of one exporter shares: the resource (service.name and the other attributes
// of the process) and the instrumentation scope.
struct Resource {
  std::vector<Attribute> attributes;
  std::string scope_name = "asya";
  std::string scope_version;  // empty: left out
};

// One ExportTraceServiceRequest:
//   {"resourceSpans":[{"resource":{"attributes":[...]},
//                      "scopeSpans":[{"scope":{"name","version"?},"spans":[...]}]}]}
// Each span: traceId, spanId, parentSpanId (left out for a root), name, kind,
// startTimeUnixNano, endTimeUnixNano, attributes, status ({"code":n,"message"?}; left out when
// unset). Attribute values: {"stringValue":s} | {"intValue":"n"} | {"doubleValue":x} |
// {"boolValue":b}; a double that is not finite is written "NaN", "Infinity" or "-Infinity".
// Thread-safe (no shared state).
std::string export_request_json(const Resource& resource, const std::vector<Span>& spans);

}  // namespace asya::otlp
