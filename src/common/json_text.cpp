#include "common/json_text.hpp"

#include <boost/json/serialize.hpp>

#include <charconv>
#include <cmath>

namespace asya {

std::string format_double(double value) {
  if (std::isnan(value)) return "null";
  if (std::isinf(value)) return value > 0 ? "1e99999" : "-1e99999";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, ec == std::errc() ? end : buffer);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

namespace {

void append(std::string& out, const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      out += std::to_string(value.get_int64());
      return;
    case boost::json::kind::uint64:
      out += std::to_string(value.get_uint64());
      return;
    case boost::json::kind::double_:
      out += format_double(value.get_double());
      return;
    case boost::json::kind::string:
      out += boost::json::serialize(value.get_string());
      return;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : value.get_array()) {
        if (!first) out += ',';
        first = false;
        append(out, item);
      }
      out += ']';
      return;
    }
    case boost::json::kind::object:
      append_json_text(out, value.get_object());
      return;
  }
}

}  // namespace

std::string to_json_text(const boost::json::value& value) {
  std::string out;
  append(out, value);
  return out;
}

void append_json_text(std::string& out, const boost::json::value& value) {
  append(out, value);
}

void append_json_text(std::string& out, const boost::json::object& object) {
  out += '{';
  bool first = true;
  for (const auto& member : object) {
    if (!first) out += ',';
    first = false;
    out += boost::json::serialize(boost::json::string_view(member.key()));
    out += ':';
    append(out, member.value());
  }
  out += '}';
}

bool contains_double(const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::double_:
      return true;
    case boost::json::kind::array:
      for (const auto& item : value.get_array())
        if (contains_double(item)) return true;
      return false;
    case boost::json::kind::object:
      return contains_double(value.get_object());
    default:
      return false;
  }
}

bool contains_double(const boost::json::object& object) {
  for (const auto& member : object)
    if (contains_double(member.value())) return true;
  return false;
}

}  // namespace asya
