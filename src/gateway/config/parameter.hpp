// Tool parameters (private to src/gateway/config): reading a parameter definition from
// routes.yaml, and checking a value against it. The public face is tools_config.hpp
// (input_schema, validate_arguments).
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/json/value.hpp>
#include <string>

#include "gateway/config/tools_config.hpp"

namespace asya::gateway::config_detail {

// The parameter `name` defined by `node` (type, description, required, default, enum/options,
// items, properties); throws LoadError "<file>:<line>: <field>.<key>: <what>" at the first
// mistake. `nested_item`: the definition is an array's `items` (no `required` there).
Parameter parse_parameter(const std::string& file, const std::string& name, const YAML::Node& node,
                          const std::string& field, bool nested_item);

// "" when `value` fits `param`, else what is wrong ("<where>: expected an integer, got \"x\"").
std::string check_value(const Parameter& param, const boost::json::value& value,
                        const std::string& where);

}  // namespace asya::gateway::config_detail
