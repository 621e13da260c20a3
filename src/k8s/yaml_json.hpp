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

namespace asya::k8s {

// One YAML document (no `---` line), ending with a newline. Keys keep their insertion order.
std::string to_yaml(const boost::json::value& value);

// A multi-document stream: every object preceded by a `---` line.
std::string to_yaml_stream(const std::vector<boost::json::object>& objects);

// Parses YAML text (one document) into JSON, resolving plain scalars by the YAML 1.2 core schema
// (null, true/false, integers, floats; everything else, and every quoted scalar, is a string).
// `what` names the text in the error message of a syntax error or an unsupported construct.
Result<boost::json::value> from_yaml(std::string_view text, std::string_view what);

}  // namespace asya::k8s
