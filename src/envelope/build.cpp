#include "envelope/build.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <span>

#include "envelope/fanout.hpp"
#include "envelope/json_detail.hpp"

namespace asya::envelope {
namespace {

namespace ondemand = simdjson::ondemand;
using detail::PaddedText;
using detail::raw_value;

constexpr std::size_t kMaxErrorChain = 10;
constexpr std::size_t kMaxUnparseableRaw = 64u << 10;
constexpr std::string_view kAttemptHeader = "asya-attempt";
constexpr std::string_view kErrorChainHeader = "asya-error-chain";

using Member = std::pair<std::string_view, std::string_view>;  // key JSON text, value JSON text

// Splits the headers object `headers_raw` (empty: no headers) into its members, leaving out every
// member named `drop`. When `drop` holds an array, its elements' JSON texts are stored in
// `dropped_elements` (from the last such member). Views point into `headers_raw`. Returns false
// when the headers cannot be iterated (they were validated by parse(), so only for JSON whose
// insides simdjson did not check).
bool split_headers_once(std::string_view headers_raw, std::string_view drop,
                        std::vector<Member>& kept, std::vector<std::string_view>* dropped_elements,
                        std::string_view* dropped_value) {
  kept.clear();
  if (headers_raw.empty()) return true;
  PaddedText padded;
  ondemand::document document;
  if (detail::iterate(headers_raw, document, padded)) return false;
  ondemand::object object;
  if (document.get_object().get(object)) return false;
  for (auto field_result : object) {
    ondemand::field field;
    if (std::move(field_result).get(field)) return false;
    std::string_view key_raw = detail::raw_key(field);
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    ondemand::value& value = field.value();
    if (key == drop) {
      ondemand::json_type type;
      if (value.type().get(type)) return false;
      if (dropped_elements != nullptr) dropped_elements->clear();
      if (dropped_elements != nullptr && type == ondemand::json_type::array) {
        ondemand::array array;
        if (value.get_array().get(array)) return false;
        for (auto element_result : array) {
          ondemand::value element;
          if (std::move(element_result).get(element)) return false;
          std::string_view raw;
          if (raw_value(element, raw)) return false;
          dropped_elements->push_back(padded.map(raw));
        }
      } else if (dropped_value != nullptr) {
        std::string_view raw;
        if (raw_value(value, raw)) return false;
        *dropped_value = padded.map(raw);
      }
      continue;
    }
    std::string_view raw;
    if (raw_value(value, raw)) return false;
    kept.emplace_back(padded.map(key_raw), padded.map(raw));
  }
  return true;
}

bool split_headers(std::string_view headers_raw, std::string_view drop, std::vector<Member>& kept,
                   std::vector<std::string_view>* dropped_elements,
                   std::string_view* dropped_value = nullptr) {
  const bool ok = split_headers_once(headers_raw, drop, kept, dropped_elements, dropped_value);
  detail::release_if_large();
  return ok;
}

std::size_t members_size(const std::vector<Member>& members) {
  std::size_t size = 0;
  for (const auto& [key, value] : members) size += key.size() + value.size() + 2;
  return size;
}

void append_members(std::string& out, const std::vector<Member>& members) {
  bool first = true;
  for (const auto& [key, value] : members) {
    if (!first) out.push_back(',');
    first = false;
    out.append(key);
    out.push_back(':');
    out.append(value);
  }
}

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() &&
         (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
    ++at;
  return at;
}

// The end (one past the closing quote) of the JSON string opening at `at`; npos when unclosed.
std::size_t string_end(std::string_view text, std::size_t at) {
  for (std::size_t from = at + 1;;) {
    const std::size_t quote = text.find('"', from);
    if (quote == std::string_view::npos) return quote;
    // Escaped when an odd number of backslashes stands right before it.
    std::size_t backslashes = 0;
    while (quote - backslashes > at + 1 && text[quote - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return quote + 1;
    from = quote + 1;
  }
}

// The end of the JSON value starting at `at` (a string, an object or array with what it holds,
// or a scalar up to the next delimiter); npos when it is cut short.
std::size_t value_end(std::string_view text, std::size_t at) {
  if (at >= text.size()) return std::string_view::npos;
  if (text[at] == '"') return string_end(text, at);
  if (text[at] == '{' || text[at] == '[') {
    std::size_t depth = 0;
    for (std::size_t i = at; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '"') {
        i = string_end(text, i);
        if (i == std::string_view::npos) return i;
        --i;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return std::string_view::npos;
  }
  std::size_t i = at;
  while (i < text.size() && text[i] != ',' && text[i] != '}' && text[i] != ']' && text[i] != ' ' &&
         text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
    ++i;
  return i == at ? std::string_view::npos : i;
}

// The members of the JSON object `object_raw` (key and value JSON texts, views into it), found
// by a plain scan of its structure: no allocation and no parser, for the small headers object of
// every message. False when it is not an object of that shape; the caller then uses
// split_headers, which parses it.
template <typename OnMember>
bool scan_members(std::string_view object_raw, OnMember&& on_member) {
  std::size_t at = skip_space(object_raw, 0);
  if (at >= object_raw.size() || object_raw[at] != '{') return false;
  at = skip_space(object_raw, at + 1);
  if (at < object_raw.size() && object_raw[at] == '}')
    return skip_space(object_raw, at + 1) == object_raw.size();
  for (;;) {
    if (at >= object_raw.size() || object_raw[at] != '"') return false;
    const std::size_t key_end = string_end(object_raw, at);
    if (key_end == std::string_view::npos) return false;
    const std::string_view key = object_raw.substr(at, key_end - at);
    at = skip_space(object_raw, key_end);
    if (at >= object_raw.size() || object_raw[at] != ':') return false;
    at = skip_space(object_raw, at + 1);
    const std::size_t end = value_end(object_raw, at);
    if (end == std::string_view::npos) return false;
    on_member(key, object_raw.substr(at, end - at));
    at = skip_space(object_raw, end);
    if (at >= object_raw.size()) return false;
    if (object_raw[at] == '}') return skip_space(object_raw, at + 1) == object_raw.size();
    if (object_raw[at] != ',') return false;
    at = skip_space(object_raw, at + 1);
  }
}

bool is_key(std::string_view key_json, std::string_view name) {
  return key_json.size() == name.size() + 2 && key_json.substr(1, name.size()) == name;
}

// Writes `text` as a JSON string: as it is when nothing in it needs escaping (the trace context
// values), else escaped by append_json_string.
void append_header_value(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\')
      return detail::append_json_string(out, text);
  }
  out.push_back('"');
  out.append(text);
  out.push_back('"');
}

// Writes the headers object `headers_raw` (empty: none) with the string headers `set` written
// in: one of the same name gets the new value where it stands, a new one is appended, every
// other member is kept as it is.
void append_headers_setting(std::string& out, std::string_view headers_raw,
                            std::span<const StringHeader> set) {
  bool placed[8] = {};  // set holds a few trace headers
  const std::size_t start = out.size();
  bool first = true;
  auto member = [&](std::string_view key, std::string_view value) {
    if (!first) out.push_back(',');
    first = false;
    for (std::size_t i = 0; i < set.size(); ++i) {
      if (!is_key(key, set[i].name)) continue;
      if (i < std::size(placed)) placed[i] = true;
      out.append(key);
      out.push_back(':');
      append_header_value(out, set[i].value);
      return;
    }
    out.append(key);
    out.push_back(':');
    out.append(value);
  };
  out.push_back('{');
  if (!headers_raw.empty() && !scan_members(headers_raw, member)) {
    // Not a plain object to the scan: read by the parser (nothing kept when even it fails).
    out.resize(start + 1);
    first = true;
    std::fill(std::begin(placed), std::end(placed), false);
    std::vector<Member> kept;
    if (split_headers(headers_raw, std::string_view(), kept, nullptr))
      for (const auto& [key, value] : kept) member(key, value);
  }
  for (std::size_t i = 0; i < set.size(); ++i) {
    if (i < std::size(placed) && placed[i]) continue;
    if (!first) out.push_back(',');
    first = false;
    append_header_value(out, set[i].name);
    out.push_back(':');
    append_header_value(out, set[i].value);
  }
  out.push_back('}');
}

// The parts of an outgoing envelope that differ from the input; everything else is copied.
struct Parts {
  std::string_view id_json;         // JSON text of the id
  std::string_view parent_id_json;  // JSON text, empty: no parent_id
  std::string_view route_json;
  std::string_view headers_json;  // empty: no headers
  std::string_view payload_json;
  std::span<const StringHeader> set_headers;  // written into headers_json (none: as it is)
};

// `in`'s id, parent_id and route with new headers and payload (an error envelope, a retry).
Parts same_hop(const Envelope& in, std::string_view headers_json, std::string_view payload_json) {
  Parts parts;
  parts.id_json = in.id_raw;
  parts.parent_id_json = in.parent_id_raw;
  parts.route_json = in.route_raw;
  parts.headers_json = headers_json;
  parts.payload_json = payload_json;
  return parts;
}

// Writes {"id","parent_id"?,"route","headers"?,"deadline"?,<unknown fields>,"payload"} with one
// allocation; the payload goes last so a large payload is one contiguous copy at the end. With
// `head_only`, stops after "payload": (what build_output_head returns).
std::string assemble(const Envelope& in, const Parts& parts, bool head_only = false) {
  std::size_t size = 64 + parts.id_json.size() + parts.parent_id_json.size() +
                     parts.route_json.size() + parts.headers_json.size() + in.deadline_raw.size() +
                     (head_only ? 0 : parts.payload_json.size());
  for (const auto& header : parts.set_headers) size += header.name.size() + header.value.size() + 8;
  for (const auto& [key, value] : in.unknown_fields) size += key.size() + value.size() + 2;
  std::string out;
  out.reserve(size);
  out.append("{\"id\":");
  out.append(parts.id_json);
  if (!parts.parent_id_json.empty()) {
    out.append(",\"parent_id\":");
    out.append(parts.parent_id_json);
  }
  out.append(",\"route\":");
  out.append(parts.route_json);
  if (!parts.set_headers.empty()) {
    out.append(",\"headers\":");
    append_headers_setting(out, parts.headers_json, parts.set_headers);
  } else if (!parts.headers_json.empty()) {
    out.append(",\"headers\":");
    out.append(parts.headers_json);
  }
  if (!in.deadline_raw.empty()) {
    out.append(",\"deadline\":");
    out.append(in.deadline_raw);
  }
  for (const auto& [key, value] : in.unknown_fields) {
    out.push_back(',');
    out.append(key);
    out.push_back(':');
    out.append(value);
  }
  out.append(",\"payload\":");
  if (head_only) return out;
  out.append(parts.payload_json.empty() ? std::string_view("null") : parts.payload_json);
  out.push_back('}');
  return out;
}

std::uint64_t fnv1a64(std::string_view data) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

std::string output_id(const Envelope& in, std::size_t index) {
  return fanout_child_id(in.id, in.current, index);
}

namespace {

// The parts of output `index` (build_output, build_output_head); `id_json` holds a child's id.
Parts output_parts(const Envelope& in, std::size_t index, const ResponseItem& item,
                   std::string_view headers_json, std::span<const StringHeader> set_headers,
                   std::string& id_json) {
  Parts parts;
  if (index == 0) {
    parts.id_json = in.id_raw;
    parts.parent_id_json = in.parent_id_raw;
  } else {
    id_json = json_string(output_id(in, index));
    parts.id_json = id_json;
    parts.parent_id_json = in.id_raw;
  }
  parts.route_json = item.route_raw;
  parts.headers_json = !headers_json.empty()      ? headers_json
                       : item.headers_raw.empty() ? in.headers_raw
                                                  : item.headers_raw;
  parts.payload_json = item.payload_raw;
  parts.set_headers = set_headers;
  return parts;
}

}  // namespace

std::string build_output(const Envelope& in, std::size_t index, const ResponseItem& item,
                         std::string_view headers_json, std::span<const StringHeader> set_headers) {
  std::string id_json;
  return assemble(in, output_parts(in, index, item, headers_json, set_headers, id_json));
}

std::string build_output_head(const Envelope& in, std::size_t index, const ResponseItem& item,
                              std::string_view headers_json,
                              std::span<const StringHeader> set_headers) {
  std::string id_json;
  return assemble(in, output_parts(in, index, item, headers_json, set_headers, id_json),
                  /*head_only=*/true);
}

std::string build_error(const Envelope& in, std::string_view actor, const ErrorInfo& error) {
  std::vector<Member> kept;
  std::vector<std::string_view> chain;
  if (!split_headers(in.headers_raw, kErrorChainHeader, kept, &chain)) {
    kept.clear();
    chain.clear();
  }
  std::string entry = "{\"actor\":";
  detail::append_json_string(entry, actor);
  entry.append(",\"error\":");
  detail::append_json_string(entry, error.code);
  entry.append(",\"at\":");
  detail::append_json_string(entry, format_rfc3339(std::chrono::system_clock::now()));
  entry.push_back('}');
  chain.push_back(entry);
  const std::size_t first = chain.size() > kMaxErrorChain ? chain.size() - kMaxErrorChain : 0;

  std::string headers;
  std::size_t chain_size = 0;
  for (std::size_t i = first; i < chain.size(); ++i) chain_size += chain[i].size() + 1;
  headers.reserve(members_size(kept) + chain_size + 32);
  headers.push_back('{');
  append_members(headers, kept);
  if (!kept.empty()) headers.push_back(',');
  headers.push_back('"');
  headers.append(kErrorChainHeader);
  headers.append("\":[");
  for (std::size_t i = first; i < chain.size(); ++i) {
    if (i != first) headers.push_back(',');
    headers.append(chain[i]);
  }
  headers.append("]}");

  std::string payload;
  payload.reserve(in.payload_raw.size() + error.message.size() + error.type.size() +
                  error.traceback.size() + actor.size() + error.code.size() + 128);
  payload.append("{\"error\":");
  detail::append_json_string(payload, error.code);
  payload.append(",\"details\":{\"message\":");
  detail::append_json_string(payload, error.message);
  payload.append(",\"type\":");
  detail::append_json_string(payload, error.type);
  payload.append(",\"traceback\":");
  detail::append_json_string(payload, error.traceback);
  payload.append("},\"actor\":");
  detail::append_json_string(payload, actor);
  payload.append(",\"original_payload\":");
  payload.append(in.payload_raw.empty() ? std::string_view("null") : in.payload_raw);
  payload.push_back('}');

  return assemble(in, same_hop(in, headers, payload));
}

std::string with_attempt(const Envelope& in, int attempt) {
  std::vector<Member> kept;
  if (!split_headers(in.headers_raw, kAttemptHeader, kept, nullptr)) kept.clear();
  std::string headers;
  headers.reserve(members_size(kept) + 32);
  headers.push_back('{');
  append_members(headers, kept);
  if (!kept.empty()) headers.push_back(',');
  headers.append("\"asya-attempt\":");
  headers.append(std::to_string(attempt));
  headers.push_back('}');

  return assemble(in, same_hop(in, headers, in.payload_raw));
}

std::string with_string_headers(const Envelope& parsed, std::string_view body,
                                std::span<const StringHeader> set) {
  std::string headers;
  headers.reserve(parsed.headers_raw.size() + 128);
  append_headers_setting(headers, parsed.headers_raw, set);
  std::string out;
  out.reserve(body.size() + headers.size() + 16);
  if (!parsed.headers_raw.empty()) {
    const std::size_t at = static_cast<std::size_t>(parsed.headers_raw.data() - body.data());
    out.append(body.substr(0, at));
    out.append(headers);
    out.append(body.substr(at + parsed.headers_raw.size()));
    return out;
  }
  const std::size_t open = body.find('{');
  out.append(body.substr(0, open + 1));
  out.append("\"headers\":");
  out.append(headers);
  out.push_back(',');
  out.append(body.substr(open + 1));
  return out;
}

void string_header_views(const Envelope& in, std::span<const std::string_view> names,
                         std::span<std::optional<std::string_view>> values) {
  std::fill(values.begin(), values.end(), std::nullopt);
  if (in.headers_raw.empty()) return;
  auto member = [&](std::string_view key, std::string_view value) {
    if (key.size() < 2 || value.size() < 2 || value.front() != '"' || value.back() != '"' ||
        value.find('\\') != std::string_view::npos)
      return;
    const std::string_view bare_key = key.substr(1, key.size() - 2);
    for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
      if (bare_key == names[i]) values[i] = value.substr(1, value.size() - 2);
  };
  if (scan_members(in.headers_raw, member)) return;
  // Not a plain object to the scan: read by the parser.
  std::fill(values.begin(), values.end(), std::nullopt);
  std::vector<Member> members;
  if (!split_headers(in.headers_raw, std::string_view(), members, nullptr)) return;
  for (const auto& [key, value] : members) member(key, value);
}

std::vector<std::optional<std::string>> string_headers(const Envelope& in,
                                                       const std::vector<std::string_view>& names) {
  std::vector<std::optional<std::string_view>> views(names.size());
  string_header_views(in, names, views);
  std::vector<std::optional<std::string>> values(names.size());
  for (std::size_t i = 0; i < names.size(); ++i)
    if (views[i]) values[i] = std::string(*views[i]);
  return values;
}

int attempt_of(const Envelope& in) {
  std::vector<Member> kept;
  std::string_view raw;
  if (!split_headers(in.headers_raw, kAttemptHeader, kept, nullptr, &raw)) return 1;
  if (raw.empty() || !detail::is_json_integer(raw) || raw[0] == '-' || raw.size() > 9) return 1;
  int attempt = 0;
  for (char c : raw) attempt = attempt * 10 + (c - '0');
  return attempt >= 1 ? attempt : 1;
}

std::string wrap_unparseable(std::string_view body, std::string_view actor, std::string_view why) {
  std::string_view raw = body.substr(0, kMaxUnparseableRaw);
  if (raw.size() < body.size()) {
    // The cut may split a UTF-8 sequence: drop its start instead of replacing it with U+FFFD.
    std::size_t back = 0;
    while (back < 3 && back < raw.size() &&
           (static_cast<unsigned char>(raw[raw.size() - 1 - back]) & 0xC0) == 0x80) {
      ++back;
    }
    const std::size_t lead_at = raw.size() - 1 - back;
    if (back < raw.size()) {
      const unsigned char lead = static_cast<unsigned char>(raw[lead_at]);
      const std::size_t expected = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
      if (expected > back + 1) raw = raw.substr(0, lead_at);
    }
  }
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(fnv1a64(body)));

  std::string out;
  out.reserve(raw.size() + why.size() + 2 * actor.size() + 200);
  out.append("{\"id\":\"unparseable-");
  out.append(hash);
  out.append("\",\"route\":{\"actors\":[");
  detail::append_json_string(out, actor);
  out.append("],\"current\":0},\"payload\":{\"error\":\"msg_parsing_error\",\"message\":");
  detail::append_json_string(out, why);
  out.append(",\"actor\":");
  detail::append_json_string(out, actor);
  out.append(",\"raw\":");
  detail::append_json_string(out, raw);
  out.append("}}");
  return out;
}

}  // namespace asya::envelope
