#include "k8s/yaml_json.hpp"

#include <charconv>
#include <cmath>

#include <boost/json.hpp>

namespace asya::k8s {
namespace json = boost::json;
namespace {

bool is_reserved_word(std::string_view s) {
  std::string lower(s);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kWords[] = {"true", "false", "yes",  "no", "on",   "off",
                                       "y",    "n",     "null", "~",  ".inf", ".nan"};
  for (const char* w : kWords) {
    if (lower == w) return true;
  }
  return false;
}

// A string printed without quotes must read back as the same string in YAML 1.1 and 1.2, so
// only a conservative alphabet qualifies: no leading digit (numbers, times, octals), no
// indicator characters, no ": " or " #", no trailing colon.
bool can_be_plain(std::string_view s) {
  if (s.empty() || is_reserved_word(s)) return false;
  const char first = s.front();
  if (!(std::isalpha(static_cast<unsigned char>(first)) || first == '_' || first == '/')) {
    return false;
  }
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '.' || c == '/' || c == '-' || c == ':' || c == '=' ||
          c == '@' || c == '+')) {
      return false;
    }
  }
  return s.back() != ':';
}

// Multi-line text is printed as a literal block when every character is printable.
bool can_be_literal_block(std::string_view s) {
  if (s.find('\n') == std::string_view::npos) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) return false;
  }
  // Whitespace at the end of a line is ambiguous in a block (a blank-looking last line is
  // chomped), so such text is double-quoted instead.
  if (s.find(" \n") != std::string_view::npos || s.find("\t\n") != std::string_view::npos) {
    return false;
  }
  return s.back() != ' ' && s.back() != '\t';
}

std::string quoted(std::string_view s) {
  return json::serialize(json::string(s));
}

std::string scalar_text(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_: {
      const double d = v.get_double();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
      std::string text(buf, end);
      // YAML 1.1 floats need a dot (1.0, 1.0e+20).
      if (text.find('.') == std::string::npos) {
        const auto e = text.find('e');
        text.insert(e == std::string::npos ? text.size() : e, ".0");
      }
      return text;
    }
    case json::kind::string: {
      std::string_view s = v.get_string();
      return can_be_plain(s) ? std::string(s) : quoted(s);
    }
    default:
      return {};
  }
}

bool is_collection(const json::value& v) {
  return (v.is_object() && !v.get_object().empty()) || (v.is_array() && !v.get_array().empty());
}

void emit_block(const json::value& v, int indent, std::string& out);

// Writes the value that follows "key:" or "- " (already on the line): a scalar on the same
// line, a collection on the following lines.
void emit_after_indicator(const json::value& v, int indent, bool in_sequence, std::string& out) {
  if (v.is_object() && v.get_object().empty()) {
    out += " {}\n";
  } else if (v.is_array() && v.get_array().empty()) {
    out += " []\n";
  } else if (v.is_string() && can_be_literal_block(v.get_string())) {
    std::string_view s = v.get_string();
    std::size_t trailing = 0;
    while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') ++trailing;
    out += " |";
    if (s.front() == ' ' || s.front() == '\n') out += "2";
    out += trailing == 0 ? "-" : trailing == 1 ? "" : "+";
    out += '\n';
    const std::string pad(static_cast<std::size_t>(indent + 2), ' ');
    std::size_t pos = 0;
    const std::string_view body = s.substr(0, s.size() - (trailing > 0 ? 1 : 0));
    while (pos <= body.size()) {
      auto nl = body.find('\n', pos);
      if (nl == std::string_view::npos) nl = body.size();
      const auto line = body.substr(pos, nl - pos);
      if (!line.empty()) out.append(pad).append(line);
      out += '\n';
      pos = nl + 1;
    }
  } else if (!is_collection(v)) {
    out += ' ';
    out += scalar_text(v);
    out += '\n';
  } else if (in_sequence) {
    // "- key: value" style: the first line of the nested block shares the dash's line.
    std::string nested;
    emit_block(v, indent + 2, nested);
    out += ' ';
    out.append(nested, static_cast<std::size_t>(indent + 2), std::string::npos);
  } else {
    out += '\n';
    // Sequences under a key are not indented further (kubectl's style); mappings are.
    emit_block(v, v.is_array() ? indent : indent + 2, out);
  }
}

void emit_block(const json::value& v, int indent, std::string& out) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.get_object()) {
      out += pad;
      const std::string_view k = key;
      out += can_be_plain(k) ? std::string(k) : quoted(k);
      out += ':';
      emit_after_indicator(value, indent, false, out);
    }
  } else if (v.is_array()) {
    for (const auto& item : v.get_array()) {
      out += pad;
      out += '-';
      emit_after_indicator(item, indent, true, out);
    }
  } else {
    out += pad;
    out += scalar_text(v);
    out += '\n';
  }
}

}  // namespace

std::string to_yaml(const json::value& value) {
  std::string out;
  if (is_collection(value)) {
    emit_block(value, 0, out);
  } else {
    out = value.is_object() ? "{}\n" : value.is_array() ? "[]\n" : scalar_text(value) + "\n";
  }
  return out;
}

std::string to_yaml_stream(const std::vector<json::object>& objects) {
  std::string out;
  for (const auto& object : objects) {
    out += "---\n";
    out += to_yaml(json::value(object));
  }
  return out;
}

}  // namespace asya::k8s
