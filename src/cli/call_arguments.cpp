#include "cli/call_arguments.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "common/json_text.hpp"

namespace asya::cli {

namespace json = boost::json;

namespace {

// The schema's single type name ("" when it has none or several).
std::string type_of(const json::object& property) {
  const json::value* type = property.if_contains("type");
  return type && type->is_string() ? std::string(type->as_string()) : std::string();
}

const json::object* properties_of(const json::object& schema) {
  const json::value* props = schema.if_contains("properties");
  return props && props->is_object() ? &props->as_object() : nullptr;
}

std::string parameter_names(const json::object& schema) {
  std::string names;
  if (const json::object* props = properties_of(schema))
    for (const auto& kv : *props) names += (names.empty() ? "" : ", ") + std::string(kv.key());
  return names.empty() ? "none" : names;
}

std::string quoted(std::string_view text) {
  return to_json_text(json::value(json::string(text)));
}

// An example value of a type, for messages and the tool list.
std::string example_of(const std::string& type) {
  if (type == "integer") return "3";
  if (type == "number") return "0.5";
  if (type == "boolean") return "true";
  if (type == "array") return "'[\"a\",\"b\"]'";
  if (type == "object") return "'{\"k\":1}'";
  return "text";
}

// The value of `key=text` for a parameter of JSON Schema type `type`, or the reason it is not one.
Result<json::value> coerce(const std::string& type, const std::string& text) {
  if (type == "string") return json::value(json::string(text));
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (type.empty()) return ec ? json::value(json::string(text)) : parsed;
  bool fits = false;
  if (!ec) {
    if (type == "integer") fits = parsed.is_int64() || parsed.is_uint64();
    if (type == "number") fits = parsed.is_number();
    if (type == "boolean") fits = parsed.is_bool();
    if (type == "array") fits = parsed.is_array();
    if (type == "object") fits = parsed.is_object();
    if (type == "null") fits = parsed.is_null();
  }
  if (fits) return parsed;
  std::string article = (type == "integer" || type == "array" || type == "object") ? "an " : "a ";
  return Error{article + type};
}

}  // namespace

Result<json::object> build_call_arguments(const json::object& schema, std::string_view tool,
                                          std::string_view args_json,
                                          const std::vector<std::string>& words) {
  json::object out;
  if (!args_json.empty()) {
    boost::system::error_code ec;
    json::value v = json::parse(args_json, ec);
    if (ec || !v.is_object())
      return Error{"--args " + std::string(args_json) +
                   ": not a JSON object (accepted: '{\"key\": value}')"};
    out = std::move(v.as_object());
  }
  const json::object* props = properties_of(schema);
  const json::value* additional = schema.if_contains("additionalProperties");
  bool closed = additional && additional->is_bool() && !additional->as_bool();
  for (const std::string& word : words) {
    auto eq = word.find('=');
    bool raw = eq != std::string::npos && eq > 0 && word[eq - 1] == ':';
    std::string key = eq == std::string::npos ? "" : word.substr(0, raw ? eq - 1 : eq);
    if (key.empty())
      return Error{"argument " + quoted(word) + ": expected key=value (or key:=JSON)"};
    std::string text = word.substr(eq + 1);
    const json::value* property = props ? props->if_contains(key) : nullptr;
    if (!property && closed)
      return Error{"argument " + quoted(word) + ": tool \"" + std::string(tool) +
                   "\" has no parameter \"" + key + "\" (its parameters: " +
                   parameter_names(schema) + "; `asya call --list` shows them)"};
    if (raw) {
      boost::system::error_code ec;
      json::value v = json::parse(text, ec);
      if (ec)
        return Error{"argument " + quoted(word) + ": " + quoted(text) + " is not valid JSON (" +
                     ec.message() + "); key:=JSON takes a JSON value, e.g. " + key + ":='[1,2]'"};
      out[key] = std::move(v);
      continue;
    }
    std::string type = property && property->is_object() ? type_of(property->as_object()) : "";
    auto value = coerce(type, text);
    if (!value)
      return Error{"argument " + quoted(word) + ": parameter \"" + key + "\" of tool \"" +
                   std::string(tool) + "\" takes " + value.error().message + ", and " +
                   quoted(text) + " is not one (e.g. " + key + "=" + example_of(type) + ")"};
    out[key] = std::move(*value);
  }
  return out;
}

std::string format_tool_list(const json::array& tools) {
  if (tools.empty()) return "no tools\n";
  std::string out;
  for (const json::value& item : tools) {
    if (!item.is_object()) continue;
    const json::object& tool = item.as_object();
    const json::value* name = tool.if_contains("name");
    const json::value* description = tool.if_contains("description");
    out += name && name->is_string() ? std::string(name->as_string()) : "?";
    if (description && description->is_string() && !description->as_string().empty())
      out += "  " + std::string(description->as_string());
    out += "\n";
    const json::value* schema = tool.if_contains("inputSchema");
    const json::object* props =
        schema && schema->is_object() ? properties_of(schema->as_object()) : nullptr;
    if (!props || props->empty()) {
      out += "    (no parameters)\n";
      continue;
    }
    std::vector<std::string> required;
    if (const json::value* r = schema->as_object().if_contains("required"); r && r->is_array())
      for (const auto& n : r->as_array())
        if (n.is_string()) required.emplace_back(n.as_string());
    std::vector<std::pair<std::string, std::string>> lines;  // usage, notes
    std::size_t width = 0;
    for (const auto& kv : *props) {
      const json::object empty;
      const json::object& p = kv.value().is_object() ? kv.value().as_object() : empty;
      std::string type = type_of(p);
      std::string usage = std::string(kv.key()) + "=<" + (type.empty() ? "json" : type) + ">";
      if (const json::value* e = p.if_contains("enum"); e && e->is_array()) {
        std::string values;
        for (const auto& v : e->as_array()) {
          if (!values.empty()) values += '|';
          values += v.is_string() ? std::string(v.as_string()) : to_json_text(v);
        }
        usage = std::string(kv.key()) + "=" + values;
      }
      std::string notes;
      if (std::find(required.begin(), required.end(), std::string(kv.key())) != required.end())
        notes = "required";
      if (const json::value* d = p.if_contains("default"))
        notes += (notes.empty() ? "" : ", ") + std::string("default ") + to_json_text(*d);
      if (const json::value* d = p.if_contains("description"); d && d->is_string())
        notes += (notes.empty() ? "" : ". ") + std::string(d->as_string());
      width = std::max(width, usage.size());
      lines.emplace_back(std::move(usage), std::move(notes));
    }
    for (const auto& [usage, notes] : lines) {
      std::string line = "    " + usage;
      if (!notes.empty()) line += std::string(width - usage.size() + 2, ' ') + notes;
      out += line + "\n";
    }
  }
  return out;
}

}  // namespace asya::cli
