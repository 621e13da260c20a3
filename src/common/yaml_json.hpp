// YAML -> JSON: the one conversion every YAML reader of Asya uses (routes.yaml tools, the parts of
// an AsyncActor that src/k8s passes on to Kubernetes, kubeconfig files).
//
// Plain scalars are resolved by the YAML 1.2 core schema: null (`~`, `null`, empty), true/false
// (three spellings each), integers, floats; everything else, and every quoted or `!`/`!!str`
// tagged scalar, is a string. Aliases are expanded (the text is checked by check_yaml_limits()
// first, so an alias bomb or a cycle is refused instead of expanded).
//
// Numbers are never changed silently: an integer from -2^63 to 2^63-1 becomes an int64, one up to
// 2^64-1 a uint64, and one outside that range is an error, as is a float no double holds (1e999);
// quote such a value to keep it as text.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/result.hpp"

namespace YAML {
class Node;
}

namespace asya {

// Parses YAML `text` (one document) into JSON. `file` names the text in every error message,
// "<file>:<line>: <field>: <what>" (field is the path in the document, e.g. `spec.env[2].value`,
// or "(document)" for the top level); a syntax error reads "<file>:<line>: invalid YAML: <why>".
// Thread-safe; never throws except std::bad_alloc.
Result<boost::json::value> from_yaml(std::string_view text, std::string_view file);

// Converts a node of a tree already loaded (and checked with check_yaml_limits()). `field` names
// the node in messages ("tools[ask].metadata"); its children are named `field.key` and
// `field[index]`. Errors read "<file>:<line>: <field>: <what>".
Result<boost::json::value> from_yaml_node(const YAML::Node& node, std::string_view file,
                                          std::string_view field);

}  // namespace asya
