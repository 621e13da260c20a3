// Trace spans as Asya records them, and the W3C trace context (`traceparent`) that carries a
// span's identity from one process to the next. Plain values: building one does no I/O; the
// exporter (exporter.hpp) sends them, the encoder (otlp_json.hpp) writes them as OTLP JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace asya::otlp {

// OTLP's Span.SpanKind (the numbers are the protocol's enum values).
enum class SpanKind {
  kUnspecified = 0,
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5
};
// OTLP's Status.StatusCode.
enum class StatusCode { kUnset = 0, kOk = 1, kError = 2 };

// An attribute value: string, 64-bit integer, double or bool (OTLP AnyValue's scalar kinds).
using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
};

struct Span {
  std::string trace_id;        // 32 lowercase hex digits, not all zero
  std::string span_id;         // 16 lowercase hex digits, not all zero
  std::string parent_span_id;  // 16 hex digits; empty for a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  std::uint64_t start_unix_nano = 0;
  std::uint64_t end_unix_nano = 0;  // >= start_unix_nano
  std::vector<Attribute> attributes;
  // Attributes several spans share (the sidecar's spans of one hop), written before
  // `attributes`: one copy for all of them rather than one per span. May be null.
  std::shared_ptr<const std::vector<Attribute>> shared_attributes;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;  // only with kError
};

// Nanoseconds since the Unix epoch (0 for a time before it).
std::uint64_t unix_nanos(std::chrono::system_clock::time_point when);

// The identity of one span as W3C Trace Context carries it.
struct TraceContext {
  std::string trace_id;  // 32 lowercase hex digits
  std::string span_id;   // 16 lowercase hex digits (the parent of whoever reads it)
  bool sampled = true;   // trace-flags bit 0
};

// Reads a `traceparent` header value ("00-<32 hex>-<16 hex>-<2 hex>"). nullopt when it is not
// one: wrong length or separators, upper-case or non-hex digits, all-zero ids, version "ff", or a
// version 00 value with anything after the flags. A later version's extra fields are accepted,
// as the W3C specification asks. Upper-case hex is refused like the specification says.
std::optional<TraceContext> parse_traceparent(std::string_view value);

// "00-<trace_id>-<span_id>-01" (or -00 when not sampled).
std::string format_traceparent(const TraceContext& context);

// A new random trace id (32 hex digits) or span id (16 hex digits), never all zero. Thread-safe.
std::string new_trace_id();
std::string new_span_id();

// A span id held without allocating (16 hex digits), for the ids made per message.
struct SpanIdText {
  char digits[16];
  std::string_view view() const { return {digits, sizeof digits}; }
};
// A new random span id, as new_span_id(), without allocating. Thread-safe.
SpanIdText new_span_id_text();

// A trace id held without allocating (32 hex digits).
struct TraceIdText {
  char digits[32];
  std::string_view view() const { return {digits, sizeof digits}; }
};
// A new random trace id, as new_trace_id(), without allocating. Thread-safe.
TraceIdText new_trace_id_text();

// parse_traceparent without allocating: on success (the same rules) fills `trace_id`, `span_id`
// and `sampled` and returns true; leaves them as they were otherwise.
bool parse_traceparent_into(std::string_view value, TraceIdText& trace_id, SpanIdText& span_id,
                            bool& sampled);

}  // namespace asya::otlp
