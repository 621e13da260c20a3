// Building outgoing envelopes by splicing raw JSON text (PROTOCOL §4). Nothing here parses or
// re-encodes a payload: the bytes given are copied as they are.
#pragma once

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "envelope/envelope.hpp"
#include "envelope/response.hpp"

namespace asya::envelope {

// A string header to write into an envelope's headers (the trace context: traceparent,
// asya-sent-at): one of the same name gets the new value where it stands, a new one is appended,
// every other header is kept as it is.
struct StringHeader {
  std::string_view name;
  std::string_view value;
};

// Output `index` (0-based) of a response to input `in`:
// id = output_id(in, index); parent_id = in.id for index >= 1, else in's own parent_id when
// present; headers = `headers_json` when non-empty (a fan-out's stamped headers), else
// item.headers_raw when non-empty, else in's headers, with `set_headers` (at most 8) written in;
// deadline and unknown fields of `in` kept; route and payload from the item.
std::string build_output(const Envelope& in, std::size_t index, const ResponseItem& item,
                         std::string_view headers_json = {},
                         std::span<const StringHeader> set_headers = {});

// build_output's text cut around the payload, for a large output written without assembling it:
// head + item.payload_raw + kOutputTail is byte for byte build_output(in, index, item,
// headers_json, set_headers) when item.payload_raw is not empty (the payload is always the last
// member).
std::string build_output_head(const Envelope& in, std::size_t index, const ResponseItem& item,
                              std::string_view headers_json = {},
                              std::span<const StringHeader> set_headers = {});
inline constexpr std::string_view kOutputTail = "}";

// The id of output `index` of input `in`: fanout_child_id(in.id, in.current, index)
// (envelope/fanout.hpp): in.id for index 0, unique suffixes otherwise.
std::string output_id(const Envelope& in, std::size_t index);

// The error envelope sent to error-end: in's id, parent_id, route (unchanged), deadline, unknown
// fields, headers with {"actor","error","at"} appended to "asya-error-chain" (at most 10 kept,
// most recent last), and payload
//   {"error": code, "details": {"message","type","traceback"}, "actor": actor,
//    "original_payload": <raw>}.
struct ErrorInfo {
  std::string code;  // processing_error, runtime_timeout, ...
  std::string message;
  std::string type;  // exception type, or the code for sidecar-side errors
  std::string traceback;
};
std::string build_error(const Envelope& in, std::string_view actor, const ErrorInfo& error);

// `in` again with new headers where "asya-attempt" is set to `attempt` (other headers kept), for
// re-enqueueing a retry of the same hop.
std::string with_attempt(const Envelope& in, int attempt);

// `body` (an envelope; `parsed` is parse(body), so its views point into `body`) with the string
// headers `set` (at most 8) written in as build_output writes them (a "headers" object is added
// when there is none), every other byte of `body` kept as it is. For the trace context of an
// output the router did not build with it (tracing.hpp, Hop::stamp).
std::string with_string_headers(const Envelope& parsed, std::string_view body,
                                std::span<const StringHeader> set);
inline std::string with_string_headers(const Envelope& parsed, std::string_view body,
                                       std::initializer_list<StringHeader> set) {
  return with_string_headers(parsed, body, std::span<const StringHeader>(set.begin(), set.size()));
}

// The values of the string headers `names` of `in`, in the order of `names`: nullopt for one that
// is absent, not a string, or a string written with escapes (trace context values never need
// them).
std::vector<std::optional<std::string>> string_headers(const Envelope& in,
                                                       const std::vector<std::string_view>& names);
// The same as views into `in`'s body, written into `values` (values.size() == names.size()): no
// allocation (a sidecar reads its trace headers so for every message).
void string_header_views(const Envelope& in, std::span<const std::string_view> names,
                         std::span<std::optional<std::string_view>> values);

// Reads header "asya-attempt" (1 when absent or not a positive integer).
int attempt_of(const Envelope& in);

// Wraps a body that is not a parseable envelope so it reaches error-end once and never loops:
// {"id": "unparseable-<hash>", "route": {"actors": [actor], "current": 0},
//  "payload": {"error": "msg_parsing_error", "message": <why>, "actor": actor,
//              "raw": "<first 64 KiB>"}}
// The hash is a stable hex hash of the whole body, so redeliveries get the same id.
std::string wrap_unparseable(std::string_view body, std::string_view actor, std::string_view why);

}  // namespace asya::envelope
