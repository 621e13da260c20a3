// The OTLP JSON encoding of spans (OpenTelemetry protocol, "JSON Protobuf Encoding"): the body of
// `POST /v1/traces` with `Content-Type: application/json`. As the specification defines it:
// field names in lowerCamelCase, trace and span ids as hex strings (not base64), enum values
// (kind, status code) as integers, 64-bit integers (times in nanoseconds, intValue) as decimal
// strings, an absent field left out rather than written empty.
#pragma once

#include <cstddef>
#include <cstdint>
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

// Spans already written in this encoding (each span's object, comma-separated) and how many:
// what the exporter queues, so a span is encoded once, where it is made, with no Span value in
// between (SpanWriter).
struct EncodedSpans {
  std::string json;
  std::size_t count = 0;
};

// Appends `span`, encoded as above, to `into`.
void append_encoded(EncodedSpans& into, const Span& span);

// Takes the first `n` spans (0 < n < from.count) out of `from` and returns them; `from` keeps the
// rest. Spans are found by their opening `{"traceId":`, which no string inside a span can hold
// unescaped.
EncodedSpans split_encoded(EncodedSpans& from, std::size_t n);

// The request (as above) holding the spans of `parts`, in order.
std::string export_request_json_from(const Resource& resource,
                                     const std::vector<EncodedSpans>& parts);
// The same, written over `out` (its capacity kept: a buffer reused from request to request).
void write_export_request(std::string& out, const Resource& resource,
                          const std::vector<EncodedSpans>& parts);

// Appends one attribute ({"key":…,"value":{…}}) to a comma-separated attribute list `list`
// (a comma first unless `list` is empty): for attributes written once and repeated in several
// spans (SpanWriter::attributes). Here and in SpanWriter::attribute the key is one of Asya's
// attribute names (a literal such as "asya.envelope_id": letters, digits, '.' and '_') and is
// written as it is, unescaped; values are escaped as JSON requires.
void append_attribute(std::string& list, std::string_view key, std::string_view value);
void append_attribute(std::string& list, std::string_view key, std::int64_t value);

// Writes spans straight into an EncodedSpans, the encoding above, field by field:
//   writer.begin(...).attribute(...).attributes(list).end(status, message);
// Each begin() needs its end() before the next begin(). Not thread-safe; cheap to make.
class SpanWriter {
 public:
  explicit SpanWriter(EncodedSpans& into) : into_(into) {}

  // Starts a span named `name` + `name_suffix` (ids as lowercase hex; `parent_span_id` empty
  // for a root span).
  SpanWriter& begin(std::string_view trace_id, std::string_view span_id,
                    std::string_view parent_span_id, std::string_view name,
                    std::string_view name_suffix, SpanKind kind, std::uint64_t start_unix_nano,
                    std::uint64_t end_unix_nano);
  SpanWriter& attribute(std::string_view key, std::string_view value);
  SpanWriter& attribute(std::string_view key, std::int64_t value);
  // Attributes already written by append_attribute (empty: none).
  SpanWriter& attributes(std::string_view list);
  // Ends the span; a status other than kUnset is written with `message` (when not empty).
  void end(StatusCode status = StatusCode::kUnset, std::string_view message = {});

 private:
  EncodedSpans& into_;
  bool first_attribute_ = true;
};

}  // namespace asya::otlp
