// Private to the C++ runtime (src/wire): the request envelope as the runtime reads it
// (PROTOCOL §3) and the failures that become error answers. parse_request() checks an envelope
// and points into it; validate_output() checks what an envelope-mode handler returns; a Failure
// becomes the one-element error answer of error_response(). Used by the payload and envelope
// paths (runtime_request.cpp) and the raw path (raw_request.cpp), so every path gives the same
// messages, worded like the Python runtime's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "common/json_text.hpp"

namespace asya::detail {

// An invalid request or an invalid handler output; becomes an error element.
struct Failure {
  std::string code;     // msg_parsing_error | processing_error
  std::string type;     // exception type name shown to the user
  std::string message;  // what was wrong
  std::string traceback;
};

// The answer `[{"error": code, "details": {message, type, traceback}}]`.
std::string error_response(const Failure& f);
// A request the runtime cannot read (msg_parsing_error).
Failure parsing_error(std::string message);
// A handler output that breaks the protocol (processing_error, InvalidHandlerResult).
Failure invalid_result(std::string message);
// Describes the exception being handled (call only inside a catch block).
Failure current_exception_failure();

// JSON type names as the Python runtime spells them, so both runtimes give the same messages.
const char* kind_name(const boost::json::value& v);

// The parse options of every request: a depth limit of 1000 (the default, 32, refuses ordinary
// nested payloads).
boost::json::parse_options parse_options();

// A parsed and checked request envelope.
struct Request {
  boost::json::value root;  // the whole envelope (an object)
  const boost::json::object* envelope = nullptr;
  const boost::json::object* route = nullptr;
  const boost::json::array* actors = nullptr;
  std::int64_t current = 0;
  const boost::json::value* headers = nullptr;  // null when the input had none
};

// Parses `text` into `out` and checks the envelope's fields; the failure naming the first field
// that is wrong, or nothing. The values live in a shared resource owned by out.root.
std::optional<Failure> parse_request(std::string_view text, Request& out);
// The checks of parse_request for a request already parsed into out.root (an element of a batch).
std::optional<Failure> check_request(Request& out);

// The failure of a handler that threw (call only inside a catch block), logged as the Python
// runtime logs it: the exception type at warn, its message only at debug (messages often quote
// the input), both with the envelope's id. The sidecar gets everything in the error answer.
Failure handler_failure(const Request& in);

// Envelope mode: the output may change the route's future, never its past (PROTOCOL §3).
std::optional<Failure> validate_output(const Request& in, const boost::json::object& env,
                                       const std::string& where);

// Appends the JSON text of `value` (a json::value or json::object) to `out`, serialized in place
// by boost::json::serializer, which prints doubles as "8.1E0": a value holding a double goes
// through to_json_text's shortest form instead ("8.1").
template <class JsonValue>
void append_json(std::string& out, const JsonValue& value) {
  if (contains_double(value)) {
    append_json_text(out, value);
    return;
  }
  boost::json::serializer serializer;
  serializer.reset(&value);
  while (!serializer.done()) {
    std::size_t used = out.size();
    // Bounded chunks: resize() zero-fills, so never touch much more than what is written.
    std::size_t room = std::clamp<std::size_t>(out.capacity() - used, 4096, 1u << 20);
    out.resize(used + room);
    std::size_t written = serializer.read(out.data() + used, room).size();
    out.resize(used + written);
  }
}

// JSON text of `value`: boost::json::serialize unless a double needs the shortest form.
std::string json_text(const boost::json::value& value);

}  // namespace asya::detail
