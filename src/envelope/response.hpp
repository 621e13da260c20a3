// The runtime's response (PROTOCOL §3): always a JSON array; each element is either a result
// {"payload", "route", "headers"?} or an error {"error": CODE, "details": {...}}. A result may
// say "payload_unchanged": true instead of carrying "payload" (its payload is the request's own,
// byte for byte; the sidecar puts the input's payload text in its place: Router::after_runtime).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::envelope {

struct ResponseItem {
  bool is_error = false;
  // Result elements: raw JSON text of each field (headers_raw empty when absent; payload_raw
  // empty when payload_unchanged).
  std::string_view payload_raw;
  std::string_view route_raw;
  std::string_view headers_raw;
  // Parsed from route_raw for routing: actors and current, validated like an envelope route.
  std::vector<std::string> actors;
  std::size_t current = 0;
  // "fanout": true on a result element: the handler returned a list (of one), so it is a fan-out
  // even alone (PROTOCOL §3, §4a).
  bool fanout = false;
  // "payload_unchanged": true on a result element instead of "payload": the output's payload is
  // the request's payload (for a batch, that element's own envelope's), byte for byte.
  bool payload_unchanged = false;
  // Error elements.
  std::string error_code;        // e.g. "processing_error"
  std::string error_message;     // details.message ("" when absent)
  std::string error_type;        // details.type
  std::string error_traceback;   // details.traceback
  std::string_view details_raw;  // raw JSON of "details", empty when absent
};

// Parses a runtime response. Views point into `body`, which must outlive the result. An Error
// (runtime_protocol_error) names what is wrong: not JSON, not an array, an element that is
// neither a result nor an error, a result missing payload or route, an invalid route, a result
// with both "payload" and "payload_unchanged": true (or neither), a payload_unchanged that is not
// a boolean.
Result<std::vector<ResponseItem>> parse_response(std::string_view body);

// As parse_response(body) for a body followed by at least kParsePadding (envelope.hpp) readable
// bytes in the same allocation (e.g. a wire::FrameBuffer): iterated in place, no copy.
Result<std::vector<ResponseItem>> parse_response_padded(std::string_view body);

}  // namespace asya::envelope
