#include "gateway/config/yaml_fields.hpp"

#include <boost/json.hpp>
#include <cmath>

#include "common/actor_name.hpp"
#include "common/env.hpp"
#include "common/yaml_json.hpp"

namespace asya::gateway::config_detail {
namespace json = boost::json;

void fail(const std::string& file, const YAML::Node& node, const std::string& field,
          const std::string& what) {
  int line = node.IsDefined() ? node.Mark().line + 1 : 0;
  throw LoadError(file + ":" + std::to_string(line) + ": " + field + ": " + what);
}

std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return "\"" + node.Scalar() + "\"";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

void Mistakes::add(std::string_view lines) {
  while (!lines.empty()) {
    auto end = lines.find('\n');
    if (end != 0) lines_.emplace_back(lines.substr(0, end));
    if (end == std::string_view::npos) break;
    lines.remove_prefix(end + 1);
  }
}

void Mistakes::throw_if_any() const {
  if (lines_.empty()) return;
  std::string text;
  for (const auto& line : lines_) text += (text.empty() ? "" : "\n") + line;
  throw LoadError(text);
}

void check_keys(const std::string& file, const YAML::Node& map, const std::string& field,
                const std::set<std::string>& allowed) {
  Mistakes unknown;
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      unknown.check([&] {
        fail(file, kv.first, field.empty() ? key : field + "." + key,
             "unknown key (accepted: " + list + ")");
      });
    }
  }
  unknown.throw_if_any();
}

json::value to_json(const std::string& file, const YAML::Node& node, const std::string& field) {
  auto converted = from_yaml_node(node, file, field);
  if (!converted) throw LoadError(converted.error().message);
  return std::move(*converted);
}

bool to_bool(const std::string& file, const YAML::Node& node, const std::string& field) {
  if (node.IsScalar()) {
    auto v = from_yaml_node(node, file, field);
    if (v && v->is_bool()) return v->as_bool();
  }
  fail(file, node, field, "expected true or false, got " + describe(node));
}

std::string to_string(const std::string& file, const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) fail(file, node, field, "expected a string, got " + describe(node));
  return node.Scalar();
}

std::chrono::milliseconds to_timeout(const std::string& file, const YAML::Node& node,
                                     const std::string& field) {
  if (node.IsScalar()) {
    json::value v = to_json(file, node, field);
    if (v.is_int64() && v.as_int64() > 0) return std::chrono::seconds(v.as_int64());
    if (v.is_double() && v.as_double() > 0) {
      return std::chrono::milliseconds(
          static_cast<std::int64_t>(std::llround(v.as_double() * 1000)));
    }
    if (v.is_string()) {
      auto parsed = parse_duration(v.as_string());
      if (parsed.ok() && parsed.value().count() > 0) return parsed.value();
    }
  }
  fail(file, node, field,
       "expected a positive number of seconds or a duration such as 90s or 10m, got " +
           describe(node));
}

std::vector<std::string> parse_actor_list(const std::string& file, const YAML::Node& node,
                                          const std::string& field) {
  if (!node.IsSequence() || node.size() == 0) {
    fail(
        file, node, field,
        "expected a non-empty list of actor names or a route template name, got " + describe(node));
  }
  std::vector<std::string> actors;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& item = node[i];
    std::string sub = field + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || !valid_actor_name(item.Scalar())) {
      fail(file, item, sub, "invalid actor name " + describe(item) + " (" + kActorNameRule + ")");
    }
    if (item.Scalar() == "happy-end" || item.Scalar() == "error-end") {
      fail(
          file, item, sub,
          "the end actor " + describe(item) + " is added by the system; list only pipeline actors");
    }
    actors.push_back(item.Scalar());
  }
  return actors;
}

}  // namespace asya::gateway::config_detail
