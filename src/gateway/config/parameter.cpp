#include "gateway/config/parameter.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <map>

#include "common/json_text.hpp"
#include "gateway/config/yaml_fields.hpp"

namespace asya::gateway {
namespace config_detail {
namespace json = boost::json;
namespace {

const std::map<std::string, ParamType>& type_names() {
  static const std::map<std::string, ParamType> names = {
      {"string", ParamType::string},   {"number", ParamType::number},
      {"integer", ParamType::integer}, {"boolean", ParamType::boolean},
      {"array", ParamType::array},     {"object", ParamType::object}};
  return names;
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

// Sets schema.properties (each parameter's schema) and schema.required (the required ones' names,
// left out when none).
void add_properties(json::object& schema, const std::vector<Parameter>& properties);

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
  if (param.type == ParamType::object && !param.properties.empty())
    add_properties(schema, param.properties);
  return schema;
}

void add_properties(json::object& schema, const std::vector<Parameter>& properties) {
  json::object props;
  json::array required;
  for (const auto& prop : properties) {
    props[prop.name] = parameter_schema(prop);
    if (prop.required) required.push_back(json::value(prop.name));
  }
  schema["properties"] = std::move(props);
  if (!required.empty()) schema["required"] = std::move(required);
}

}  // namespace

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
      json::value v = to_json(file, values[i], field + "." + key + "[" + std::to_string(i) + "]");
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
    json::value v = to_json(file, def, field + ".default");
    if (param.type == ParamType::string && def.IsScalar()) v = json::value(def.Scalar());
    std::string problem = check_value(param, v, "");
    if (!problem.empty()) fail(file, def, field + ".default", problem);
    param.default_value = std::move(v);
  }
  return param;
}

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

}  // namespace config_detail

using namespace config_detail;
namespace json = boost::json;

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

json::object input_schema(const Tool& tool) {
  json::object schema;
  schema["type"] = "object";
  add_properties(schema, tool.parameters);
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
