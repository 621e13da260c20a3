// Loading manifests (manifest.hpp): files and directories to YAML documents (size and alias
// limits first, documents of other kinds skipped), each AsyncActor read by ActorReader
// (actor_reader.hpp), duplicate names across all paths; plus the model's small helpers and the
// name validators.
#include "manifest/manifest.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/yaml_limits.hpp"
#include "manifest/actor_reader.hpp"

namespace asya::manifest {
namespace {

namespace fs = std::filesystem;
using detail::line_of;
using detail::show;

void check_duplicates(LoadResult& result) {
  std::map<std::string, const Actor*> first;
  for (auto& actor : result.actors) {
    auto [it, inserted] = first.emplace(actor.name, &actor);
    if (!inserted) {
      result.errors.push_back(
          {actor.file, actor.line, "metadata.name",
           fmt::format("actor \"{}\" is already defined at {}:{}; each actor name must be unique",
                       actor.name, it->second->file, it->second->line)});
    }
  }
}

void load_into(std::string_view text, const std::string& file, LoadResult& result,
               bool& found_actor) {
  // Alias bombs and deep nesting are refused before the tree is built and walked.
  if (auto limit = check_yaml_limits(text)) {
    result.errors.push_back({file, limit->line, "", limit->message});
    return;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    result.errors.push_back(
        {file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", fmt::format("invalid YAML: {}", e.msg)});
    return;
  }
  detail::ActorReader reader(file, result.errors);
  for (const auto& doc : docs) {
    if (!doc || doc.IsNull()) continue;
    if (!doc.IsMap()) {
      result.errors.push_back(
          {file, line_of(doc), "",
           fmt::format("expected a mapping (an AsyncActor resource), got {}", show(doc))});
      continue;
    }
    auto kind = doc["kind"];
    auto api = doc["apiVersion"];
    const bool ours = api && api.IsScalar() && api.Scalar().rfind("asya.sh/", 0) == 0;
    if (!kind && !api && !doc["metadata"] && !doc["spec"]) continue;  // not a resource at all
    if (!kind || !kind.IsScalar()) {
      result.errors.push_back(
          {file, line_of(kind ? kind : doc), "kind",
           fmt::format("{}; an Asya manifest document needs kind: {}",
                       kind ? fmt::format("expected a string, got {}", show(kind)) : "missing",
                       kKind)});
      continue;
    }
    if (kind.Scalar() != kKind) {
      // Another Kubernetes object is not ours; another kind of our API group is a mistake.
      if (ours) {
        result.errors.push_back({file, line_of(kind), "kind",
                                 fmt::format("\"{}\" is not a kind of {}; use {}", kind.Scalar(),
                                             api.Scalar(), kKind)});
      }
      continue;
    }
    found_actor = true;
    if (auto actor = reader.actor(doc)) result.actors.push_back(std::move(*actor));
  }
}

}  // namespace

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}", line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

std::optional<std::string> Container::env_value(std::string_view name) const {
  for (const auto& var : env) {
    if (var.name == name) return var.value;
  }
  return std::nullopt;
}

bool Retry::retries_processing_errors() const {
  return std::find(retry_on.begin(), retry_on.end(), "processing_error") != retry_on.end();
}

std::string LoadResult::error_text() const {
  std::string out;
  for (const auto& d : errors) out += d.str() + "\n";
  return out;
}

bool is_routes_file(std::string_view path) {
  auto name = fs::path(path).filename();
  return name == "routes.yaml" || name == "routes.yml";
}

bool valid_env_name(std::string_view name) {
  if (name.empty()) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

LoadResult load_text(std::string_view text, const std::string& file) {
  LoadResult result;
  bool found = false;
  load_into(text, file, result, found);
  if (!found && result.errors.empty()) {
    result.errors.push_back({file, 0, "", fmt::format("no {} resource found", kKind)});
  }
  check_duplicates(result);
  return result;
}

LoadResult load_paths(const std::vector<std::string>& paths) {
  LoadResult result;
  for (const auto& path : paths) {
    std::error_code ec;
    std::vector<fs::path> files;
    bool is_dir = fs::is_directory(path, ec);
    if (is_dir) {
      for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        auto ext = it->path().extension();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml") &&
            !is_routes_file(it->path().string()))
          files.push_back(it->path());
      }
      std::sort(files.begin(), files.end());
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      result.errors.push_back(
          {path, 0, "", "no such file or directory; give manifest files or directories"});
      continue;
    }
    bool found = false;
    std::size_t errors_before = result.errors.size();
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        result.errors.push_back({file.string(), 0, "", "cannot be read"});
        continue;
      }
      std::stringstream buffer;
      buffer << in.rdbuf();
      load_into(buffer.str(), file.string(), result, found);
    }
    if (!found && result.errors.size() == errors_before) {
      result.errors.push_back(
          {path, 0, "",
           is_dir ? fmt::format("no {} resource found in any *.yaml or *.yml file", kKind)
                  : fmt::format("no {} resource found", kKind)});
    }
  }
  check_duplicates(result);
  return result;
}

}  // namespace asya::manifest