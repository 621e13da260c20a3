#include "gateway/config/tools_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/yaml_limits.hpp"
#include "gateway/config/parameter.hpp"
#include "gateway/config/yaml_fields.hpp"

namespace asya::gateway {
namespace {

namespace json = boost::json;
using namespace config_detail;

struct FileContent {
  std::optional<bool> progress;
  std::optional<std::chrono::milliseconds> timeout;
  std::map<std::string, std::vector<std::string>> routes;
  // Templates with a mistake (already reported): tools using them are not reported again.
  std::set<std::string> invalid_routes;
  // Names of every tool read so far, valid or not, to report duplicates.
  std::set<std::string> tool_names;
};

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
      tool.metadata = to_json(file, metadata, field + ".metadata").as_object();
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

}  // namespace asya::gateway
