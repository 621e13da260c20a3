// The typed field readers of field_reader.hpp: integers, booleans, strings, durations and
// mappings of a manifest, each failure a Diagnostic with the value and what is allowed.
#include "manifest/field_reader.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <regex>

#include <fmt/format.h>

#include "common/env.hpp"

namespace asya::manifest::detail {

using std::chrono::milliseconds;

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// How a bad value is shown in a message: a scalar in quotes, or its shape.
std::string show(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return fmt::format("\"{}\"", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "nothing (null)";
    default:
      return "nothing";
  }
}

namespace {

// Emits `node` keeping quoted scalars quoted ("true" in a nodeSelector must stay a string).
void emit(const YAML::Node& node, YAML::Emitter& out) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (auto it = node.begin(); it != node.end(); ++it) {
        out << YAML::Key;
        emit(it->first, out);
        out << YAML::Value;
        emit(it->second, out);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit(item, out);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") out << YAML::DoubleQuoted;
      out << node.Scalar();
      break;
    default:
      out << YAML::Null;
  }
}

}  // namespace

std::string flow_yaml(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow;
  emit(node, out);
  return out.c_str();
}

void FieldReader::error(const YAML::Node& at, int fallback_line, const std::string& field,
                        std::string message) {
  int line = line_of(at);
  errors_.push_back({file_, line ? line : fallback_line, field, std::move(message)});
}

bool FieldReader::mapping(const YAML::Node& map, int parent_line, const std::string& field,
                          const std::vector<std::string>& allowed) {
  if (!map.IsMap()) {
    error(map, parent_line, field, fmt::format("expected a mapping, got {}", show(map)));
    return false;
  }
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : show(it->first);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      error(it->first, parent_line, prefix(field) + key,
            fmt::format("unknown field; allowed here: {}", join(allowed)));
    }
  }
  return true;
}

std::optional<int> FieldReader::integer(const YAML::Node& node, const std::string& field, int min,
                                        int max) {
  static const std::regex kInt("-?[0-9]+");
  if (!node.IsScalar() || node.Tag() == "!" || !std::regex_match(node.Scalar(), kInt)) {
    error(node, 0, field, fmt::format("expected an integer, got {}", show(node)));
    return std::nullopt;
  }
  long long value = 0;
  try {
    value = std::stoll(node.Scalar());
  } catch (const std::exception&) {
    value = node.Scalar()[0] == '-' ? std::numeric_limits<long long>::min()
                                    : std::numeric_limits<long long>::max();
  }
  if (value < min || value > max) {
    std::string what = value < 0 && min >= 0 ? "is negative" : "is out of range";
    error(node, 0, field,
          fmt::format("{} {}; use an integer from {} to {}", node.Scalar(), what, min, max));
    return std::nullopt;
  }
  return static_cast<int>(value);
}

std::optional<bool> FieldReader::boolean(const YAML::Node& node, const std::string& field) {
  if (node.IsScalar() && node.Tag() != "!") {
    if (node.Scalar() == "true") return true;
    if (node.Scalar() == "false") return false;
  }
  error(node, 0, field, fmt::format("expected true or false, got {}", show(node)));
  return std::nullopt;
}

std::optional<std::string> FieldReader::string(const YAML::Node& node, const std::string& field) {
  if (node.IsScalar()) return node.Scalar();
  error(node, 0, field, fmt::format("expected a string, got {}", show(node)));
  return std::nullopt;
}

std::optional<milliseconds> FieldReader::duration(const YAML::Node& node, const std::string& field,
                                                  milliseconds min) {
  static const std::regex kSeconds("[0-9]+");
  std::string allowed = fmt::format(
      "use a number of seconds (30) or a duration with a unit (500ms, 30s, 5m), at least {}",
      format_duration(min));
  if (!node.IsScalar()) {
    error(node, 0, field, fmt::format("expected a duration, got {}; {}", show(node), allowed));
    return std::nullopt;
  }
  milliseconds value{0};
  if (std::regex_match(node.Scalar(), kSeconds) && node.Tag() != "!") {
    try {
      value = std::chrono::seconds(std::stoll(node.Scalar()));
    } catch (const std::exception&) {
      error(node, 0, field, fmt::format("{} is too large; {}", node.Scalar(), allowed));
      return std::nullopt;
    }
  } else {
    auto parsed = parse_duration(node.Scalar());
    if (!parsed) {
      error(node, 0, field, fmt::format("{} is not a duration; {}", show(node), allowed));
      return std::nullopt;
    }
    value = *parsed;
  }
  if (value < min) {
    error(node, 0, field, fmt::format("{} is too short; {}", show(node), allowed));
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<std::string>> FieldReader::strings(const YAML::Node& node,
                                                             const std::string& field) {
  if (!node.IsSequence()) {
    error(node, 0, field, fmt::format("expected a list of strings, got {}", show(node)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (std::size_t i = 0; i < node.size(); ++i) {
    auto item = string(node[i], fmt::format("{}[{}]", field, i));
    if (item)
      out.push_back(*item);
    else
      ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace asya::manifest::detail
