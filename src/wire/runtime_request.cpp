// The request/response logic of the C++ runtime (PROTOCOL §3), with no socket involved:
// parse and check the envelope, call the handler, build the JSON array answer.
#include <cxxabi.h>
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include "asya/runtime.hpp"

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
  return {"msg_parsing_error", "ValueError", std::move(message), {}};
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

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
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

// A parsed and checked request envelope.
struct Request {
  json::value root;  // the whole envelope (an object)
  const json::object* envelope = nullptr;
  const json::object* route = nullptr;
  const json::array* actors = nullptr;
  std::int64_t current = 0;
  const json::value* headers = nullptr;  // null when the input had none
};

std::optional<Failure> parse_request(std::string_view text, Request& out) {
  if (text.empty()) return parsing_error("request is empty: expected a JSON envelope object");
  // A shared monotonic resource: fast bump allocation, and values a handler copies keep it alive.
  json::parse_options options;
  options.max_depth = 1000;
  json::error_code ec;
  out.root = json::parse(text, ec, json::make_shared_resource<json::monotonic_resource>(), options);
  if (ec) {
    return parsing_error(fmt::format("request is not valid UTF-8 JSON: {}", ec.message()));
  }
  if (!out.root.is_object()) {
    return parsing_error(
        fmt::format("request is {}, expected a JSON envelope object", kind_name(out.root)));
  }
  const json::object& env = out.root.get_object();
  out.envelope = &env;
  if (const json::value* id = env.if_contains("id"); id && !id->is_string()) {
    return parsing_error(
        fmt::format("envelope field \"id\" is {}, expected a string", kind_name(*id)));
  }
  if (!env.contains("payload")) return parsing_error("envelope has no \"payload\" field");
  const json::value* route = env.if_contains("route");
  if (!route) return parsing_error("envelope has no \"route\" field");
  if (!route->is_object()) {
    return parsing_error(
        fmt::format("envelope field \"route\" is {}, expected an object", kind_name(*route)));
  }
  out.route = &route->get_object();
  const json::value* actors = out.route->if_contains("actors");
  if (!actors) return parsing_error("envelope field \"route.actors\" is missing");
  if (!actors->is_array()) {
    return parsing_error(
        fmt::format("envelope field \"route.actors\" is {}, expected a list", kind_name(*actors)));
  }
  if (actors->get_array().empty()) {
    return parsing_error(
        "envelope field \"route.actors\" is empty: it must list at least one actor");
  }
  out.actors = &actors->get_array();
  out.current = 0;
  if (const json::value* current = out.route->if_contains("current")) {
    if (!as_integer(*current, out.current)) {
      return parsing_error(fmt::format(
          "envelope field \"route.current\" is {}, expected an integer", kind_name(*current)));
    }
    if (out.current < 0 || out.current > static_cast<std::int64_t>(out.actors->size())) {
      return parsing_error(fmt::format(
          "envelope field \"route.current\" is {}, expected 0 to {} (the number of actors)",
          out.current, out.actors->size()));
    }
  }
  if (const json::value* headers = env.if_contains("headers")) {
    if (!headers->is_object()) {
      return parsing_error(
          fmt::format("envelope field \"headers\" is {}, expected an object", kind_name(*headers)));
    }
    out.headers = headers;
  }
  return std::nullopt;
}

Failure validation_error(std::size_t index, std::string message) {
  return {"processing_error",
          "ValueError",
          fmt::format("handler output {} is not a valid envelope: {}", index, message),
          {}};
}

// Envelope mode: the output may change the route's future, never its past (PROTOCOL §3).
std::optional<Failure> validate_output(const Request& in, const json::value& out,
                                       std::size_t index) {
  if (!out.is_object()) return validation_error(index, fmt::format("it is {}", kind_name(out)));
  const json::object& env = out.get_object();
  if (!env.contains("payload")) return validation_error(index, "it has no \"payload\" field");
  const json::value* route = env.if_contains("route");
  if (!route) return validation_error(index, "it has no \"route\" field");
  if (!route->is_object()) {
    return validation_error(index,
                            fmt::format("\"route\" is {}, expected an object", kind_name(*route)));
  }
  const json::value* actors = route->get_object().if_contains("actors");
  if (!actors || !actors->is_array()) {
    return validation_error(index, "\"route.actors\" is missing or not a list");
  }
  const json::array& out_actors = actors->get_array();
  std::size_t fixed = std::min(static_cast<std::size_t>(in.current) + 1, in.actors->size());
  bool prefix_kept = out_actors.size() >= fixed;
  for (std::size_t i = 0; prefix_kept && i < fixed; ++i)
    prefix_kept = out_actors[i] == (*in.actors)[i];
  if (!prefix_kept) {
    return validation_error(
        index,
        fmt::format("route.actors {} must start with the input's processed actors {} "
                    "(a handler may change the route's future, never its past)",
                    json::serialize(out_actors),
                    json::serialize(json::array(in.actors->begin(),
                                                in.actors->begin() + static_cast<long>(fixed)))));
  }
  std::int64_t current = 0;
  if (const json::value* c = route->get_object().if_contains("current")) {
    if (!as_integer(*c, current)) {
      return validation_error(
          index, fmt::format("\"route.current\" is {}, expected an integer", kind_name(*c)));
    }
  }
  if (current < 0 || current > static_cast<std::int64_t>(out_actors.size())) {
    return validation_error(index,
                            fmt::format("route.current {} is out of range: expected 0 to {} (the "
                                        "number of actors)",
                                        current, out_actors.size()));
  }
  return std::nullopt;
}

std::string handle_payload_request(std::string_view request, const PayloadHandler& handler) {
  Request in;
  if (auto failure = parse_request(request, in)) return error_response(*failure);
  Outputs outputs;
  try {
    outputs = handler(in.envelope->at("payload"));
  } catch (...) {
    return error_response(current_exception_failure());
  }
  json::array response;
  response.reserve(outputs.items().size());
  json::object next_route;
  if (!outputs.items().empty()) {
    next_route = *in.route;
    next_route["current"] = in.current + 1;
  }
  for (const Json& payload : outputs.items()) {
    json::object element;
    element.reserve(3);
    element["payload"] = payload;
    element["route"] = next_route;
    if (in.headers) element["headers"] = *in.headers;
    response.emplace_back(std::move(element));
  }
  return json::serialize(response);
}

std::string handle_envelope_request(std::string_view request, const EnvelopeHandler& handler,
                                    bool validate) {
  Request in;
  if (auto failure = parse_request(request, in)) return error_response(*failure);
  std::vector<Json> outputs;
  try {
    outputs = handler(*in.envelope);
  } catch (...) {
    return error_response(current_exception_failure());
  }
  if (validate) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (auto failure = validate_output(in, outputs[i], i)) return error_response(*failure);
    }
  }
  json::array response(std::make_move_iterator(outputs.begin()),
                       std::make_move_iterator(outputs.end()));
  return json::serialize(response);
}

}  // namespace

// Building or serializing the answer can still throw (bad_alloc, a handler-made value that
// cannot be copied); those become error elements too, so the server always has an answer.
std::string handle_request(std::string_view request, const PayloadHandler& handler) {
  try {
    return handle_payload_request(request, handler);
  } catch (...) {
    return error_response(current_exception_failure());
  }
}

std::string handle_request(std::string_view request, const EnvelopeHandler& handler,
                           bool validate) {
  try {
    return handle_envelope_request(request, handler, validate);
  } catch (...) {
    return error_response(current_exception_failure());
  }
}

}  // namespace asya
