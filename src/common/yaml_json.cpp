#include "common/yaml_json.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <charconv>
#include <cstdint>
#include <regex>

#include "common/yaml_limits.hpp"

namespace asya {
namespace json = boost::json;
namespace {

Error error_at(std::string_view file, int line, std::string_view field, std::string_view what) {
  return Error{std::string(file) + ":" + std::to_string(line) + ": " +
               std::string(field.empty() ? "(document)" : field) + ": " + std::string(what)};
}

int line_of(const YAML::Node& node) {
  return node.Mark().line + 1;
}

bool is_quoted_or_string_tagged(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  return tag == "!" || tag == "tag:yaml.org,2002:str";
}

// An integer's text (sign, digits) as int64, else uint64; nullopt when no 64-bit integer holds it.
std::optional<json::value> integer_value(const std::string& text) {
  const char* begin = text.data() + (text.front() == '+' ? 1 : 0);
  const char* end = text.data() + text.size();
  std::int64_t signed_value = 0;
  auto [signed_end, signed_error] = std::from_chars(begin, end, signed_value);
  if (signed_error == std::errc() && signed_end == end) return json::value(signed_value);
  if (*begin != '-') {
    std::uint64_t unsigned_value = 0;
    auto [unsigned_end, unsigned_error] = std::from_chars(begin, end, unsigned_value);
    if (unsigned_error == std::errc() && unsigned_end == end) return json::value(unsigned_value);
  }
  return std::nullopt;
}

Result<json::value> scalar_value(const YAML::Node& node, std::string_view file,
                                 std::string_view field) {
  const std::string& text = node.Scalar();
  if (is_quoted_or_string_tagged(node)) return json::value(text);
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    return json::value(nullptr);
  if (text == "true" || text == "True" || text == "TRUE") return json::value(true);
  if (text == "false" || text == "False" || text == "FALSE") return json::value(false);
  static const std::regex kInteger(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, kInteger)) {
    if (auto value = integer_value(text)) return *value;
    return error_at(file, line_of(node), field,
                    "the integer " + text +
                        " is outside the 64-bit range -9223372036854775808..18446744073709551615; "
                        "quote it to keep it as text");
  }
  if (std::regex_match(text, kFloat)) {
    double value = 0;
    const char* begin = text.data() + (text.front() == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) return json::value(value);
    return error_at(
        file, line_of(node), field,
        "the number " + text +
            " is too large or too close to zero for a double; quote it to keep it as text");
  }
  return json::value(text);
}

Result<json::value> convert(const YAML::Node& node, std::string_view file,
                            const std::string& field) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json::value(nullptr);
    case YAML::NodeType::Scalar:
      return scalar_value(node, file, field);
    case YAML::NodeType::Sequence: {
      json::array array;
      std::size_t index = 0;
      for (const auto& item : node) {
        auto converted = convert(item, file, field + "[" + std::to_string(index++) + "]");
        if (!converted) return converted;
        array.push_back(std::move(*converted));
      }
      return json::value(std::move(array));
    }
    case YAML::NodeType::Map: {
      json::object object;
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return error_at(file, line_of(entry.first), field,
                          "a mapping key must be a scalar (a name), not a list or a mapping");
        }
        const std::string& key = entry.first.Scalar();
        auto converted = convert(entry.second, file, field.empty() ? key : field + "." + key);
        if (!converted) return converted;
        object[key] = std::move(*converted);
      }
      return json::value(std::move(object));
    }
  }
  return json::value(nullptr);
}

}  // namespace

Result<json::value> from_yaml_node(const YAML::Node& node, std::string_view file,
                                   std::string_view field) {
  return convert(node, file, std::string(field));
}

Result<json::value> from_yaml(std::string_view text, std::string_view file) {
  // The conversion expands every alias: refuse alias bombs and deep nesting first.
  if (auto limit = check_yaml_limits(text)) {
    return Error{std::string(file) + ":" + std::to_string(limit->line) + ": " + limit->message};
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error{std::string(file) + ":" + std::to_string(e.mark.line + 1) +
                 ": invalid YAML: " + e.msg};
  }
  return convert(root, file, "");
}

}  // namespace asya
