// A new envelope (PROTOCOL §1) at the start of a route: the one way `asya send` and the gateway
// (a tool call) create a message. Built by splicing text like the rest of src/envelope: the
// payload's bytes are copied as given (numbers keep their spelling, keys their order).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace asya::envelope {

struct NewEnvelope {
  // The envelope id; empty means a new random UUID (common/random_id.hpp).
  std::string id;
  // route.actors, the first one consumes the envelope (route.current is 0).
  std::vector<std::string> actors;
  // route.metadata as the text of one JSON object (e.g. {"job_id":"…"}), copied as is; empty
  // leaves route.metadata out.
  std::string route_metadata_json;
  // String headers in this order; none leaves "headers" out. Keys starting with "asya-" are
  // reserved for the system (refused).
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the header asya-sent-at (PROTOCOL §1) with this time (RFC 3339, microseconds), from
  // which the first actor's trace span measures the queue wait.
  std::optional<std::chrono::system_clock::time_point> sent_at;
  // The envelope's deadline, written as RFC 3339 UTC with milliseconds; nullopt: none.
  std::optional<std::chrono::system_clock::time_point> deadline;
  // The payload: the text of one JSON value, copied byte for byte and not checked here (the
  // caller parsed it, or the runtime will refuse it).
  std::string_view payload_json;
};

// The envelope text {"id","route":{"actors","current":0,"metadata"?},"headers"?,"deadline"?,
// "payload"} (that key order). Refuses, naming the field and the value: an id longer than 256
// bytes, an empty route, an invalid actor name, a reserved header key, an empty payload.
// Thread-safe.
Result<std::string> new_envelope(const NewEnvelope& spec);

}  // namespace asya::envelope
