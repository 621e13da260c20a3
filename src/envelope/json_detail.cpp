#include "envelope/json_detail.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/excerpt.hpp"
#include "envelope/envelope.hpp"

namespace asya::envelope::detail {
namespace {

// Buffers above this size are released after use: typical envelopes are a few KiB, and keeping a
// 100 MB buffer (plus simdjson's ~4 bytes of index per input byte) per thread is not worth it.
constexpr std::size_t kKeepBytes = 16u << 20;

struct ThreadState {
  ondemand::parser parser;
  std::unique_ptr<char[]> buffer;
  std::size_t capacity = 0;
  std::size_t last_size = 0;
};

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

}  // namespace

static_assert(kParsePadding == simdjson::SIMDJSON_PADDING,
              "envelope::kParsePadding must equal simdjson's SIMDJSON_PADDING");

simdjson::error_code iterate(std::string_view text, ondemand::document& document,
                             PaddedText& padded, const char* in_place) {
  ThreadState& state = thread_state();
  if (in_place != nullptr) {
    padded.padded = in_place;
    padded.original = text.data();
    padded.size = text.size();
    return state.parser.iterate(in_place, text.size(), text.size() + simdjson::SIMDJSON_PADDING)
        .get(document);
  }
  const std::size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
  if (state.capacity < needed) {
    // Grow geometrically for small texts so a stream of slightly larger messages does not
    // reallocate each time; large texts get exactly what they need.
    std::size_t capacity =
        needed <= kKeepBytes ? std::min(std::max(needed, state.capacity * 2), kKeepBytes) : needed;
    state.buffer.reset(new char[capacity]);
    state.capacity = capacity;
  }
  std::memcpy(state.buffer.get(), text.data(), text.size());
  std::memset(state.buffer.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  state.last_size = text.size();
  padded.padded = state.buffer.get();
  padded.original = text.data();
  padded.size = text.size();
  return state.parser.iterate(state.buffer.get(), text.size(), state.capacity).get(document);
}

void release_if_large() {
  ThreadState& state = thread_state();
  if (state.capacity > kKeepBytes || state.parser.capacity() > kKeepBytes) {
    state.buffer.reset();
    state.capacity = 0;
    state.parser = ondemand::parser{};
  }
}

namespace {

bool valid_json_number(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto digit = [&](std::size_t at) { return at < n && text[at] >= '0' && text[at] <= '9'; };
  if (i < n && text[i] == '-') ++i;
  if (!digit(i)) return false;
  if (text[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < n && text[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == n;
}

}  // namespace

bool is_json_integer(std::string_view text) {
  std::size_t i = 0;
  if (i < text.size() && text[i] == '-') ++i;
  if (i >= text.size()) return false;
  if (text[i] == '0') return i + 1 == text.size();
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

simdjson::error_code check_scalar(ondemand::json_type type, std::string_view raw) {
  switch (type) {
    case ondemand::json_type::string:
      return raw.size() >= 2 && raw.front() == '"' && raw.back() == '"' ? simdjson::SUCCESS
                                                                        : simdjson::STRING_ERROR;
    case ondemand::json_type::number:
      return valid_json_number(raw) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    case ondemand::json_type::boolean:
      return raw == "true" || raw == "false" ? simdjson::SUCCESS : simdjson::T_ATOM_ERROR;
    case ondemand::json_type::null:
      return raw == "null" ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    default:
      return simdjson::INCORRECT_TYPE;
  }
}

simdjson::error_code top_level_raw(ondemand::document& document, ondemand::json_type type,
                                   std::string_view& raw) {
  if (type == ondemand::json_type::array || type == ondemand::json_type::object) {
    if (auto error = document.raw_json().get(raw)) return error;
    raw = trim_right(raw);
    return simdjson::SUCCESS;
  }
  if (auto error = document.raw_json_token().get(raw)) return error;
  raw = trim_right(raw);
  return check_scalar(type, raw);
}

Status open_document(std::string_view text, std::string_view subject, ondemand::json_type expected,
                     std::string_view expected_what, ondemand::document& document,
                     PaddedText& padded, const char* in_place) {
  if (auto error = iterate(text, document, padded, in_place)) {
    return Error{invalid_json_message(subject, error, padded, nullptr)};
  }
  ondemand::json_type type;
  std::string_view raw;
  simdjson::error_code error = document.type().get(type);
  if (!error && type == expected) return {};
  if (!error) error = top_level_raw(document, type, raw);
  if (error) return Error{invalid_json_message(subject, error, padded, &document)};
  return Error{std::string(subject) + ": expected " + std::string(expected_what) + ", got " +
               describe(raw)};
}

simdjson::error_code raw_value(ondemand::value& value, std::string_view& raw) {
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return error;
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return error;
      if (auto error = object.raw_json().get(raw)) return error;
      raw = trim_right(raw);
      return simdjson::SUCCESS;
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return error;
      if (auto error = array.raw_json().get(raw)) return error;
      raw = trim_right(raw);
      return simdjson::SUCCESS;
    }
    default:
      raw = trim_right(value.raw_json_token());
      return check_scalar(type, raw);
  }
}

std::string_view raw_key(ondemand::field& field) {
  // key().raw() points just after the opening quote; stage 1 guarantees a closing quote.
  const char* begin = field.key().raw();
  const char* p = begin;
  while (*p != '"') {
    p += (*p == '\\') ? 2 : 1;
  }
  return std::string_view(begin - 1, static_cast<std::size_t>(p - begin) + 2);
}

std::string describe(std::string_view raw) {
  return excerpt(raw);
}

std::size_t end_of_value_before_trailing_data(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  if (i == text.size() || (text[i] != '[' && text[i] != '{')) return 0;
  std::size_t depth = 0;
  std::size_t end = 0;
  for (; i < text.size() && end == 0; ++i) {
    char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
      if (i >= text.size()) return 0;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return 0;
      if (--depth == 0) end = i + 1;
    }
  }
  if (end == 0) return 0;
  std::size_t rest = end;
  while (rest < text.size() && is_space(text[rest])) ++rest;
  return rest == text.size() ? 0 : end;
}

std::string invalid_json_message(std::string_view subject, simdjson::error_code error,
                                 const PaddedText& padded, ondemand::document* document) {
  std::string message(subject);
  message += " is not valid JSON: ";
  message += simdjson::error_message(error);
  if (document != nullptr) {
    const char* location = nullptr;
    if (!document->current_location().get(location) && location >= padded.padded &&
        location <= padded.padded + padded.size) {
      message += " (near byte " + std::to_string(padded.offset_of(location)) + ")";
    }
  }
  return message;
}

bool KeySet::find_duplicate(std::string_view& duplicate) {
  if (overflow_.empty()) {
    for (std::size_t i = 1; i < count_; ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (inline_[i] == inline_[j]) {
          duplicate = inline_[i];
          return true;
        }
      }
    }
    return false;
  }
  // Many keys: sort instead of comparing every pair.
  overflow_.insert(overflow_.end(), inline_.begin(), inline_.begin() + count_);
  count_ = 0;
  std::sort(overflow_.begin(), overflow_.end());
  auto it = std::adjacent_find(overflow_.begin(), overflow_.end());
  if (it == overflow_.end()) return false;
  duplicate = *it;
  return true;
}

std::string RouteContext::str() const {
  if (element == kEnvelope) return "route";
  return "response element " + std::to_string(element) + ": route";
}

namespace {

std::string field_name(const std::string& context, std::string_view field) {
  std::string name(context);
  name += '.';
  name += field;
  return name;
}

Status syntax(simdjson::error_code error, simdjson::error_code& syntax_error,
              const std::string& context) {
  syntax_error = error;
  return Error{context + ": " + simdjson::error_message(error)};
}

constexpr std::string_view kActorsExpected =
    "expected a non-empty array of actor names ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 "
    "chars)";

}  // namespace

Status parse_route(ondemand::value& value, const PaddedText& padded, RouteContext where,
                   Route& route, simdjson::error_code& syntax_error) {
  syntax_error = simdjson::SUCCESS;
  // Built lazily: only error paths need the text.
  struct LazyContext {
    RouteContext where;
    operator std::string() const { return where.str(); }
  } context{where};
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return syntax(error, syntax_error, context);
  if (type != ondemand::json_type::object) {
    std::string_view raw;
    if (auto error = raw_value(value, raw)) return syntax(error, syntax_error, context);
    return Error{std::string(context) +
                 ": expected an object {\"actors\": [...], \"current\": n}, got " + describe(raw)};
  }
  const char* start = value.raw_json_token().data();
  ondemand::object object;
  if (auto error = value.get_object().get(object)) return syntax(error, syntax_error, context);

  KeySet keys;
  bool have_actors = false;
  std::string_view current_raw;
  route.actors.clear();
  route.current = 0;
  route.metadata_raw = {};
  for (auto field_result : object) {
    ondemand::field field;
    if (auto error = std::move(field_result).get(field)) {
      return syntax(error, syntax_error, context);
    }
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return syntax(error, syntax_error, context);
    keys.add(key);
    ondemand::value& field_value = field.value();
    if (key == "actors") {
      have_actors = true;
      ondemand::json_type actors_type;
      if (auto error = field_value.type().get(actors_type)) {
        return syntax(error, syntax_error, context);
      }
      if (actors_type != ondemand::json_type::array) {
        std::string_view raw;
        if (auto error = raw_value(field_value, raw)) return syntax(error, syntax_error, context);
        return Error{field_name(context, "actors") + ": " + std::string(kActorsExpected) +
                     ", got " + describe(raw)};
      }
      ondemand::array array;
      if (auto error = field_value.get_array().get(array)) {
        return syntax(error, syntax_error, context);
      }
      std::size_t index = 0;
      for (auto element_result : array) {
        ondemand::value element;
        if (auto error = std::move(element_result).get(element)) {
          return syntax(error, syntax_error, context);
        }
        auto element_name = [&] {
          return field_name(context, "actors") + "[" + std::to_string(index) + "]";
        };
        ondemand::json_type element_type;
        if (auto error = element.type().get(element_type)) {
          return syntax(error, syntax_error, context);
        }
        std::string_view name;
        std::string_view raw = trim_right(element.raw_json_token());
        if (element_type != ondemand::json_type::string) {
          if (auto error = raw_value(element, raw)) return syntax(error, syntax_error, context);
        } else if (auto error = element.get_string().get(name)) {
          return syntax(error, syntax_error, context);
        }
        if (element_type != ondemand::json_type::string || !valid_actor_name(name)) {
          return Error{element_name() +
                       ": expected an actor name ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 "
                       "chars), got " +
                       describe(raw)};
        }
        if (name == "happy-end" || name == "error-end") {
          return Error{element_name() + ": \"" + std::string(name) +
                       "\" is an end actor; routes never list happy-end or error-end (the "
                       "sidecar sends finished envelopes there itself)"};
        }
        route.actors.emplace_back(name);
        ++index;
      }
      if (route.actors.empty()) {
        return Error{field_name(context, "actors") + ": " + std::string(kActorsExpected) +
                     ", got []"};
      }
    } else if (key == "current") {
      if (auto error = raw_value(field_value, current_raw)) {
        return syntax(error, syntax_error, context);
      }
    } else if (key == "metadata") {
      ondemand::json_type metadata_type;
      if (auto error = field_value.type().get(metadata_type)) {
        return syntax(error, syntax_error, context);
      }
      std::string_view raw;
      if (auto error = raw_value(field_value, raw)) return syntax(error, syntax_error, context);
      if (metadata_type != ondemand::json_type::object) {
        return Error{field_name(context, "metadata") + ": expected an object, got " +
                     describe(raw)};
      }
      route.metadata_raw = padded.map(raw);
    }
    // Other route fields are kept in the raw route text and otherwise ignored.
  }
  const char* end = nullptr;
  if (auto error = value.current_location().get(end)) return syntax(error, syntax_error, context);
  route.raw =
      padded.map(trim_right(std::string_view(start, static_cast<std::size_t>(end - start))));

  std::string_view duplicate;
  if (keys.find_duplicate(duplicate)) {
    return Error{field_name(context, duplicate) +
                 ": duplicate key (each field may appear only once)"};
  }
  if (!have_actors) {
    return Error{field_name(context, "actors") + ": missing (" + std::string(kActorsExpected) +
                 ")"};
  }
  if (!current_raw.empty()) {
    bool in_range = false;
    std::size_t current = 0;
    if (is_json_integer(current_raw) && current_raw[0] != '-' && current_raw.size() <= 18) {
      for (char c : current_raw) current = current * 10 + static_cast<std::size_t>(c - '0');
      in_range = current <= route.actors.size();
    }
    if (!in_range) {
      return Error{field_name(context, "current") + ": expected an integer from 0 to " +
                   std::to_string(route.actors.size()) + ", got " + describe(current_raw)};
    }
    route.current = current;
  }
  return Status::Ok();
}

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const std::size_t n = text.size();
  auto byte = [&](std::size_t at) { return static_cast<unsigned char>(text[at]); };
  auto continuation = [&](std::size_t at, unsigned char low = 0x80, unsigned char high = 0xBF) {
    return at < n && byte(at) >= low && byte(at) <= high;
  };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(i + 1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned char low = lead == 0xE0 ? 0xA0 : 0x80;
    unsigned char high = lead == 0xED ? 0x9F : 0xBF;  // no UTF-16 surrogates
    return continuation(i + 1, low, high) && continuation(i + 2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned char low = lead == 0xF0 ? 0x90 : 0x80;
    unsigned char high = lead == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    return continuation(i + 1, low, high) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Validated lazily at the first non-ASCII byte, so ASCII-only text is scanned once.
  int valid_utf8 = -1;  // -1: not checked yet
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  std::size_t start = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80 && valid_utf8 < 0) {
      valid_utf8 = simdjson::validate_utf8(text.data() + i, n - i) ? 1 : 0;
    }
    if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || valid_utf8 == 1)) {
      ++i;
      continue;
    }
    out.append(text.data() + start, i - start);
    if (c >= 0x80) {
      // Only reached when the text is not valid UTF-8: copy valid sequences, replace the rest.
      std::size_t length = utf8_sequence_length(text, i);
      if (length == 0) {
        out.append("\xEF\xBF\xBD");
        ++i;
      } else {
        out.append(text.data() + i, length);
        i += length;
      }
    } else {
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        case '\b':
          out.append("\\b");
          break;
        case '\f':
          out.append("\\f");
          break;
        default: {
          char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(escaped, 6);
        }
      }
      ++i;
    }
    start = i;
  }
  out.append(text.data() + start, n - start);
  out.push_back('"');
}

}  // namespace asya::envelope::detail
