#include "common/otlp/otlp_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <iterator>
#include <type_traits>

namespace asya::otlp {
namespace {

using namespace std::string_view_literals;

// Whether any of the 8 bytes of `word` must be escaped in a JSON string: a control byte (below
// 0x20), '"' or '\\' (exact for "any", the usual word-at-a-time tests).
bool needs_escape(std::uint64_t word) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
  auto has_zero = [&](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  const std::uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
  return (below_space | has_zero(word ^ (kOnes * '"')) | has_zero(word ^ (kOnes * '\\'))) != 0;
}

// Writes `text` escaped for the inside of a JSON string, in place (no temporary string).
void append_escaped(std::string& out, std::string_view text) {
  std::size_t plain_from = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // Eight plain bytes at a time (most text has nothing to escape).
    while (i + 8 <= text.size()) {
      std::uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof word);
      if (needs_escape(word)) break;
      i += 8;
    }
    if (i >= text.size()) break;
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(plain_from, i - plain_from));
    plain_from = i + 1;
    switch (c) {
      case '"':
        out.append("\\\""sv);
        break;
      case '\\':
        out.append("\\\\"sv);
        break;
      case '\n':
        out.append("\\n"sv);
        break;
      case '\r':
        out.append("\\r"sv);
        break;
      case '\t':
        out.append("\\t"sv);
        break;
      default:
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
    }
  }
  out.append(text.substr(plain_from));
}

// Whether `text` goes into a JSON string as it is (nothing to escape): eight bytes at a time.
bool plain(std::string_view text) {
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, sizeof word);
    if (needs_escape(word)) return false;
  }
  if (i == text.size()) return true;
  // The last 1 to 7 bytes, padded with spaces (plain), in one more test.
  std::uint64_t word = 0x2020202020202020ull;
  std::memcpy(&word, text.data() + i, text.size() - i);
  return !needs_escape(word);
}

// The decimal digits of `value` (below 10^8), exactly 8 of them (zero-padded), at `out`.
void write_8_digits(char* out, std::uint32_t value) {
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  const std::uint32_t high = value / 10000, low = value % 10000;
  std::memcpy(out, kPairs + 2 * (high / 100), 2);
  std::memcpy(out + 2, kPairs + 2 * (high % 100), 2);
  std::memcpy(out + 4, kPairs + 2 * (low / 100), 2);
  std::memcpy(out + 6, kPairs + 2 * (low % 100), 2);
}

// Writes `value` in decimal at `out` and returns the end: 8 digits at a time (std::to_chars takes
// two at a time, and a span's two 19-digit times were half of what writing its head cost).
char* write_decimal(char* out, std::uint64_t value) {
  if (value < 100000000) return std::to_chars(out, out + 8, static_cast<std::uint32_t>(value)).ptr;
  const auto low = static_cast<std::uint32_t>(value % 100000000);
  value /= 100000000;
  if (value < 100000000) {
    out = std::to_chars(out, out + 8, static_cast<std::uint32_t>(value)).ptr;
  } else {
    const auto middle = static_cast<std::uint32_t>(value % 100000000);
    out = std::to_chars(out, out + 4, static_cast<std::uint32_t>(value / 100000000)).ptr;
    write_8_digits(out, middle);
    out += 8;
  }
  write_8_digits(out, low);
  return out + 8;
}

// Writes `text` as a JSON string.
void append_string(std::string& out, std::string_view text) {
  out.push_back('"');
  append_escaped(out, text);
  out.push_back('"');
}

void append_value(std::string& out, const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    out.append("{\"stringValue\":"sv);
    append_string(out, *text);
  } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    // int64 is a string in the protobuf JSON mapping.
    fmt::format_to(std::back_inserter(out), "{{\"intValue\":\"{}\"", *integer);
  } else if (const auto* real = std::get_if<double>(&value)) {
    out.append("{\"doubleValue\":"sv);
    if (std::isnan(*real))
      out.append("\"NaN\""sv);
    else if (std::isinf(*real))
      out.append(*real > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
      fmt::format_to(std::back_inserter(out), "{}", *real);
  } else {
    out.append(std::get<bool>(value) ? "{\"boolValue\":true" : "{\"boolValue\":false");
  }
  out.push_back('}');
}

void append_attribute_list(std::string& out, const std::vector<Attribute>& attributes,
                           bool& first) {
  for (const Attribute& attribute : attributes) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":"sv);
    append_string(out, attribute.key);
    out.append(",\"value\":"sv);
    append_value(out, attribute.value);
    out.push_back('}');
  }
}

void append_attributes(std::string& out, const std::vector<Attribute>& attributes,
                       const std::vector<Attribute>* shared = nullptr) {
  out.append("\"attributes\":["sv);
  bool first = true;
  if (shared) append_attribute_list(out, *shared, first);
  append_attribute_list(out, attributes, first);
  out.push_back(']');
}

void append_span(std::string& out, const Span& span) {
  out.append("{\"traceId\":\""sv);
  out.append(span.trace_id);
  out.append("\",\"spanId\":\""sv);
  out.append(span.span_id);
  out.push_back('"');
  if (!span.parent_span_id.empty()) {
    out.append(",\"parentSpanId\":\""sv);
    out.append(span.parent_span_id);
    out.push_back('"');
  }
  out.append(",\"name\":"sv);
  append_string(out, span.name);
  fmt::format_to(std::back_inserter(out),
                 ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",",
                 static_cast<int>(span.kind), span.start_unix_nano, span.end_unix_nano);
  append_attributes(out, span.attributes, span.shared_attributes.get());
  if (span.status != StatusCode::kUnset) {
    fmt::format_to(std::back_inserter(out), ",\"status\":{{\"code\":{}",
                   static_cast<int>(span.status));
    if (!span.status_message.empty()) {
      out.append(",\"message\":"sv);
      append_string(out, span.status_message);
    }
    out.push_back('}');
  }
  out.push_back('}');
}

// Writes pieces whose total size has a known bound straight into a string's buffer: one size
// check for all of them instead of one per append (a span's fixed parts are about 15 pieces, and
// the per-append checks were a third of what writing a span cost). The bound is reserved
// (zero-filled) when it is made and the unused rest cut off when it goes out of scope.
class DirectWriter {
 public:
  DirectWriter(std::string& out, std::size_t most) : out_(out) { reopen(most); }
  ~DirectWriter() { flush(); }
  // Cuts the unused rest off, so other code may append to the string; reopen() before writing
  // again.
  void flush() { out_.resize(static_cast<std::size_t>(at_ - out_.data())); }
  void reopen(std::size_t most) {
    const std::size_t at = out_.size();
    out_.resize(at + most);
    at_ = out_.data() + at;
    end_ = at_ + most;
  }
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  DirectWriter& text(std::string_view piece) {
    std::memcpy(at_, piece.data(), piece.size());
    at_ += piece.size();
    return *this;
  }
  DirectWriter& character(char c) {
    *at_++ = c;
    return *this;
  }
  // In decimal, as a JSON string when `quoted`; at most 22 bytes for 64 bits.
  template <typename Integer>
  DirectWriter& integer(Integer value, bool quoted) {
    if (quoted) *at_++ = '"';
    if constexpr (std::is_signed_v<Integer>) {
      if (value < 0) {
        at_ = std::to_chars(at_, end_, value).ptr;
      } else {
        at_ = write_decimal(at_, static_cast<std::uint64_t>(value));
      }
    } else {
      at_ = write_decimal(at_, value);
    }
    if (quoted) *at_++ = '"';
    return *this;
  }

 private:
  std::string& out_;
  char* at_;
  char* end_;
};

void append_request_head(std::string& out, const Resource& resource) {
  out.append("{\"resourceSpans\":[{\"resource\":{"sv);
  append_attributes(out, resource.attributes);
  out.append("},\"scopeSpans\":[{\"scope\":{\"name\":"sv);
  append_string(out, resource.scope_name);
  if (!resource.scope_version.empty()) {
    out.append(",\"version\":"sv);
    append_string(out, resource.scope_version);
  }
  out.append("},\"spans\":["sv);
}

constexpr std::string_view kRequestTail = "]}]}]}";
constexpr std::string_view kSpanOpening = "{\"traceId\":";

}  // namespace

std::string export_request_json(const Resource& resource, const std::vector<Span>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 512);
  append_request_head(out, resource);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_span(out, spans[i]);
  }
  out.append(kRequestTail);
  return out;
}

void append_encoded(EncodedSpans& into, const Span& span) {
  if (into.count > 0) into.json.push_back(',');
  append_span(into.json, span);
  ++into.count;
}

EncodedSpans split_encoded(EncodedSpans& from, std::size_t n) {
  // The n-th span's opening after the first; the comma before it ends the part taken.
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) at = from.json.find(kSpanOpening, at + 1);
  EncodedSpans first;
  if (at == std::string::npos || at == 0) return first;  // not spans this encoder wrote
  first.json.assign(from.json, 0, at - 1);
  first.count = n;
  from.json.erase(0, at);
  from.count -= n;
  return first;
}

std::string export_request_json_from(const Resource& resource,
                                     const std::vector<EncodedSpans>& parts) {
  std::string out;
  write_export_request(out, resource, parts);
  return out;
}

void write_export_request(std::string& out, const Resource& resource,
                          const std::vector<EncodedSpans>& parts) {
  std::size_t size = 256 + kRequestTail.size();
  for (const auto& part : parts) size += part.json.size() + 1;
  out.clear();
  out.reserve(size);
  append_request_head(out, resource);
  bool first = true;
  for (const auto& part : parts) {
    if (part.count == 0) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append(part.json);
  }
  out.append(kRequestTail);
}

// Keys are Asya's attribute names, written as they are (see the header).
void append_attribute(std::string& list, std::string_view key, std::string_view value) {
  const bool first = list.empty();  // before the writer sizes the string
  const bool plain_value = plain(value);
  {
    // The usual case (nothing to escape): one size check for the whole attribute.
    DirectWriter writer(list, 48 + key.size() + (plain_value ? value.size() : 0));
    if (!first) writer.character(',');
    writer.text("{\"key\":\""sv).text(key).text("\",\"value\":{\"stringValue\":\""sv);
    if (plain_value) {
      writer.text(value).text("\"}}"sv);
      return;
    }
  }
  append_escaped(list, value);
  list.append("\"}}"sv);
}

void append_attribute(std::string& list, std::string_view key, std::int64_t value) {
  const bool first = list.empty();
  DirectWriter writer(list, 64 + key.size());
  if (!first) writer.character(',');
  writer.text("{\"key\":\""sv).text(key).text("\",\"value\":{\"intValue\":"sv);
  writer.integer(value, true).text("}}"sv);
}

SpanWriter& SpanWriter::begin(std::string_view trace_id, std::string_view span_id,
                              std::string_view parent_span_id, std::string_view name,
                              std::string_view name_suffix, SpanKind kind,
                              std::uint64_t start_unix_nano, std::uint64_t end_unix_nano) {
  std::string& out = into_.json;
  const bool plain_name = plain(name) && plain(name_suffix);
  // The fixed parts and (usually) the name in one go: one size check for all of them.
  DirectWriter writer(out, 224 + trace_id.size() + span_id.size() + parent_span_id.size() +
                               (plain_name ? name.size() + name_suffix.size() : 0));
  if (into_.count > 0) writer.character(',');
  writer.text(kSpanOpening).character('"').text(trace_id).text("\",\"spanId\":\""sv);
  writer.text(span_id).character('"');
  if (!parent_span_id.empty())
    writer.text(",\"parentSpanId\":\""sv).text(parent_span_id).character('"');
  writer.text(",\"name\":\""sv);
  ++into_.count;
  first_attribute_ = true;
  if (plain_name) {
    writer.text(name).text(name_suffix);
  } else {
    writer.flush();
    append_escaped(out, name);
    append_escaped(out, name_suffix);
    writer.reopen(160);
  }
  writer.character('"').text(",\"kind\":"sv).integer(static_cast<int>(kind), false);
  writer.text(",\"startTimeUnixNano\":"sv).integer(start_unix_nano, true);
  writer.text(",\"endTimeUnixNano\":"sv).integer(std::max(start_unix_nano, end_unix_nano), true);
  writer.text(",\"attributes\":["sv);
  return *this;
}

SpanWriter& SpanWriter::attribute(std::string_view key, std::string_view value) {
  const bool plain_value = plain(value);
  {
    DirectWriter writer(into_.json, 48 + key.size() + (plain_value ? value.size() : 0));
    if (!first_attribute_) writer.character(',');
    first_attribute_ = false;
    writer.text("{\"key\":\""sv).text(key).text("\",\"value\":{\"stringValue\":\""sv);
    if (plain_value) {
      writer.text(value).text("\"}}"sv);
      return *this;
    }
  }
  append_escaped(into_.json, value);
  into_.json.append("\"}}"sv);
  return *this;
}

SpanWriter& SpanWriter::attribute(std::string_view key, std::int64_t value) {
  DirectWriter writer(into_.json, 64 + key.size());
  if (!first_attribute_) writer.character(',');
  first_attribute_ = false;
  writer.text("{\"key\":\""sv).text(key).text("\",\"value\":{\"intValue\":"sv);
  writer.integer(value, true).text("}}"sv);
  return *this;
}

SpanWriter& SpanWriter::attributes(std::string_view list) {
  if (list.empty()) return *this;
  if (!first_attribute_) into_.json.push_back(',');
  first_attribute_ = false;
  into_.json.append(list);
  return *this;
}

void SpanWriter::end(StatusCode status, std::string_view message) {
  std::string& out = into_.json;
  if (status == StatusCode::kUnset) {
    out.append("]}"sv);
    return;
  }
  DirectWriter(out, 32).text("],\"status\":{\"code\":"sv).integer(static_cast<int>(status), false);
  if (!message.empty()) {
    out.append(",\"message\":"sv);
    append_string(out, message);
  }
  out.append("}}"sv);
}

}  // namespace asya::otlp
