// Reading the fields of routes.yaml (private to src/gateway/config): every mistake is reported
// as "<file>:<line>: <field>: <what>", and Mistakes gathers the independent ones so that one load
// lists every mistake, one per line, as the manifest loader does.
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/json/value.hpp>
#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/tools_config.hpp"

namespace asya::gateway::config_detail {

// Throws LoadError "<file>:<line>: <field>: <what>" (line 0 when `node` is undefined).
[[noreturn]] void fail(const std::string& file, const YAML::Node& node, const std::string& field,
                       const std::string& what);

// `node` in a message: "\"text\"", "a list", "a mapping" or "nothing".
std::string describe(const YAML::Node& node);

// Collects the LoadErrors of independent steps so that one load reports every mistake.
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
  // Records every non-empty line of `lines`.
  void add(std::string_view lines);
  std::size_t count() const { return lines_.size(); }
  // Throws one LoadError with every mistake, one per line, when there is any.
  void throw_if_any() const;

 private:
  std::vector<std::string> lines_;
};

// Throws one LoadError naming every key of `map` not in `allowed` (one line each).
void check_keys(const std::string& file, const YAML::Node& map, const std::string& field,
                const std::set<std::string>& allowed);

// A plain true/false (a quoted "true" is a string, refused).
bool to_bool(const std::string& file, const YAML::Node& node, const std::string& field);
// Any scalar's text.
std::string to_string(const std::string& file, const YAML::Node& node, const std::string& field);
// A positive number of seconds (30, 1.5) or a duration (90s, 10m).
std::chrono::milliseconds to_timeout(const std::string& file, const YAML::Node& node,
                                     const std::string& field);
// The node as JSON (asya::from_yaml_node); an integer or float no JSON number holds is refused.
boost::json::value to_json(const std::string& file, const YAML::Node& node,
                           const std::string& field);
// A non-empty list of pipeline actor names (no happy-end/error-end).
std::vector<std::string> parse_actor_list(const std::string& file, const YAML::Node& node,
                                          const std::string& field);

}  // namespace asya::gateway::config_detail
