// The C++ conformance runtime: the handlers of ../conformance_handlers.py, with the same names
// and behaviour, served by the C++ runtime library. ASYA_HANDLER selects one
// ("conformance_handlers.echo"); the shared pytest suite runs against this and the Python runtime.
// With ASYA_CONFORMANCE_RAW=1 the payload-mode handlers are served as raw handlers
// (asya::serve_raw): the same behaviour on the payload's JSON text, so the suite checks that the
// raw path answers every request exactly like the DOM path (suite runtime kind "cpp_raw").
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include "asya/runtime.hpp"

namespace json = boost::json;
using asya::Json;
using asya::Outputs;

// Exception classes named like the Python exceptions the same handlers raise, so the error
// "type" reads the same from both runtimes. Global namespace on purpose: the type name is the
// demangled C++ name.
struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct KeyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct AttributeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace {

// payload.get(key, fallback) in Python terms: the payload must be an object.
const Json& get(const Json& payload, const char* key, const Json& fallback) {
  if (!payload.is_object()) {
    throw AttributeError(std::string("'") + (payload.is_array() ? "list" : "non-dict") +
                         "' object has no attribute 'get'");
  }
  const Json* value = payload.get_object().if_contains(key);
  return value ? *value : fallback;
}

std::int64_t integer(const Json& value, const char* what) {
  if (value.is_int64()) return value.get_int64();
  if (value.is_uint64()) return static_cast<std::int64_t>(value.get_uint64());
  throw TypeError(std::string(what) + " must be an integer");
}

double number(const Json& value, const char* what) {
  if (value.is_int64()) return static_cast<double>(value.get_int64());
  if (value.is_uint64()) return static_cast<double>(value.get_uint64());
  if (value.is_double()) return value.get_double();
  throw TypeError(std::string(what) + " must be a number");
}

Outputs echo(const Json& payload) {
  if (payload.is_object()) {
    if (const Json* message = payload.get_object().if_contains("message")) {
      return json::object{{"echoed", *message}};
    }
  }
  return payload;
}

Outputs fanout(const Json& payload) {
  std::int64_t count = integer(get(payload, "count", 3), "count");
  std::vector<Json> outputs;
  for (std::int64_t index = 0; index < count; ++index) {
    json::object item = payload.get_object();
    item["index"] = index;
    item["message"] = "Fan-out message " + std::to_string(index);
    outputs.emplace_back(std::move(item));
  }
  return Outputs::fan_out(std::move(outputs));
}

Outputs abort_handler(const Json&) {
  return Outputs::none();
}

Outputs fail(const Json&) {
  throw ValueError("Intentional test failure");
}

Outputs sleep_handler(const Json& payload) {
  double seconds = number(get(payload, "sleep_seconds", 0), "sleep_seconds");
  if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return payload;
}

Outputs big(const Json& payload) {
  const Json& size_value = get(payload, "size_bytes", nullptr);
  if (size_value.is_null()) throw KeyError("'size_bytes'");
  std::int64_t size = integer(size_value, "size_bytes");
  json::object out;
  out["size"] = size;
  out["data"] = json::string(static_cast<std::size_t>(size), 'X');
  return out;
}

// Stateful, like conformance_handlers.Counter: one instance per runtime process.
class Counter {
 public:
  Outputs process(const Json&) { return json::object{{"count", ++calls_}}; }

 private:
  std::int64_t calls_ = 0;
};

std::vector<Json> envelope_edit(const json::object& envelope) {
  const Json& payload = envelope.at("payload");
  std::string edit = "next";
  if (payload.is_object()) {
    if (const Json* e = payload.get_object().if_contains("edit"))
      edit = json::value_to<std::string>(*e);
  }
  const json::object& route = envelope.at("route").as_object();
  json::array actors = route.at("actors").as_array();
  std::int64_t current =
      route.contains("current") ? route.at("current").to_number<std::int64_t>() : 0;
  json::object out = envelope;
  json::object& out_route = out["route"].as_object();
  if (edit == "next") {
    out_route["current"] = current + 1;
  } else if (edit == "append") {
    actors.emplace_back("extra");
    out_route["actors"] = actors;
    out_route["current"] = current + 1;
  } else if (edit == "replace_future") {
    json::array kept(actors.begin(), actors.begin() + current + 1);
    kept.emplace_back("other");
    out_route["actors"] = kept;
    out_route["current"] = current + 1;
  } else if (edit == "change_past") {
    actors[0] = "hacked";
    out_route["actors"] = actors;
  } else if (edit == "change_current") {
    actors[static_cast<std::size_t>(current)] = "other";
    out_route["actors"] = actors;
  } else if (edit == "drop_payload") {
    out.erase("payload");
    out["route"].as_object()["current"] = current + 1;
  } else if (edit == "bad_route") {
    out["route"] = "nope";
  } else if (edit == "fanout") {
    out_route["current"] = current + 1;
    return {out, out};
  } else if (edit == "beyond_end") {
    out_route["current"] = static_cast<std::int64_t>(actors.size()) + 1;
  } else {
    throw ValueError("unknown edit '" + edit + "'");
  }
  return {out};
}

// conformance_handlers.batch_mixed: the same batch handler as the Python one.
std::vector<asya::BatchResult> batch_mixed(const std::vector<Json>& payloads) {
  auto field = [](const Json& p, const char* key) -> Json {
    const Json* v = p.is_object() ? p.get_object().if_contains(key) : nullptr;
    return v ? *v : Json(nullptr);
  };
  bool shorten = false;
  for (const Json& p : payloads) {
    Json d = field(p, "do");
    if (d.is_string() && d.get_string() == "raise") throw ValueError("batch failed");
    if (d.is_string() && d.get_string() == "short") shorten = true;
  }
  std::vector<asya::BatchResult> results;
  for (const Json& p : payloads) {
    Json d = field(p, "do");
    Json n = field(p, "n");
    std::string action = d.is_string() ? std::string(d.get_string()) : "";
    if (action == "abort") {
      results.emplace_back(Outputs::none());
    } else if (action == "fail") {
      results.push_back(
          asya::BatchResult::failure(ValueError("item " + json::serialize(n) + " failed")));
    } else if (action == "fanout") {
      results.emplace_back(
          Outputs::fan_out({json::object{{"n", n}, {"i", 0}}, json::object{{"n", n}, {"i", 1}}}));
    } else {
      results.emplace_back(Outputs(json::object{{"n", n}}));
    }
  }
  if (shorten) results.pop_back();
  return results;
}

// conformance_handlers.batch_numbered: numbers its calls, as the Python one.
std::vector<asya::BatchResult> batch_numbered(const std::vector<Json>& payloads) {
  static std::atomic<std::int64_t> calls{0};
  const std::int64_t call = calls.fetch_add(1);
  std::vector<asya::BatchResult> results;
  for (const Json& p : payloads) {
    const Json* n = p.is_object() ? p.get_object().if_contains("n") : nullptr;
    results.emplace_back(Outputs(json::object{{"n", n ? *n : Json(nullptr)}, {"call", call}}));
  }
  return results;
}

const char* kPrefix = "conformance_handlers.";

// A DOM handler as a raw handler: parse the text, call it, serialize what it returns.
asya::RawPayloadHandler raw_from_dom(asya::PayloadHandler handler) {
  return [handler = std::move(handler)](std::string_view payload_json) {
    json::parse_options options;
    options.max_depth = 1000;
    Json payload = json::parse(payload_json, {}, options);
    Outputs outputs = handler(payload);
    asya::RawOutputs raw;
    for (const Json& item : outputs.items()) raw.add(json::serialize(item));
    return raw;
  };
}

// echo without a DOM where it can: a payload that is not an object is passed on as its own text.
asya::RawOutputs raw_echo(std::string_view payload_json) {
  if (payload_json.empty() || payload_json.front() != '{') {
    return asya::RawOutputs::view(payload_json);
  }
  return raw_from_dom(echo)(payload_json);
}

}  // namespace

int main() {
  const char* handler_env = std::getenv("ASYA_HANDLER");
  std::string name = handler_env ? handler_env : "";
  if (name.empty()) {
    std::fprintf(stderr, "ASYA_HANDLER is not set: set it to conformance_handlers.<name>\n");
    return 1;
  }
  std::string short_name = name.rfind(kPrefix, 0) == 0 ? name.substr(std::strlen(kPrefix)) : "";

  if (short_name == "envelope_edit") return asya::serve_envelopes(envelope_edit);
  if (short_name == "batch_mixed") return asya::serve_batch(batch_mixed);
  if (short_name == "batch_numbered") return asya::serve_batch(batch_numbered);

  static Counter counter;
  const std::map<std::string, asya::PayloadHandler> payload_handlers = {
      {"echo", echo},
      {"fanout", fanout},
      {"abort_none", abort_handler},
      {"abort_empty", abort_handler},
      {"fail", fail},
      {"sleep", sleep_handler},
      {"big", big},
      {"Counter.process", [](const Json& payload) { return counter.process(payload); }},
  };
  auto found = payload_handlers.find(short_name);
  if (found == payload_handlers.end()) {
    std::fprintf(stderr,
                 "unknown ASYA_HANDLER \"%s\": the C++ conformance runtime has "
                 "conformance_handlers.{echo,fanout,abort_none,abort_empty,fail,sleep,big,"
                 "Counter.process,envelope_edit}\n",
                 name.c_str());
    return 1;
  }
  const char* raw_env = std::getenv("ASYA_CONFORMANCE_RAW");
  if (raw_env != nullptr && std::string(raw_env) == "1") {
    if (short_name == "echo") return asya::serve_raw(raw_echo);
    return asya::serve_raw(raw_from_dom(found->second));
  }
  return asya::serve(found->second);
}
