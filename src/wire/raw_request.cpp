// The raw path of the C++ runtime (handle_raw_request, RawPayloadHandler): the payload is handed
// to the handler as the request's own bytes and the answer refers to them, so a large payload is
// neither parsed into values nor copied. A scan finds and validates the payload's span; the rest
// of the envelope goes through the same checks as the DOM path (runtime_envelope.hpp), which
// also takes every request the scan finds unusual, so the answers are always the DOM path's.
#include "wire/raw_request.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <cstring>
#include <optional>

#include "wire/json_scan.hpp"
#include "wire/plain_run.hpp"
#include "wire/runtime_envelope.hpp"

namespace asya::detail {
namespace {

namespace json = boost::json;
using wire::scan::is_space;
using wire::scan::skip_space;
using wire::scan::skip_string;
using wire::scan::skip_value;

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

// A NullHandler that remembers where the last piece of a string or key it was handed ends.
// Boost's parser hands over a piece that ends exactly where its input ends only when that input
// ended inside a run of ordinary characters of a string, with no escape or UTF-8 sequence pending
// (its state `str1`): a piece that ends at a backslash or before an incomplete sequence ends
// earlier, and the pieces of an escaped string are copies in the parser's own buffer.
struct PartEndHandler : NullHandler {
  const char* part_end = nullptr;
  bool on_string_part(json::string_view part, std::size_t, json::error_code&) {
    part_end = part.data() + part.size();
    return true;
  }
  bool on_key_part(json::string_view part, std::size_t, json::error_code&) {
    part_end = part.data() + part.size();
    return true;
  }
};

// Where the parser's input may be cut: every kCutSpacing bytes, at the first such point followed
// by kCutWindow plain bytes of which one at least cannot stand outside a string (a window without
// quotes lies wholly inside one string or wholly outside, and outside a string valid JSON holds
// only blanks, digits, "-+.eE", the letters of true/false/null and {}[],:). Text that never
// offers such a window (numbers, short strings) goes to the parser in one piece, as before: a
// parser resumed after a cut runs its slower resumable code for the rest of the text (~5 %).
constexpr std::size_t kCutSpacing = 64u << 10;
constexpr std::size_t kCutWindow = 1024;

bool only_inside_a_string(char c) {
  switch (c) {
    case ' ':
    case '-':
    case '+':
    case '.':
    case 'e':
    case 'E':
    case 't':
    case 'r':
    case 'u':
    case 'f':
    case 'a':
    case 'l':
    case 's':
    case 'n':
    case '{':
    case '}':
    case '[':
    case ']':
    case ',':
    case ':':
      return false;
    default:
      return !(c >= '0' && c <= '9');
  }
}

// Whether the kCutWindow bytes at `at` (all before `end`) are plain and one of them cannot stand
// outside a string.
bool string_window_at(const char* at, const char* end) {
  if (static_cast<std::size_t>(end - at) < kCutWindow) return false;
  const char* window_end = at + kCutWindow;
  if (wire::scan::skip_plain(at, window_end) != window_end) return false;
  return std::any_of(at, window_end, only_inside_a_string);
}

// Where the JSON value that starts at `p` ends, validated on the way exactly as the DOM parser
// would validate it as the envelope's "payload" (syntax, UTF-8, depth: one level less than the
// envelope's limit, as the envelope object takes one), building nothing. Trailing whitespace is
// not part of the value. nullptr when no valid JSON value starts at `p`.
//
// Long strings (base64 data, text) are checked at the speed of the plain-byte scan, about twice
// the parser's: the parser's input is cut inside what looks like a long string (string_window_at)
// and, when the parser was then inside a run of ordinary characters of a string (PartEndHandler),
// the plain bytes that follow (printable ASCII but '"' and '\\': wire/plain_run.hpp) are not
// given to it. Inside a string it would only pass over them, 16 at a time, and count them, and
// the count matters to no limit here (the handler's are unlimited, as before): the verdict, and
// where the value ends, are those of the whole text in one piece.
const char* validated_value_end(const char* p, const char* end) {
  json::parse_options options = parse_options();
  options.max_depth -= 1;
  json::basic_parser<PartEndHandler> parser(options);
  json::error_code ec;
  const char* given = p;  // the parser has been given [p, given), or passed over plain bytes
  for (;;) {
    const char* stop = end;
    const auto left = static_cast<std::size_t>(end - given);
    for (std::size_t offset = kCutSpacing; offset + kCutWindow <= left; offset += kCutSpacing) {
      if (string_window_at(given + offset, end)) {
        stop = given + offset;
        break;
      }
    }
    const bool more = stop != end;
    parser.handler().part_end = nullptr;
    std::size_t consumed =
        parser.write_some(more, given, static_cast<std::size_t>(stop - given), ec);
    if (ec) return nullptr;
    if (parser.done()) {
      const char* value_end = given + consumed;
      while (value_end > p && is_space(value_end[-1])) --value_end;
      return value_end;
    }
    if (!more) return nullptr;  // (an incomplete value is an error: not reached)
    given = parser.handler().part_end == stop ? wire::scan::skip_plain(stop, end) : stop;
  }
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
// A view of the payload is written from the request's own bytes, or, when `payload` is the
// request's own bytes (`in_request`) and the sidecar takes it, as `"payload_unchanged":true`
// (PROTOCOL §3): the payload is then not sent back at all.
void raw_answer(std::string_view payload, bool in_request, const json::object& route,
                std::int64_t current, std::string_view headers_json, RawOutputs&& outputs,
                detail::Answer& out) {
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
  std::optional<bool> unchanged_allowed;  // asked at the first output that could use it
  for (std::size_t i = 0; i < out.outputs.size(); ++i) {
    std::string_view text = out.outputs.item(i);
    if (in_request && text.data() == payload.data() && text.size() == payload.size()) {
      if (!unchanged_allowed)
        unchanged_allowed = out.payload_unchanged_allowed && out.payload_unchanged_allowed();
      if (*unchanged_allowed) {
        out.pieces.emplace_back(i == 0 ? std::string_view("{\"payload_unchanged\":true")
                                       : std::string_view(",{\"payload_unchanged\":true"));
        out.pieces.push_back(route_and_headers);
        continue;
      }
    }
    out.pieces.emplace_back(i == 0 ? std::string_view("{\"payload\":")
                                   : std::string_view(",{\"payload\":"));
    out.pieces.push_back(text);
    out.pieces.push_back(route_and_headers);
  }
  out.pieces.push_back(closing);
}

}  // namespace

void handle_raw_payload_fd_request(std::string_view rest, std::string_view payload,
                                   const RawPayloadHandler& handler, detail::Answer& out) {
  Request in;
  if (auto failure = parse_request(rest, in)) {
    out.text = error_response(*failure);
    return;
  }
  // The payload is checked as the bytes path checks the payload inside a request (syntax, UTF-8,
  // depth), in place in the mapping, building nothing.
  const char* end = payload.data() + payload.size();
  const char* value_end = payload.empty() ? nullptr : validated_value_end(payload.data(), end);
  if (value_end != end) {
    const std::optional<std::string> error = json_syntax_error(payload);
    out.text = error_response(parsing_error(fmt::format(
        "the payload passed as a file ({} bytes) is not one JSON value{}", payload.size(),
        error ? ": " + *error : std::string(" (blanks around it are not allowed)"))));
    return;
  }
  std::string headers = in.headers ? json_text(*in.headers) : std::string();
  RawOutputs outputs;
  try {
    outputs = handler(payload);
  } catch (...) {
    out.text = error_response(handler_failure(in));
    return;
  }
  raw_answer(payload, /*in_request=*/true, *in.route, in.current, headers, std::move(outputs), out);
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
      raw_answer(*payload, /*in_request=*/true, *in.route, in.current, headers, std::move(outputs),
                 out);
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
  // payload_text is the DOM's serialization, not the request's bytes: never "unchanged".
  raw_answer(payload_text, /*in_request=*/false, *in.route, in.current, headers, std::move(outputs),
             out);
  // Pieces may refer to payload_text, which ends here: keep the answer as one string.
  if (!out.pieces.empty()) {
    std::string whole = out.to_string();
    out.pieces.clear();
    out.outputs = RawOutputs();
    out.text = std::move(whole);
  }
}

}  // namespace asya::detail
