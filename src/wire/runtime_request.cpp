// The request/response logic of the C++ runtime (PROTOCOL §3), with no socket involved:
// parse and check the envelope, call the handler, build the JSON array answer.
#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <typeinfo>

#include <spdlog/spdlog.h>

#include "asya/runtime.hpp"
#include "common/json_text.hpp"
#include "common/log.hpp"
#include "wire/runtime_answer.hpp"

namespace asya {
namespace {

namespace json = boost::json;

// An invalid request or an invalid handler output; becomes an error element.
struct Failure {
  std::string code;     // msg_parsing_error | processing_error
  std::string type;     // exception type name shown to the user
  std::string message;  // what was wrong
  std::string traceback;
};

// Appends the JSON text of `value` (a json::value or json::object) to `out`, serialized in place
// by boost::json::serializer, which prints doubles as "8.1E0": a value holding a double goes
// through to_json_text's shortest form instead ("8.1").
template <class JsonValue>
void append_json(std::string& out, const JsonValue& value) {
  if (contains_double(value)) {
    append_json_text(out, value);
    return;
  }
  json::serializer serializer;
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
std::string json_text(const json::value& value) {
  return contains_double(value) ? to_json_text(value) : json::serialize(value);
}

std::string error_response(const Failure& f) {
  json::object details;
  details["message"] = f.message;
  details["type"] = f.type;
  details["traceback"] = f.traceback.empty() ? f.type + ": " + f.message : f.traceback;
  json::object element;
  element["error"] = f.code;
  element["details"] = std::move(details);
  json::array response;
  response.emplace_back(std::move(element));
  return json::serialize(response);
}

Failure parsing_error(std::string message) {
  return {"msg_parsing_error", "InvalidRequest", std::move(message), {}};
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

// Describes the exception being handled (call only inside a catch block).
Failure current_exception_failure() {
  std::string type = "unknown";
  if (const std::type_info* info = abi::__cxa_current_exception_type())
    type = demangle(info->name());
  std::string message;
  try {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "handler threw an exception that is not derived from std::exception";
  }
  std::string traceback = fmt::format(
      "{}: {}\n  (raised by the C++ handler; C++ exceptions carry no stack trace)", type, message);
  return {"processing_error", std::move(type), std::move(message), std::move(traceback)};
}

// JSON type names as the Python runtime spells them, so both runtimes give the same messages.
const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "unknown";
}

// Reads an integer JSON value; false for anything else (booleans and 1.0 are not integers).
bool as_integer(const json::value& v, std::int64_t& out) {
  if (v.is_int64()) {
    out = v.get_int64();
    return true;
  }
  if (v.is_uint64()) {
    out = v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)
              ? INT64_MAX
              : static_cast<std::int64_t>(v.get_uint64());
    return true;
  }
  return false;
}

// Offset of the first byte that is not part of valid UTF-8, or npos. Only run after a parse
// failure, to tell the user which of the two is wrong.
std::size_t invalid_utf8_offset(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t n = text.size(), i = 0;
  while (i < n) {
    unsigned char c = s[i];
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

json::parse_options parse_options() {
  json::parse_options options;
  options.max_depth = 1000;  // the default (32) refuses ordinary nested payloads
  return options;
}

// A parsed and checked request envelope.
struct Request {
  json::value root;  // the whole envelope (an object)
  const json::object* envelope = nullptr;
  const json::object* route = nullptr;
  const json::array* actors = nullptr;
  std::int64_t current = 0;
  const json::value* headers = nullptr;  // null when the input had none
};

// The failure of a handler that threw (call only inside a catch block), logged as the Python
// runtime logs it: the exception type at warn, its message only at debug (messages often quote
// the input), both with the envelope's id. The sidecar gets everything in the error answer.
Failure handler_failure(const Request& in) {
  Failure failure = current_exception_failure();
  std::string_view id;
  if (const json::value* v = in.envelope ? in.envelope->if_contains("id") : nullptr;
      v && v->is_string()) {
    id = v->get_string();
  }
  log::EnvelopeScope scope(id);
  spdlog::warn("handler raised {}", failure.type);
  spdlog::debug("handler exception message: {}", failure.message);
  return failure;
}

std::optional<Failure> parse_request(std::string_view text, Request& out) {
  if (text.empty()) {
    return parsing_error("empty request: the frame has no body, expected a JSON envelope");
  }
  // One parser per thread keeps its internal buffers between requests. The values live in a
  // shared monotonic resource: bump allocation, and a handler that keeps a copy keeps it alive.
  thread_local json::parser parser(json::storage_ptr(), parse_options());
  parser.reset(json::make_shared_resource<json::monotonic_resource>());
  json::error_code ec;
  std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (ec) {
    parser.reset();
    if (std::size_t bad = invalid_utf8_offset(text); bad != std::string_view::npos) {
      return parsing_error(
          fmt::format("request is not valid UTF-8: invalid byte 0x{:02x} at offset {}",
                      static_cast<unsigned char>(text[bad]), bad));
    }
    return parsing_error(
        fmt::format("request is not valid JSON: {} at offset {}", ec.message(), consumed));
  }
  out.root = parser.release();
  if (!out.root.is_object()) {
    return parsing_error(
        fmt::format("request must be a JSON object (an envelope), got {}", kind_name(out.root)));
  }
  const json::object& env = out.root.get_object();
  out.envelope = &env;
  if (!env.contains("payload")) return parsing_error("envelope has no 'payload' field");
  const json::value* route = env.if_contains("route");
  if (!route) return parsing_error("envelope has no 'route' field");
  if (!route->is_object()) {
    return parsing_error(
        fmt::format("envelope field 'route' must be an object, got {}", kind_name(*route)));
  }
  out.route = &route->get_object();
  const json::value* actors = out.route->if_contains("actors");
  if (!actors) return parsing_error("envelope field 'route.actors' is missing");
  if (!actors->is_array()) {
    return parsing_error(
        fmt::format("envelope field 'route.actors' must be an array, got {}", kind_name(*actors)));
  }
  out.actors = &actors->get_array();
  if (out.actors->empty()) return parsing_error("envelope field 'route.actors' must not be empty");
  for (std::size_t i = 0; i < out.actors->size(); ++i) {
    if (!(*out.actors)[i].is_string()) {
      return parsing_error(fmt::format("envelope field 'route.actors[{}]' must be a string, got {}",
                                       i, kind_name((*out.actors)[i])));
    }
  }
  out.current = 0;
  if (const json::value* current = out.route->if_contains("current")) {
    if (!as_integer(*current, out.current)) {
      return parsing_error(fmt::format("envelope field 'route.current' must be an integer, got {}",
                                       kind_name(*current)));
    }
  }
  if (out.current < 0 || out.current > static_cast<std::int64_t>(out.actors->size())) {
    return parsing_error(fmt::format(
        "envelope field 'route.current' is {}, out of range: must be between 0 and {} (the number "
        "of actors)",
        out.current, out.actors->size()));
  }
  if (const json::value* metadata = out.route->if_contains("metadata");
      metadata && !metadata->is_object()) {
    return parsing_error(fmt::format("envelope field 'route.metadata' must be an object, got {}",
                                     kind_name(*metadata)));
  }
  if (const json::value* headers = env.if_contains("headers")) {
    if (!headers->is_object()) {
      return parsing_error(
          fmt::format("envelope field 'headers' must be an object, got {}", kind_name(*headers)));
    }
    out.headers = headers;
  }
  if (const json::value* id = env.if_contains("id"); id && !id->is_string()) {
    return parsing_error(
        fmt::format("envelope field 'id' must be a string, got {}", kind_name(*id)));
  }
  return std::nullopt;
}

Failure invalid_result(std::string message) {
  return {"processing_error", "InvalidHandlerResult", std::move(message), {}};
}

// Envelope mode: the output may change the route's future, never its past (PROTOCOL §3).
// Messages follow the Python runtime's wording.
std::optional<Failure> validate_output(const Request& in, const json::object& env,
                                       const std::string& where) {
  if (!env.contains("payload")) return invalid_result(fmt::format("{} has no 'payload'", where));
  const json::value* route = env.if_contains("route");
  if (!route || !route->is_object()) {
    return invalid_result(fmt::format("{}: 'route' must be an object, got {}", where,
                                      route ? kind_name(*route) : "nothing"));
  }
  const json::value* actors = route->get_object().if_contains("actors");
  if (!actors || !actors->is_array()) {
    return invalid_result(fmt::format("{}: 'route.actors' must be an array, got {}", where,
                                      actors ? kind_name(*actors) : "null"));
  }
  const json::array& out_actors = actors->get_array();
  std::size_t kept = std::min(static_cast<std::size_t>(in.current) + 1, in.actors->size());
  bool prefix_kept = out_actors.size() >= kept;
  for (std::size_t i = 0; prefix_kept && i < kept; ++i) {
    prefix_kept = out_actors[i] == (*in.actors)[i];
  }
  if (!prefix_kept) {
    json::array kept_actors(in.actors->begin(), in.actors->begin() + static_cast<long>(kept));
    return invalid_result(fmt::format(
        "{} changes the route's past: input actors[0..{}] {} must be kept as the start of the "
        "output actors, got {}",
        where, in.current, json::serialize(kept_actors), json::serialize(out_actors)));
  }
  std::int64_t current = 0;
  if (const json::value* c = route->get_object().if_contains("current")) {
    if (!as_integer(*c, current)) {
      return invalid_result(
          fmt::format("{}: 'route.current' must be an integer, got {}", where, kind_name(*c)));
    }
  }
  if (current < 0 || current > static_cast<std::int64_t>(out_actors.size())) {
    return invalid_result(
        fmt::format("{}: 'route.current' is {}, must be between 0 and {} (the number of actors)",
                    where, current, out_actors.size()));
  }
  if (const json::value* headers = env.if_contains("headers"); headers && !headers->is_object()) {
    return invalid_result(
        fmt::format("{}: 'headers' must be an object, got {}", where, kind_name(*headers)));
  }
  return std::nullopt;
}

void handle_payload_request(std::string_view request, const PayloadHandler& handler,
                            std::string& response) {
  Request in;
  if (auto failure = parse_request(request, in)) {
    response = error_response(*failure);
    return;
  }
  Outputs outputs;
  try {
    outputs = handler(in.envelope->at("payload"));
  } catch (...) {
    response = error_response(handler_failure(in));
    return;
  }
  // The answer is written straight into one string: no JSON value is copied to build it (a
  // 100 MB payload is serialized once, from where the handler left it).
  response.clear();
  response.reserve(request.size() + 256);
  response += '[';
  std::string route_and_headers;
  if (!outputs.items().empty()) {
    json::object next_route = *in.route;
    next_route["current"] = in.current + 1;
    route_and_headers = ",\"route\":";
    append_json(route_and_headers, next_route);
    if (in.headers) {
      route_and_headers += ",\"headers\":";
      append_json(route_and_headers, *in.headers);
    }
    route_and_headers += '}';
  }
  bool first = true;
  for (const Json& payload : outputs.items()) {
    response += first ? "{\"payload\":" : ",{\"payload\":";
    first = false;
    append_json(response, payload);
    response += route_and_headers;
  }
  response += ']';
}

std::string handle_envelope_request(std::string_view request, const EnvelopeHandler& handler,
                                    bool validate) {
  Request in;
  if (auto failure = parse_request(request, in)) return error_response(*failure);
  // The handler sees the fields an actor may act on, like in the Python runtime; other fields
  // are the sidecar's business. Copy only when there is something to leave out.
  static constexpr std::string_view kHandlerFields[] = {"id",      "parent_id", "route",
                                                        "headers", "deadline",  "payload"};
  auto is_handler_field = [](std::string_view key) {
    for (auto field : kHandlerFields) {
      if (key == field) return true;
    }
    return false;
  };
  const json::object* handler_envelope = in.envelope;
  json::object filtered;
  for (const auto& entry : *in.envelope) {
    if (!is_handler_field(entry.key())) {
      for (const auto& kept : *in.envelope) {
        if (is_handler_field(kept.key())) filtered.emplace(kept.key(), kept.value());
      }
      handler_envelope = &filtered;
      break;
    }
  }
  std::vector<Json> outputs;
  try {
    outputs = handler(*handler_envelope);
  } catch (...) {
    return error_response(handler_failure(in));
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    std::string where = outputs.size() > 1 ? fmt::format("output {}", i) : std::string("output");
    if (!outputs[i].is_object()) {
      return error_response(invalid_result(
          fmt::format("{} of the envelope-mode handler is {}, not an envelope (object)", where,
                      kind_name(outputs[i]))));
    }
    if (!validate) continue;
    if (auto failure = validate_output(in, outputs[i].get_object(), where)) {
      return error_response(*failure);
    }
  }
  std::string response;
  response.reserve(request.size() + 256);
  response += '[';
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (i > 0) response += ',';
    append_json(response, outputs[i]);
  }
  response += ']';
  return response;
}

// A basic_parser handler that keeps nothing: checks JSON syntax (UTF-8 included, same depth
// limit as the DOM path) without building a value.
struct NullHandler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t, json::error_code&) { return true; }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Checks that `text` is exactly one JSON value; the error message otherwise.
std::optional<std::string> json_syntax_error(std::string_view text) {
  json::basic_parser<NullHandler> parser(parse_options());
  json::error_code ec;
  std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && consumed != text.size()) ec = json::error::extra_data;
  if (!ec) return std::nullopt;
  return fmt::format("{} at offset {}", ec.message(), consumed);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char* skip_space(const char* p, const char* end) {
  while (p < end && is_space(*p)) ++p;
  return p;
}

// Where the JSON value that starts at `p` ends, validated on the way exactly as the DOM parser
// would validate it as the envelope's "payload" (syntax, UTF-8, depth: one level less than the
// envelope's limit, as the envelope object takes one), building nothing. Trailing whitespace is
// not part of the value. nullptr when no valid JSON value starts at `p`.
const char* validated_value_end(const char* p, const char* end) {
  json::parse_options options = parse_options();
  options.max_depth -= 1;
  json::basic_parser<NullHandler> parser(options);
  json::error_code ec;
  std::size_t consumed = parser.write_some(false, p, static_cast<std::size_t>(end - p), ec);
  if (ec || !parser.done()) return nullptr;
  const char* value_end = p + consumed;
  while (value_end > p && is_space(value_end[-1])) --value_end;
  return value_end;
}

// A scanner for the top level of a request that was NOT validated: every step is bounded by
// `end` and gives up (nullptr) on anything it does not understand. It is exact on valid JSON,
// which is all the raw path relies on (see find_payload).
//
// `p` at an opening quote: the position after the closing quote (the first quote not preceded
// by an odd number of backslashes), or nullptr when the string is not terminated.
const char* skip_string(const char* p, const char* end) {
  const char* start = ++p;
  for (;;) {
    const char* quote =
        static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
    if (quote == nullptr) return nullptr;
    std::size_t backslashes = 0;
    for (const char* q = quote; q > start && q[-1] == '\\'; --q) ++backslashes;
    if (backslashes % 2 == 0) return quote + 1;
    p = quote + 1;
  }
}

// Where a value starting at `p` ends: strings skipped with memchr, containers by counting
// brackets outside strings, scalars up to the next delimiter. nullptr when unterminated.
const char* skip_value(const char* p, const char* end) {
  if (p == end) return nullptr;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    std::size_t depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        p = skip_string(p, end);
        if (p == nullptr) return nullptr;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      ++p;
    }
    return nullptr;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_space(*p)) ++p;
  return p;
}

// The span of the top-level "payload" value of a request, validated (validated_value_end), or
// nullopt when the scan finds something unusual: not an object, no or several "payload" keys, a
// key written with escapes, an invalid payload, an unterminated string or container.
//
// Why validating the payload span plus a DOM parse of the rest (the request with `null` in place
// of the payload) validates the whole request: when that rest is valid JSON, the scanner's walk
// over the bytes before the payload (identical in both texts) followed the real structure, so
// the `null` stands exactly where a value of the top-level object's "payload" key belongs, and
// replacing one value of a valid document by another valid value (one level shallower than the
// limit) gives a valid document. Any other case takes the DOM path on the whole request.
std::optional<std::string_view> find_payload(std::string_view request) {
  const char* p = request.data();
  const char* end = p + request.size();
  p = skip_space(p, end);
  if (p == end || *p != '{') return std::nullopt;
  p = skip_space(p + 1, end);
  std::optional<std::string_view> payload;
  while (p < end && *p == '"') {
    const char* key_end = skip_string(p, end);
    if (key_end == nullptr) return std::nullopt;
    std::string_view key(p + 1, static_cast<std::size_t>(key_end - 1 - (p + 1)));
    if (key.find('\\') != std::string_view::npos) return std::nullopt;
    p = skip_space(key_end, end);
    if (p == end || *p != ':') return std::nullopt;
    p = skip_space(p + 1, end);
    const char* value_end;
    if (key == "payload") {
      if (payload) return std::nullopt;
      value_end = validated_value_end(p, end);
      if (value_end == nullptr) return std::nullopt;
      payload = std::string_view(p, static_cast<std::size_t>(value_end - p));
    } else {
      value_end = skip_value(p, end);
      if (value_end == nullptr) return std::nullopt;
    }
    p = skip_space(value_end, end);
    if (p < end && *p == ',') p = skip_space(p + 1, end);
  }
  return payload;
}

// The answer of the raw path, as pieces: each output's text between `{"payload":` and the route
// (current + 1, serialized from `route` exactly like the DOM path does) and the input's headers.
// A view of the payload is written from the request's own bytes.
void raw_answer(std::string_view payload, const json::object& route, std::int64_t current,
                std::string_view headers_json, RawOutputs&& outputs, detail::Answer& out) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    std::string_view text = outputs.item(i);
    if (text.data() == payload.data() && text.size() == payload.size()) continue;  // checked
    if (auto error = json_syntax_error(text)) {
      std::string where = outputs.size() > 1 ? fmt::format("output {}", i) : std::string("output");
      out.text = error_response(invalid_result(
          fmt::format("{} of the raw handler is not one valid JSON value: {}", where, *error)));
      return;
    }
  }
  if (outputs.size() == 0) {
    out.text = "[]";
    return;
  }
  // out.text holds the route and headers shared by every output, then the closing bracket.
  json::object next_route = route;
  next_route["current"] = current + 1;
  out.text = ",\"route\":";
  append_json(out.text, next_route);
  if (!headers_json.empty()) {
    out.text += ",\"headers\":";
    out.text += headers_json;
  }
  out.text += "}]";
  std::string_view route_and_headers(out.text.data(), out.text.size() - 1);
  std::string_view closing(out.text.data() + out.text.size() - 1, 1);
  out.outputs = std::move(outputs);  // views are taken after the move (short strings move)
  out.pieces.reserve(3 * out.outputs.size() + 2);
  out.pieces.emplace_back("[");
  for (std::size_t i = 0; i < out.outputs.size(); ++i) {
    out.pieces.emplace_back(i == 0 ? std::string_view("{\"payload\":")
                                   : std::string_view(",{\"payload\":"));
    out.pieces.push_back(out.outputs.item(i));
    out.pieces.push_back(route_and_headers);
  }
  out.pieces.push_back(closing);
}

void handle_raw_payload_request(std::string_view request, const RawPayloadHandler& handler,
                                detail::Answer& out) {
  // 1. The payload's span, found by a scan of the top level and validated as it is walked (one
  //    pass over the payload's bytes: syntax, UTF-8, depth, building nothing). 2. The rest of the
  //    envelope, with `null` in place of the payload, through the DOM path's own parse_request:
  //    it validates those bytes and applies every field rule and message of the DOM path, on a
  //    small text. Anything unusual (invalid JSON, no or several payload keys, escaped keys, a
  //    field error) takes the DOM path on the original request, so the answer is always the DOM
  //    path's.
  std::optional<std::string_view> payload = find_payload(request);
  Request in;
  if (payload) {
    thread_local std::string rest;
    rest.clear();
    rest.append(request.data(), static_cast<std::size_t>(payload->data() - request.data()));
    rest += "null";
    rest.append(payload->data() + payload->size(),
                static_cast<std::size_t>(request.data() + request.size() -
                                         (payload->data() + payload->size())));
    bool rest_valid = !parse_request(rest, in);  // the parsed values do not refer to `rest`
    if (rest.capacity() > detail::kKeptBufferBytes) std::string().swap(rest);
    if (rest_valid) {
      std::string headers = in.headers ? json_text(*in.headers) : std::string();
      RawOutputs outputs;
      try {
        outputs = handler(*payload);
      } catch (...) {
        out.text = error_response(handler_failure(in));
        return;
      }
      raw_answer(*payload, *in.route, in.current, headers, std::move(outputs), out);
      return;
    }
  }
  // The DOM path decides: its error message, or (for a request the fast path left alone) the
  // payload serialized back to text for the handler.
  if (auto failure = parse_request(request, in)) {
    out.text = error_response(*failure);
    return;
  }
  std::string payload_text = json_text(in.envelope->at("payload"));
  std::string headers = in.headers ? json_text(*in.headers) : std::string();
  RawOutputs outputs;
  try {
    outputs = handler(payload_text);
  } catch (...) {
    out.text = error_response(handler_failure(in));
    return;
  }
  raw_answer(payload_text, *in.route, in.current, headers, std::move(outputs), out);
  // Pieces may refer to payload_text, which ends here: keep the answer as one string.
  if (!out.pieces.empty()) {
    std::string whole = out.to_string();
    out.pieces.clear();
    out.outputs = RawOutputs();
    out.text = std::move(whole);
  }
}

}  // namespace

namespace detail {

void Answer::clear() {
  if (text.capacity() > kKeptBufferBytes) {
    std::string().swap(text);
  } else {
    text.clear();
  }
  pieces.clear();
  outputs = RawOutputs();
}

std::size_t Answer::size() const {
  if (pieces.empty()) return text.size();
  std::size_t total = 0;
  for (std::string_view piece : pieces) total += piece.size();
  return total;
}

std::string Answer::to_string() const {
  if (pieces.empty()) return text;
  std::string whole;
  whole.reserve(size());
  for (std::string_view piece : pieces) whole += piece;
  return whole;
}

// Building or serializing the answer can still throw (bad_alloc, a handler-made value that
// cannot be copied); those become error elements too, so the server always has an answer.
void respond_payload(std::string_view request, const PayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_payload_request(request, handler, out.text);
  } catch (...) {
    out.clear();
    out.text = error_response(current_exception_failure());
  }
}

void respond_raw(std::string_view request, const RawPayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_raw_payload_request(request, handler, out);
  } catch (...) {
    out.clear();
    out.text = error_response(current_exception_failure());
  }
}

}  // namespace detail

std::string handle_request(std::string_view request, const PayloadHandler& handler) {
  detail::Answer answer;
  detail::respond_payload(request, handler, answer);
  return std::move(answer.text);
}

std::string handle_request(std::string_view request, const EnvelopeHandler& handler,
                           bool validate) {
  try {
    return handle_envelope_request(request, handler, validate);
  } catch (...) {
    return error_response(current_exception_failure());
  }
}

std::string handle_raw_request(std::string_view request, const RawPayloadHandler& handler) {
  detail::Answer answer;
  detail::respond_raw(request, handler, answer);
  return answer.to_string();
}

}  // namespace asya
