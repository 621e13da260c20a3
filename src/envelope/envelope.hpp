// The envelope (PROTOCOL §1) as the sidecar sees it: parsed with simdjson On-Demand into views of
// the original bytes, never into a DOM. The payload, headers, route metadata and unknown fields
// stay raw JSON text so they can be spliced into outgoing envelopes byte for byte.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/actor_name.hpp"
#include "common/result.hpp"
#include "common/rfc3339.hpp"

namespace asya::envelope {

// A parsed envelope. Every string_view points into the body passed to parse(); the body must
// outlive the Envelope. Raw views hold the exact JSON text of the value (for strings: with quotes
// and escapes as sent).
struct Envelope {
  std::string id;                        // unescaped value of "id"
  std::string_view id_raw;               // JSON text of "id"
  std::optional<std::string> parent_id;  // unescaped, when present
  std::string_view parent_id_raw;        // JSON text, empty when absent
  std::vector<std::string> actors;       // route.actors
  std::size_t current = 0;               // route.current (0 when absent)
  std::string_view route_raw;            // JSON text of the whole "route" object
  std::string_view route_metadata_raw;   // JSON text of route.metadata, empty when absent
  std::string_view headers_raw;          // JSON text of "headers", empty when absent
  std::optional<std::string> deadline;   // RFC 3339 text, when present
  std::string_view deadline_raw;         // JSON text of "deadline", empty when absent
  std::string_view payload_raw;          // JSON text of "payload"
  // Unknown top-level fields in input order: key JSON text (with quotes) and value JSON text.
  std::vector<std::pair<std::string_view, std::string_view>> unknown_fields;

  // The actor that must process the envelope next, or empty when the route is done
  // (current == actors.size()).
  std::string_view current_actor() const;
  bool route_done() const { return current >= actors.size(); }
};

// Parses and validates `body` per PROTOCOL §1. On failure the Error message names the field, what
// was expected and what was found, e.g. `route.current: expected an integer from 0 to 3, got 7`
// or `id: expected a non-empty string of at most 256 bytes, got 42`. Bodies that are not JSON at
// all fail with a message starting "body is not valid JSON".
// Thread-safe (uses a thread-local parser). Never parses the payload beyond skipping it: the
// whole body's UTF-8 is checked, and a scalar payload or unknown field is checked, but syntax
// nested inside a payload object/array is not (e.g. `[1 2]` or `{"a":1,}` is passed on as sent
// and rejected by the runtime, which parses the payload). Duplicate keys in the envelope or its
// route are errors. The body is copied once into a thread-local padded buffer (simdjson needs
// padding); the views still point into `body`.
Result<Envelope> parse(std::string_view body);

// Readable bytes a parser needs after the text it iterates in place (simdjson's padding). Their
// values do not matter.
inline constexpr std::size_t kParsePadding = 64;

// As parse(body), but the caller supplies the padded copy: `padded_copy` holds the same bytes as
// `body` followed by at least kParsePadding readable bytes, and is iterated where it is (no copy
// into the thread-local buffer). It may be body.data() itself when body is padded. The views
// still point into `body`, so `padded_copy` may be overwritten once parse returns.
Result<Envelope> parse(std::string_view body, const char* padded_copy);

// True when `name` is a valid actor name (common/actor_name.hpp).
using asya::valid_actor_name;

// RFC 3339 deadlines are read and written by common/rfc3339.hpp.
using asya::format_rfc3339;
using asya::parse_rfc3339;

// True when the envelope has a deadline that is at or before `now`. An unparseable deadline was
// already rejected by parse().
bool deadline_passed(const Envelope& envelope, std::chrono::system_clock::time_point now);

// Escapes `text` as a JSON string literal, quotes included. Invalid UTF-8 bytes are replaced
// with U+FFFD so the result is always valid JSON.
std::string json_string(std::string_view text);

// Whether `text` is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace asya::envelope
