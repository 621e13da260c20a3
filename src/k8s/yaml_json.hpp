// Conversion between JSON values (the form in which src/k8s builds Kubernetes objects) and YAML.
//
// Kubernetes objects are built as boost::json values so that every scalar keeps its type: a
// string "5" is printed quoted, the integer 5 is not. to_yaml() prints block-style YAML that
// `kubectl apply -f -` and any YAML 1.1 or 1.2 reader parse back to the same values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "common/result.hpp"
#include "common/yaml_json.hpp"

namespace asya::k8s {

// One YAML document (no `---` line), ending with a newline. Keys keep their insertion order.
std::string to_yaml(const boost::json::value& value);

// A multi-document stream: every object preceded by a `---` line.
std::string to_yaml_stream(const std::vector<boost::json::object>& objects);

// The way back, YAML text to JSON, is asya::from_yaml (common/yaml_json.hpp), shared with the
// gateway's routes.yaml reader.
using asya::from_yaml;

}  // namespace asya::k8s
