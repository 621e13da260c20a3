// Typed readers of manifest fields, internal to src/manifest: each reads one YAML node as an
// integer in a range, a boolean, a string, a list of strings, a duration (seconds or "500ms",
// "1m30s") or a mapping with known keys, and on a bad value records a Diagnostic naming the file,
// the line, the field, the value and what is allowed, instead of stopping. The AsyncActor's
// fields themselves are read by ActorReader (actor_reader.hpp).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "manifest/manifest.hpp"

namespace asya::manifest::detail {

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

// 1-based line of `node`; 0 when it is not in the document.
int line_of(const YAML::Node& node);

// How a bad value is shown in a message: a scalar in quotes, or its shape.
std::string show(const YAML::Node& node);

// `node` as one flow-style YAML text, quoted scalars kept quoted ("true" in a nodeSelector must
// stay a string); what the model keeps of fields meant for Kubernetes only.
std::string flow_yaml(const YAML::Node& node);

// Reads fields of one file's documents, appending every problem to `errors`. Each reader returns
// nothing (and has recorded a Diagnostic) when the value is not acceptable.
class FieldReader {
 public:
  FieldReader(std::string file, std::vector<Diagnostic>& errors)
      : file_(std::move(file)), errors_(errors) {}

  // Records a problem at `at`'s line, or at `fallback_line` when `at` has none.
  void error(const YAML::Node& at, int fallback_line, const std::string& field,
             std::string message);

  // Reports keys of `map` not in `allowed`. Returns false when `map` is not a mapping.
  bool mapping(const YAML::Node& map, int parent_line, const std::string& field,
               const std::vector<std::string>& allowed);

  std::optional<int> integer(const YAML::Node& node, const std::string& field, int min, int max);
  std::optional<bool> boolean(const YAML::Node& node, const std::string& field);
  std::optional<std::string> string(const YAML::Node& node, const std::string& field);
  // A number of seconds (30) or a duration string ("500ms", "1m30s"), at least `min`.
  std::optional<std::chrono::milliseconds> duration(const YAML::Node& node,
                                                    const std::string& field,
                                                    std::chrono::milliseconds min);
  std::optional<std::vector<std::string>> strings(const YAML::Node& node, const std::string& field);

  // "field." or "" for the document's root.
  static std::string prefix(const std::string& field) { return field.empty() ? "" : field + "."; }

 protected:
  std::string file_;
  std::vector<Diagnostic>& errors_;
};

}  // namespace asya::manifest::detail
