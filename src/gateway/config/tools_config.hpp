// Gateway tools from routes.yaml (the published gateway's format plus `async`):
//
//   defaults: {progress: false, timeout: 300}          # optional
//   routes:   {ml-pipeline: [prep, infer, post]}       # optional named route templates
//   tools:
//     - name: my_tool
//       description: text
//       parameters:
//         text:  {type: string, required: true, description: ...}
//         count: {type: integer, default: 5}
//         mode:  {type: string, enum: [a, b]}          # `options` is accepted as an alias of enum
//         tags:  {type: array, items: {type: string}}
//         opts:  {type: object, properties: {k: {type: boolean}}}
//       route: ml-pipeline        # a template name, or a list of actors
//       timeout: 600              # seconds, or a duration such as 10m
//       progress: true
//       async: false              # true: the call returns the job id at once
//       task_support: optional    # MCP tasks: forbidden | optional | required
//                                 # (default: optional for async tools, else forbidden)
//       metadata: {team: nlp}     # copied into route.metadata of every envelope
//
// A path may be a file or a directory (every *.yaml / *.yml file in it, in name order; tool names
// must be unique across files; `routes` merge; the last `defaults` win). Every unknown key and
// every invalid value is a load error. A load reports every mistake of every file, not just the
// first: LoadError's message has one line per mistake, each reading
//   "<file>:<line>: <field path>: <what is wrong> (<what is accepted>)".
// (Within one parameter definition only its first mistake is reported.) A text that breaks the
// YAML limits of common/yaml_limits.hpp (alias bombs, nesting deeper than 100) is refused with
// "<file>:<line>: <which limit>" before it is read.
#pragma once

#include <boost/json/value.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace asya::gateway {

class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether an MCP client may (or must) run the tool as a task (tools/call with `task`); the
// `execution.taskSupport` of tools/list.
enum class TaskSupport { forbidden, optional, required };

// "forbidden", "optional", "required".
const char* task_support_name(TaskSupport support);

enum class ParamType { string, number, integer, boolean, array, object };

// "string", "number", ... for a ParamType.
const char* param_type_name(ParamType type);

struct Parameter {
  std::string name;
  ParamType type = ParamType::string;
  std::string description;
  bool required = false;
  std::optional<boost::json::value> default_value;
  std::vector<boost::json::value> enum_values;  // empty: any value of the type
  std::shared_ptr<Parameter> items;             // arrays: schema of each element (may be null)
  std::vector<Parameter> properties;            // objects: known properties (others allowed)
};

struct Tool {
  std::string name;
  std::string description;
  std::vector<Parameter> parameters;  // in file order
  std::vector<std::string> actors;    // the route; never empty
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool progress = false;
  bool async = false;
  TaskSupport task_support = TaskSupport::forbidden;
  boost::json::object metadata;
  std::string source;  // "<file>:<line>" of the tool's definition, for messages
};

struct ToolsConfig {
  std::vector<Tool> tools;
  // The tool named `name`, or nullptr.
  const Tool* find(std::string_view name) const;
};

// Loads a routes.yaml file or a directory of them. Throws LoadError (see the top of this file).
ToolsConfig load_tools(const std::string& path);

// Parses routes.yaml text; `file_name` is used in messages. Throws LoadError.
ToolsConfig parse_tools(const std::string& yaml_text, const std::string& file_name);

// The JSON Schema advertised for a tool's arguments:
// {"type":"object","properties":{...},"required":[...]} with types, enums, defaults, items.
boost::json::object input_schema(const Tool& tool);

// Validates `arguments` against the tool's parameters and returns them with defaults applied.
// The Error message names the bad argument, e.g. `argument "count": expected an integer, got "x"`
// or `missing required argument "text"`. Arguments the tool does not declare are rejected.
Result<boost::json::object> validate_arguments(const Tool& tool,
                                               const boost::json::object& arguments);

}  // namespace asya::gateway
