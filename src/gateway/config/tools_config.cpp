#include "gateway/config/tools_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/env.hpp"
#include "common/json_text.hpp"
#include "common/yaml_limits.hpp"

namespace asya::gateway {
namespace {

namespace json = boost::json;

// Reports "<file>:<line>: <field>: <what>".
[[noreturn]] void fail(const std::string& file, const YAML::Node& node, const std::string& field,
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

bool is_quoted(const YAML::Node& node) {
  return node.Tag() == "!";
}

// A plain YAML scalar as JSON: true/false, null, integers, numbers; quoted scalars stay strings.
json::value scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (is_quoted(node)) return json::value(text);
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text == "null" || text == "~" || text.empty()) return nullptr;
  static const std::regex integer(R"([-+]?[0-9]+)");
  static const std::regex number(R"([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, integer)) {
    try {
      return json::value(static_cast<std::int64_t>(std::stoll(text)));
    } catch (...) {
    }
  }
  if (std::regex_match(text, number)) {
    try {
      return json::value(std::stod(text));
    } catch (const std::out_of_range&) {
      // 1e999: no JSON number holds it; keep the text (found by fuzzing)
    }
  }
  return json::value(text);
}

json::value yaml_to_json(const YAML::Node& node) {
  if (node.IsScalar()) return scalar_to_json(node);
  if (node.IsSequence()) {
    json::array out;
    for (const auto& item : node) out.push_back(yaml_to_json(item));
    return out;
  }
  if (node.IsMap()) {
    json::object out;
    for (const auto& kv : node) out[kv.first.Scalar()] = yaml_to_json(kv.second);
    return out;
  }
  return nullptr;
}

// Collects the LoadErrors of independent steps so that one load reports every mistake, one per
// line, as the manifest loader does.
class Mistakes {
 public:
  // Runs `step`; a LoadError it throws is recorded (each of its lines) instead of propagated.
  template <class Step>
  void check(Step&& step) {
    try {
      step();
    } catch (const LoadError& e) {
      add(e.what());
    }
  }
  void add(std::string_view lines) {
    while (!lines.empty()) {
      auto end = lines.find('\n');
      if (end != 0) lines_.emplace_back(lines.substr(0, end));
      if (end == std::string_view::npos) break;
      lines.remove_prefix(end + 1);
    }
  }
  std::size_t count() const { return lines_.size(); }
  // Throws one LoadError with every mistake, one per line, when there is any.
  void throw_if_any() const {
    if (lines_.empty()) return;
    std::string text;
    for (const auto& line : lines_) text += (text.empty() ? "" : "\n") + line;
    throw LoadError(text);
  }

 private:
  std::vector<std::string> lines_;
};

// Throws one LoadError naming every key of `map` not in `allowed` (one line each).
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

bool to_bool(const std::string& file, const YAML::Node& node, const std::string& field) {
  if (node.IsScalar() && !is_quoted(node)) {
    json::value v = scalar_to_json(node);
    if (v.is_bool()) return v.as_bool();
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
    json::value v = scalar_to_json(node);
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

const std::map<std::string, ParamType>& type_names() {
  static const std::map<std::string, ParamType> names = {
      {"string", ParamType::string},   {"number", ParamType::number},
      {"integer", ParamType::integer}, {"boolean", ParamType::boolean},
      {"array", ParamType::array},     {"object", ParamType::object}};
  return names;
}

std::string check_value(const Parameter& param, const json::value& value, const std::string& where);

Parameter parse_parameter(const std::string& file, const std::string& name, const YAML::Node& node,
                          const std::string& field, bool nested_item) {
  if (!node.IsMap())
    fail(file, node, field, "expected a mapping with at least `type`, got " + describe(node));
  check_keys(
      file, node, field,
      {"type", "description", "required", "default", "enum", "options", "items", "properties"});
  Parameter param;
  param.name = name;
  const YAML::Node type = node["type"];
  if (!type)
    fail(file, node, field + ".type",
         "missing (accepted: string, number, integer, boolean, array, object)");
  auto found = type_names().find(type.IsScalar() ? type.Scalar() : "");
  if (found == type_names().end()) {
    fail(file, type, field + ".type",
         "unknown type " + describe(type) +
             " (accepted: string, number, integer, boolean, array, object)");
  }
  param.type = found->second;
  if (node["description"])
    param.description = to_string(file, node["description"], field + ".description");
  if (node["required"]) {
    if (nested_item)
      fail(file, node["required"], field + ".required", "not allowed on array items");
    param.required = to_bool(file, node["required"], field + ".required");
  }
  if (node["enum"] && node["options"])
    fail(file, node["options"], field + ".options", "give either enum or options, not both");
  for (const char* key : {"enum", "options"}) {
    const YAML::Node values = node[key];
    if (!values) continue;
    if (!values.IsSequence() || values.size() == 0) {
      fail(file, values, field + "." + key,
           "expected a non-empty list of allowed values, got " + describe(values));
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      json::value v = yaml_to_json(values[i]);
      // An enum of a string parameter lists strings even when YAML reads them as numbers.
      if (param.type == ParamType::string && values[i].IsScalar())
        v = json::value(values[i].Scalar());
      Parameter type_only = param;
      type_only.enum_values.clear();
      std::string problem = check_value(type_only, v, "");
      if (!problem.empty())
        fail(file, values[i], field + "." + key + "[" + std::to_string(i) + "]", problem);
      param.enum_values.push_back(std::move(v));
    }
  }
  if (node["items"]) {
    if (param.type != ParamType::array)
      fail(file, node["items"], field + ".items", "only allowed with type: array");
    param.items = std::make_shared<Parameter>(
        parse_parameter(file, name, node["items"], field + ".items", true));
  }
  if (node["properties"]) {
    if (param.type != ParamType::object) {
      fail(file, node["properties"], field + ".properties", "only allowed with type: object");
    }
    if (!node["properties"].IsMap())
      fail(file, node["properties"], field + ".properties",
           "expected a mapping of name to parameter");
    for (const auto& kv : node["properties"]) {
      param.properties.push_back(parse_parameter(
          file, kv.first.Scalar(), kv.second, field + ".properties." + kv.first.Scalar(), false));
    }
  }
  if (node["default"]) {
    const YAML::Node def = node["default"];
    json::value v = yaml_to_json(def);
    if (param.type == ParamType::string && def.IsScalar()) v = json::value(def.Scalar());
    std::string problem = check_value(param, v, "");
    if (!problem.empty()) fail(file, def, field + ".default", problem);
    param.default_value = std::move(v);
  }
  return param;
}

std::string json_text(const json::value& v) {
  return to_json_text(v);
}

// An integral number representable as a 64-bit integer: written as one, or as a whole number with
// a fraction or exponent (4.0, 1e3), which is forwarded as the integer (see normalize_integers).
// 1e30 or 2.5 is not: the handler would receive a float.
bool is_integer(const json::value& v) {
  if (v.is_int64() || v.is_uint64()) return true;
  if (v.is_double()) {
    double d = v.as_double();
    return std::isfinite(d) && std::floor(d) == d && d >= -9223372036854775808.0 &&
           d < 9223372036854775808.0;
  }
  return false;
}

// Why a number is no integer, for the message ("" when it is not a number).
std::string not_integer_reason(const json::value& v) {
  if (!v.is_double()) return "";
  double d = v.as_double();
  if (std::isfinite(d) && std::floor(d) != d) return " (it has a fractional part)";
  return " (outside the 64-bit integer range -9223372036854775808..18446744073709551615)";
}

// Integers written as whole doubles (4.0) become integers, so they are forwarded as 4.
void normalize_integers(const Parameter& param, json::value& value) {
  switch (param.type) {
    case ParamType::integer:
      if (value.is_double()) value = static_cast<std::int64_t>(value.as_double());
      break;
    case ParamType::array:
      if (param.items && value.is_array()) {
        for (auto& item : value.as_array()) normalize_integers(*param.items, item);
      }
      break;
    case ParamType::object:
      if (value.is_object()) {
        for (const auto& prop : param.properties) {
          if (json::value* v = value.as_object().if_contains(prop.name))
            normalize_integers(prop, *v);
        }
      }
      break;
    default:
      break;
  }
}

// "" when `value` fits `param`, else what is wrong ("expected an integer, got \"x\"").
std::string check_value(const Parameter& param, const json::value& value,
                        const std::string& where) {
  const std::string prefix = where.empty() ? "" : where + ": ";
  auto expected = [&](const char* what) {
    return prefix + "expected " + what + ", got " + json_text(value);
  };
  switch (param.type) {
    case ParamType::string:
      if (!value.is_string()) return expected("a string");
      break;
    case ParamType::number:
      if (!value.is_number()) return expected("a number");
      break;
    case ParamType::integer:
      if (!is_integer(value)) return expected("an integer") + not_integer_reason(value);
      break;
    case ParamType::boolean:
      if (!value.is_bool()) return expected("true or false");
      break;
    case ParamType::array:
      if (!value.is_array()) return expected("an array");
      if (param.items) {
        const auto& array = value.as_array();
        for (std::size_t i = 0; i < array.size(); ++i) {
          std::string problem = check_value(
              *param.items, array[i],
              (where.empty() ? std::string("item") : where) + "[" + std::to_string(i) + "]");
          if (!problem.empty()) return problem;
        }
      }
      break;
    case ParamType::object: {
      if (!value.is_object()) return expected("an object");
      const auto& object = value.as_object();
      for (const auto& prop : param.properties) {
        std::string sub = (where.empty() ? std::string() : where + ".") + prop.name;
        const json::value* v = object.if_contains(prop.name);
        if (!v) {
          if (prop.required) return prefix + "missing required property \"" + prop.name + "\"";
          continue;
        }
        std::string problem = check_value(prop, *v, sub);
        if (!problem.empty()) return problem;
      }
      break;
    }
  }
  if (!param.enum_values.empty()) {
    bool match = std::any_of(param.enum_values.begin(), param.enum_values.end(),
                             [&](const json::value& allowed) { return allowed == value; });
    if (!match) {
      std::string list;
      for (const auto& allowed : param.enum_values)
        list += (list.empty() ? "" : ", ") + json_text(allowed);
      return prefix + "expected one of " + list + ", got " + json_text(value);
    }
  }
  return "";
}

json::object parameter_schema(const Parameter& param) {
  json::object schema;
  schema["type"] = param_type_name(param.type);
  if (!param.description.empty()) schema["description"] = param.description;
  if (!param.enum_values.empty()) {
    json::array values;
    for (const auto& v : param.enum_values) values.push_back(v);
    schema["enum"] = std::move(values);
  }
  if (param.default_value) schema["default"] = *param.default_value;
  if (param.type == ParamType::array)
    schema["items"] = param.items ? parameter_schema(*param.items) : json::object{};
  if (param.type == ParamType::object && !param.properties.empty()) {
    json::object props;
    json::array required;
    for (const auto& prop : param.properties) {
      props[prop.name] = parameter_schema(prop);
      if (prop.required) required.push_back(json::value(prop.name));
    }
    schema["properties"] = std::move(props);
    if (!required.empty()) schema["required"] = std::move(required);
  }
  return schema;
}

struct FileContent {
  std::optional<bool> progress;
  std::optional<std::chrono::milliseconds> timeout;
  std::map<std::string, std::vector<std::string>> routes;
  // Templates with a mistake (already reported): tools using them are not reported again.
  std::set<std::string> invalid_routes;
  // Names of every tool read so far, valid or not, to report duplicates.
  std::set<std::string> tool_names;
};

std::vector<std::string> parse_actor_list(const std::string& file, const YAML::Node& node,
                                          const std::string& field) {
  if (!node.IsSequence() || node.size() == 0) {
    fail(
        file, node, field,
        "expected a non-empty list of actor names or a route template name, got " + describe(node));
  }
  static const std::regex actor(R"([a-z0-9]([-a-z0-9]*[a-z0-9])?)");
  std::vector<std::string> actors;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& item = node[i];
    std::string sub = field + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || item.Scalar().size() > 63 || !std::regex_match(item.Scalar(), actor)) {
      fail(file, item, sub,
           "invalid actor name " + describe(item) +
               " (lowercase letters, digits and '-', starting and ending with a letter or digit, "
               "at most 63 characters)");
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

}  // namespace

const char* task_support_name(TaskSupport support) {
  switch (support) {
    case TaskSupport::optional:
      return "optional";
    case TaskSupport::required:
      return "required";
    case TaskSupport::forbidden:
      break;
  }
  return "forbidden";
}

const char* param_type_name(ParamType type) {
  switch (type) {
    case ParamType::string:
      return "string";
    case ParamType::number:
      return "number";
    case ParamType::integer:
      return "integer";
    case ParamType::boolean:
      return "boolean";
    case ParamType::array:
      return "array";
    case ParamType::object:
      return "object";
  }
  return "string";
}

const Tool* ToolsConfig::find(std::string_view name) const {
  for (const auto& tool : tools) {
    if (tool.name == name) return &tool;
  }
  return nullptr;
}

namespace {

// Parses one file: `shared` (defaults, route templates) accumulates across files; its tools are
// appended to `pending_tools`, parsed once every file is read. Mistakes are recorded, not thrown.
void parse_into(const std::string& text, const std::string& file, FileContent& shared,
                std::vector<std::pair<YAML::Node, std::string>>& pending_tools,
                Mistakes& mistakes) {
  // Alias bombs and deep nesting are refused before the tree is built and walked.
  if (auto limit = check_yaml_limits(text)) {
    mistakes.add(file + ":" + std::to_string(limit->line) + ": " + limit->message);
    return;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    mistakes.add(file + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
    return;
  }
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) {
    mistakes.check([&] {
      fail(file, root, "(top level)", "expected a mapping with defaults, routes and tools");
    });
    return;
  }
  mistakes.check([&] { check_keys(file, root, "", {"defaults", "routes", "tools"}); });
  if (const YAML::Node defaults = root["defaults"]) {
    if (!defaults.IsMap()) {
      mistakes.check([&] {
        fail(file, defaults, "defaults", "expected a mapping, got " + describe(defaults));
      });
    } else {
      mistakes.check([&] { check_keys(file, defaults, "defaults", {"progress", "timeout"}); });
      mistakes.check([&] {
        if (defaults["progress"])
          shared.progress = to_bool(file, defaults["progress"], "defaults.progress");
      });
      mistakes.check([&] {
        if (defaults["timeout"])
          shared.timeout = to_timeout(file, defaults["timeout"], "defaults.timeout");
      });
    }
  }
  if (const YAML::Node routes = root["routes"]) {
    if (!routes.IsMap()) {
      mistakes.check([&] {
        fail(file, routes, "routes", "expected a mapping of template name to actor list");
      });
    } else {
      for (const auto& kv : routes) {
        const std::string name = kv.first.Scalar();
        std::size_t before = mistakes.count();
        mistakes.check([&] {
          if (shared.routes.count(name) || shared.invalid_routes.count(name))
            fail(file, kv.first, "routes." + name, "route template defined twice");
          shared.routes[name] = parse_actor_list(file, kv.second, "routes." + name);
        });
        if (mistakes.count() != before && !shared.routes.count(name))
          shared.invalid_routes.insert(name);
      }
    }
  }
  if (const YAML::Node tools = root["tools"]) {
    if (!tools.IsSequence()) {
      mistakes.check(
          [&] { fail(file, tools, "tools", "expected a list of tools, got " + describe(tools)); });
    } else {
      for (std::size_t i = 0; i < tools.size(); ++i) pending_tools.emplace_back(tools[i], file);
    }
  }
}

// One tool, or nullopt when it has mistakes (every one recorded in `mistakes`).
std::optional<Tool> parse_tool(const YAML::Node& node, const std::string& file, std::size_t index,
                               FileContent& shared, Mistakes& mistakes) {
  std::string field = "tools[" + std::to_string(index) + "]";
  if (!node.IsMap()) {
    mistakes.check(
        [&] { fail(file, node, field, "expected a mapping with name, route and parameters"); });
    return std::nullopt;
  }
  const std::size_t mistakes_before = mistakes.count();
  Tool tool;
  tool.source = file + ":" + std::to_string(node.Mark().line + 1);
  mistakes.check([&] {
    if (!node["name"]) fail(file, node, field + ".name", "missing (every tool needs a name)");
    std::string name = to_string(file, node["name"], field + ".name");
    static const std::regex tool_name(R"([A-Za-z0-9_.-]{1,128})");
    if (!std::regex_match(name, tool_name)) {
      fail(file, node["name"], field + ".name",
           "invalid tool name \"" + name + "\" (1 to 128 of letters, digits, '_', '-', '.')");
    }
    tool.name = name;
  });
  if (!tool.name.empty()) field = "tools[" + tool.name + "]";
  mistakes.check([&] {
    check_keys(file, node, field,
               {"name", "description", "parameters", "route", "timeout", "progress", "async",
                "task_support", "metadata"});
  });
  if (!tool.name.empty() && !shared.tool_names.insert(tool.name).second) {
    mistakes.check([&] {
      fail(file, node["name"], field + ".name", "tool \"" + tool.name + "\" is defined twice");
    });
  }
  mistakes.check([&] {
    if (node["description"])
      tool.description = to_string(file, node["description"], field + ".description");
  });
  if (const YAML::Node params = node["parameters"]) {
    if (!params.IsMap()) {
      mistakes.check([&] {
        fail(file, params, field + ".parameters",
             "expected a mapping of parameter name to definition");
      });
    } else {
      for (const auto& kv : params) {
        mistakes.check([&] {
          const std::string name = kv.first.Scalar();
          tool.parameters.push_back(
              parse_parameter(file, name, kv.second, field + ".parameters." + name, false));
        });
      }
    }
  }
  mistakes.check([&] {
    const YAML::Node route = node["route"];
    if (!route)
      fail(file, node, field + ".route", "missing (a list of actors or a route template name)");
    if (route.IsScalar()) {
      // The template's own mistake is already reported, so the load fails anyway.
      if (shared.invalid_routes.count(route.Scalar())) return;
      auto found = shared.routes.find(route.Scalar());
      if (found == shared.routes.end()) {
        std::string known;
        for (const auto& [name, _] : shared.routes) known += (known.empty() ? "" : ", ") + name;
        fail(file, route, field + ".route",
             "unknown route template " + describe(route) +
                 " (defined: " + (known.empty() ? "none" : known) + ")");
      }
      tool.actors = found->second;
    } else {
      tool.actors = parse_actor_list(file, route, field + ".route");
    }
  });
  tool.timeout = shared.timeout.value_or(std::chrono::minutes(5));
  mistakes.check([&] {
    if (node["timeout"]) tool.timeout = to_timeout(file, node["timeout"], field + ".timeout");
  });
  tool.progress = shared.progress.value_or(false);
  mistakes.check([&] {
    if (node["progress"]) tool.progress = to_bool(file, node["progress"], field + ".progress");
  });
  mistakes.check([&] {
    if (node["async"]) tool.async = to_bool(file, node["async"], field + ".async");
  });
  tool.task_support = tool.async ? TaskSupport::optional : TaskSupport::forbidden;
  mistakes.check([&] {
    const YAML::Node support = node["task_support"];
    if (!support) return;
    std::string text = support.IsScalar() ? support.Scalar() : std::string();
    if (text == "forbidden")
      tool.task_support = TaskSupport::forbidden;
    else if (text == "optional")
      tool.task_support = TaskSupport::optional;
    else if (text == "required")
      tool.task_support = TaskSupport::required;
    else
      fail(file, support, field + ".task_support",
           "invalid value " + describe(support) + " (forbidden, optional or required)");
  });
  mistakes.check([&] {
    if (const YAML::Node metadata = node["metadata"]) {
      if (!metadata.IsMap())
        fail(file, metadata, field + ".metadata", "expected a mapping of key to value");
      tool.metadata = yaml_to_json(metadata).as_object();
    }
  });
  if (mistakes.count() != mistakes_before) return std::nullopt;
  return tool;
}

// Parses the tools of every file once all files are read, so a tool may use a template defined
// in another file; throws one LoadError listing every mistake.
ToolsConfig finish(FileContent& shared,
                   const std::vector<std::pair<YAML::Node, std::string>>& pending,
                   Mistakes& mistakes) {
  ToolsConfig config;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    if (auto tool = parse_tool(pending[i].first, pending[i].second, i, shared, mistakes))
      config.tools.push_back(std::move(*tool));
  }
  mistakes.throw_if_any();
  return config;
}

}  // namespace

ToolsConfig parse_tools(const std::string& yaml_text, const std::string& file_name) {
  FileContent shared;
  std::vector<std::pair<YAML::Node, std::string>> pending;
  Mistakes mistakes;
  parse_into(yaml_text, file_name, shared, pending, mistakes);
  return finish(shared, pending, mistakes);
}

ToolsConfig load_tools(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path)) {
      auto ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml"))
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw LoadError(path + ": directory has no .yaml or .yml files");
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    throw LoadError(
        path +
        ": no such file or directory (set ASYA_CONFIG_PATH to a routes.yaml file or a folder)");
  }
  FileContent shared;
  std::vector<std::pair<YAML::Node, std::string>> pending;
  Mistakes mistakes;
  for (const auto& file : files) {
    std::ifstream in(file);
    if (!in) {
      mistakes.add(file.string() + ": cannot be read");
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    parse_into(text.str(), file.string(), shared, pending, mistakes);
  }
  return finish(shared, pending, mistakes);
}

json::object input_schema(const Tool& tool) {
  json::object schema;
  schema["type"] = "object";
  json::object props;
  json::array required;
  for (const auto& param : tool.parameters) {
    props[param.name] = parameter_schema(param);
    if (param.required) required.push_back(json::value(param.name));
  }
  schema["properties"] = std::move(props);
  if (!required.empty()) schema["required"] = std::move(required);
  schema["additionalProperties"] = false;
  return schema;
}

Result<json::object> validate_arguments(const Tool& tool, const json::object& arguments) {
  for (const auto& kv : arguments) {
    bool known = std::any_of(tool.parameters.begin(), tool.parameters.end(),
                             [&](const Parameter& p) { return p.name == kv.key(); });
    if (!known) {
      std::string list;
      for (const auto& p : tool.parameters) list += (list.empty() ? "" : ", ") + p.name;
      return Error{"unknown argument \"" + std::string(kv.key()) + "\" (tool \"" + tool.name +
                   "\" accepts: " + (list.empty() ? "no arguments" : list) + ")"};
    }
  }
  json::object out = arguments;
  for (const auto& param : tool.parameters) {
    const json::value* value = arguments.if_contains(param.name);
    if (!value || value->is_null()) {
      if (param.default_value) {
        out[param.name] = *param.default_value;
        continue;
      }
      if (param.required) {
        return Error{"missing required argument \"" + param.name + "\" (" +
                     param_type_name(param.type) + ")"};
      }
      continue;
    }
    std::string problem = check_value(param, *value, param.name);
    if (!problem.empty()) return Error{"invalid argument " + problem};
    normalize_integers(param, out[param.name]);
  }
  return out;
}

}  // namespace asya::gateway
