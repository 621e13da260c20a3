// The request envelope of the C++ runtime (runtime_envelope.hpp): parsing and checking it,
// checking an envelope-mode handler's outputs, and the failures that become error answers.
#include "wire/runtime_envelope.hpp"

#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include <spdlog/spdlog.h>

#include "common/log.hpp"

namespace asya::detail {
namespace {

namespace json = boost::json;

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
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

}  // namespace

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

Failure invalid_result(std::string message) {
  return {"processing_error", "InvalidHandlerResult", std::move(message), {}};
}

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

json::parse_options parse_options() {
  json::parse_options options;
  options.max_depth = 1000;  // the default (32) refuses ordinary nested payloads
  return options;
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
  return check_request(out);
}

std::optional<Failure> check_request(Request& out) {
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

std::string json_text(const json::value& value) {
  return contains_double(value) ? to_json_text(value) : json::serialize(value);
}

}  // namespace asya::detail
