#include "gateway/raw_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/json_text.hpp"

namespace asya::gateway {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Scans valid JSON text; `pos` moves past what was read.
struct Scanner {
  std::string_view text;
  std::size_t pos = 0;

  void skip_space() {
    while (pos < text.size() && is_space(text[pos])) ++pos;
  }
  // At a '"': moves past the closing quote.
  void skip_string() {
    ++pos;
    while (pos < text.size() && text[pos] != '"') pos += text[pos] == '\\' ? 2 : 1;
    ++pos;
  }
  void skip_value() {
    if (pos >= text.size()) return;
    char c = text[pos];
    if (c == '"') {
      skip_string();
      return;
    }
    if (c == '{' || c == '[') {
      int depth = 0;
      while (pos < text.size()) {
        char d = text[pos];
        if (d == '"') {
          skip_string();
          continue;
        }
        if (d == '{' || d == '[') ++depth;
        if (d == '}' || d == ']') {
          if (--depth == 0) {
            ++pos;
            return;
          }
        }
        ++pos;
      }
      return;
    }
    while (pos < text.size() && !is_space(text[pos]) && text[pos] != ',' && text[pos] != '}' &&
           text[pos] != ']')
      ++pos;
  }
};

}  // namespace

std::map<std::string, std::string_view> raw_members(std::string_view object_text) {
  std::map<std::string, std::string_view> members;
  Scanner s{object_text};
  s.skip_space();
  if (s.pos >= object_text.size() || object_text[s.pos] != '{') return {};
  ++s.pos;
  for (;;) {
    s.skip_space();
    if (s.pos >= object_text.size() || object_text[s.pos] != '"') return members;  // '}'
    std::size_t key_start = s.pos;
    s.skip_string();
    boost::system::error_code ec;
    auto key = boost::json::parse(object_text.substr(key_start, s.pos - key_start), ec);
    if (ec || !key.is_string()) return {};
    s.skip_space();
    ++s.pos;  // ':'
    s.skip_space();
    std::size_t value_start = s.pos;
    s.skip_value();
    members[std::string(key.as_string())] = object_text.substr(value_start, s.pos - value_start);
    s.skip_space();
    if (s.pos >= object_text.size() || object_text[s.pos] != ',') return members;
    ++s.pos;
  }
}

std::vector<std::string_view> raw_elements(std::string_view array_text) {
  std::vector<std::string_view> elements;
  Scanner s{array_text};
  s.skip_space();
  if (s.pos >= array_text.size() || array_text[s.pos] != '[') return {};
  ++s.pos;
  for (;;) {
    s.skip_space();
    if (s.pos >= array_text.size() || array_text[s.pos] == ']') return elements;
    std::size_t value_start = s.pos;
    s.skip_value();
    elements.push_back(array_text.substr(value_start, s.pos - value_start));
    s.skip_space();
    if (s.pos >= array_text.size() || array_text[s.pos] != ',') return elements;
    ++s.pos;
  }
}

std::string payload_text(const boost::json::object& validated, const boost::json::object& given,
                         std::string_view raw_arguments) {
  auto raw = raw_members(raw_arguments);
  std::string out = "{";
  for (const auto& member : validated) {
    if (out.size() > 1) out += ',';
    out += boost::json::serialize(boost::json::string_view(member.key()));
    out += ':';
    auto found = raw.find(std::string(member.key()));
    const boost::json::value* sent = given.if_contains(member.key());
    if (found != raw.end() && sent && to_json_text(*sent) == to_json_text(member.value())) {
      out += found->second;
    } else {
      out += to_json_text(member.value());
    }
  }
  out += '}';
  return out;
}

}  // namespace asya::gateway
