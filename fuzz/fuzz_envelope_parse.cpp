// Fuzzes envelope::parse and envelope::parse_response, and on success the builders
// (build_output, build_error, with_attempt), checking properties rather than just "no crash":
// - every view returned points into the input;
// - when the input is strictly valid JSON, every built envelope is strictly valid JSON too,
//   parses again, and keeps id, route and payload bytes;
// - wrap_unparseable of any input is valid JSON that parse() accepts and routes to the actor.
// Input: the envelope body, optionally followed by a NUL byte and a runtime response.
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envelope/build.hpp"
#include "envelope/envelope.hpp"
#include "envelope/response.hpp"

namespace env = asya::envelope;

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_envelope_parse: property violated: %s\n%.*s\n", what,
               static_cast<int>(detail.size() > 2000 ? 2000 : detail.size()), detail.data());
  std::abort();
}

void check(bool condition, const char* what, std::string_view detail = {}) {
  if (!condition) fail(what, detail);
}

bool inside(std::string_view view, std::string_view whole) {
  if (view.empty()) return true;
  return view.data() >= whole.data() && view.data() + view.size() <= whole.data() + whole.size();
}

// Full JSON validation (simdjson DOM checks numbers, literals, strings and nesting).
bool strictly_valid(std::string_view text, std::size_t max_depth) {
  thread_local simdjson::dom::parser parser;
  if (parser.allocate(text.size() + 64, max_depth)) return false;
  simdjson::padded_string padded(text);
  simdjson::dom::element element;
  return parser.parse(padded).get(element) == simdjson::SUCCESS;
}

constexpr std::size_t kInputDepth = 1024;
constexpr std::size_t kOutputDepth = 2048;  // builders nest the payload up to 2 levels deeper

bool too_deep(const asya::Error& error) {
  return error.message.find("too deep") != std::string::npos;
}

void check_envelope_views(const env::Envelope& e, std::string_view body) {
  check(!e.id.empty() && e.id.size() <= 256, "id length", e.id);
  check(!e.actors.empty() && e.current <= e.actors.size(), "route bounds");
  for (const auto& actor : e.actors) check(env::valid_actor_name(actor), "actor name", actor);
  for (std::string_view view : {e.id_raw, e.parent_id_raw, e.route_raw, e.route_metadata_raw,
                                e.headers_raw, e.deadline_raw, e.payload_raw}) {
    check(inside(view, body), "envelope view outside the body", view);
  }
  for (const auto& [key, value] : e.unknown_fields) {
    check(inside(key, body) && inside(value, body), "unknown field outside the body", key);
  }
  check(!e.payload_raw.empty() && !e.route_raw.empty() && !e.id_raw.empty(), "required raw");
}

void check_reparse(std::string_view built, const char* what, const env::Envelope& in,
                   bool same_payload) {
  check(strictly_valid(built, kOutputDepth), what, built);
  auto again = env::parse(built);
  if (!again.ok()) {
    if (too_deep(again.error())) return;
    fail(what, again.error().message + "\n" + std::string(built.substr(0, 2000)));
  }
  check(again->route_raw.size() > 0, "reparsed route");
  if (same_payload) check(again->payload_raw == in.payload_raw, "payload bytes changed", built);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view body = nul == std::string_view::npos ? input : input.substr(0, nul);
  const std::string_view response = nul == std::string_view::npos ? input : input.substr(nul + 1);

  // Any input can be wrapped, and the wrapper is always a valid, routable envelope.
  {
    std::string wrapped = env::wrap_unparseable(input, "fuzz-actor", input.substr(0, 100));
    check(strictly_valid(wrapped, kInputDepth), "wrap_unparseable output is not valid JSON",
          wrapped);
    auto parsed = env::parse(wrapped);
    check(parsed.ok(), "wrap_unparseable output rejected by parse",
          parsed.ok() ? "" : parsed.error().message);
    check(parsed->current_actor() == "fuzz-actor", "wrap_unparseable route");
    check(strictly_valid(env::json_string(input), kInputDepth), "json_string output invalid");
  }

  std::vector<env::ResponseItem> items;
  if (auto parsed = env::parse_response(response); parsed.ok()) {
    items = std::move(parsed).value();
    for (const auto& item : items) {
      check(inside(item.payload_raw, response) && inside(item.route_raw, response) &&
                inside(item.headers_raw, response) && inside(item.details_raw, response),
            "response view outside the body");
      if (!item.is_error) {
        check(!item.actors.empty() && item.current <= item.actors.size(), "item route bounds");
        // Exactly one of a payload and "payload_unchanged": true (PROTOCOL §3).
        check(item.payload_unchanged == item.payload_raw.empty(), "item payload");
      } else {
        check(!item.error_code.empty(), "error code");
      }
    }
  } else {
    check(!parsed.error().message.empty(), "empty response error message");
  }

  auto parsed = env::parse(body);
  if (!parsed.ok()) {
    check(!parsed.error().message.empty(), "empty error message");
    return 0;
  }
  const env::Envelope& in = *parsed;
  check_envelope_views(in, body);
  (void)env::deadline_passed(in, std::chrono::system_clock::now());
  (void)env::attempt_of(in);

  // A result item to splice: the fuzzed response's first result when there is one.
  static const std::string kFixedResponse =
      R"([{"payload":{"k":[1,2.5,"x"]},"route":{"actors":["a","b"],"current":1},"headers":{"h":1}}])";
  env::ResponseItem item;
  bool have_item = false;
  for (const auto& candidate : items) {
    if (!candidate.is_error) {
      item = candidate;
      have_item = true;
      break;
    }
  }
  if (!have_item) item = std::move(env::parse_response(kFixedResponse).value()[0]);

  const bool strict =
      strictly_valid(body, kInputDepth) && (!have_item || strictly_valid(response, kInputDepth));
  std::string first = env::build_output(in, 0, item);
  std::string child = env::build_output(in, 1, item);
  std::string error = env::build_error(
      in, "fuzz-actor",
      env::ErrorInfo{"processing_error", std::string(body.substr(0, 64)), "T", "tb"});
  std::string retry = env::with_attempt(in, 3);
  if (!strict) return 0;

  check_reparse(first, "build_output(0)", in, false);
  if (auto out = env::parse(first); out.ok()) {
    check(out->id == in.id && out->parent_id == in.parent_id, "output 0 ids", first);
    check(out->payload_raw == item.payload_raw, "output payload bytes", first);
  }
  if (in.id.size() + 2 <= 256) {
    check_reparse(child, "build_output(1)", in, false);
    if (auto out = env::parse(child); out.ok()) {
      check(out->id == env::output_id(in, 1) && out->parent_id == in.id, "output 1 ids", child);
    }
  }
  check_reparse(error, "build_error", in, false);
  if (auto out = env::parse(error); out.ok()) {
    check(out->id == in.id && out->route_raw == in.route_raw, "error envelope id/route", error);
  }
  check_reparse(retry, "with_attempt", in, true);
  if (auto out = env::parse(retry); out.ok()) {
    check(env::attempt_of(*out) == 3, "attempt after with_attempt", retry);
  }
  return 0;
}
