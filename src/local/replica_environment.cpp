#include "local/replica_environment.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace asya::local {
namespace {

constexpr std::string_view kErrorEnd = "error-end";

std::string_view name_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

}  // namespace

manifest::SidecarEnvironmentOptions replica_sidecar_options(
    const manifest::Actor& actor, const ReplicaSidecar& replica, const SupervisorOptions& options,
    std::string_view queue_prefix, const std::vector<std::string>& inherited) {
  manifest::SidecarEnvironmentOptions out;
  out.end_actor = replica.end_actor;
  if (replica.end_actor) {
    const auto store = actor.name == kErrorEnd ? options.paths.failed() : options.paths.succeeded();
    out.result_store = "file://" + store.string();
  }
  out.payload_store = options.payload_store;
  out.transport = options.transport;
  out.queue_prefix = std::string(queue_prefix);
  out.socket_path = replica.socket.string();
  out.metrics_addr = fmt::format("127.0.0.1:{}", replica.metrics_port);
  if (!options.routes_file.empty()) {
    out.gateway_url = options.sidecar_gateway_url();
    // The last entry wins, as the supervisor appends a generated token after the inherited ones.
    for (auto it = inherited.rbegin(); it != inherited.rend(); ++it) {
      if (name_of(*it) != "ASYA_GATEWAY_INTERNAL_TOKEN") continue;
      std::string token = it->substr(it->find('=') + 1);
      if (!token.empty()) out.gateway_internal_token = std::move(token);
      break;
    }
  }
  return out;
}

Result<std::vector<std::string>> replica_sidecar_environment(const manifest::Actor& actor,
                                                             const ReplicaSidecar& replica,
                                                             const SupervisorOptions& options,
                                                             std::string_view queue_prefix,
                                                             std::vector<std::string> inherited) {
  const manifest::Environment mapped = manifest::sidecar_environment(
      actor, replica_sidecar_options(actor, replica, options, queue_prefix, inherited));
  const auto& owned = manifest::sidecar_environment_owned_names();
  // With duplicates getenv sees the first entry: drop every inherited value set below.
  std::erase_if(inherited, [&](const std::string& entry) {
    const std::string_view name = name_of(entry);
    return std::find(owned.begin(), owned.end(), name) != owned.end() ||
           manifest::find_variable(mapped, name) != nullptr;
  });
  for (const auto& variable : mapped) {
    const std::string* value = variable.literal();
    if (value == nullptr) {
      return Error{fmt::format(
          "{}: the sidecar's {} refers to a Kubernetes Secret, which asya up cannot read",
          actor.name, variable.name)};
    }
    inherited.push_back(variable.name + "=" + *value);
  }
  return inherited;
}

Result<std::vector<std::string>> runtime_environment(const manifest::Actor& actor,
                                                     const std::filesystem::path& socket,
                                                     const std::vector<std::string>& inherited) {
  std::vector<std::string> env;
  for (std::string_view keep : {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"}) {
    // The first entry is the one getenv sees.
    auto found = std::find_if(inherited.begin(), inherited.end(),
                              [&](const std::string& e) { return name_of(e) == keep; });
    if (found != inherited.end()) env.push_back(*found);
  }
  for (const auto& var : actor.runtime().env) {
    if (!var.value_from_yaml.empty()) {
      return Error{fmt::format(
          "{}: env {} uses valueFrom, which only Kubernetes resolves; give a value for asya up",
          actor.name, var.name)};
    }
    if (var.name == "ASYA_SOCKET_PATH" || var.name == "ASYA_SOCKET_DIR" ||
        var.name == "ASYA_SOCKET_NAME")
      continue;
    env.push_back(var.name + "=" + var.value);
  }
  // What the manifest decides for the runtime (spec.batching), after the container's env so
  // that it wins (getenv sees the first entry: the container's own value is dropped).
  for (const auto& var : manifest::runtime_environment(actor)) {
    std::erase_if(env, [&](const std::string& e) { return name_of(e) == var.name; });
    env.push_back(var.name + "=" + *var.literal());
  }
  env.push_back("ASYA_SOCKET_PATH=" + socket.string());
  env.push_back("ASYA_SOCKET_DIR=" + socket.parent_path().string());
  env.push_back("ASYA_SOCKET_NAME=" + socket.filename().string());
  return env;
}

std::filesystem::path runtime_working_dir(const manifest::Actor& actor) {
  const std::filesystem::path manifest_dir = std::filesystem::absolute(actor.file).parent_path();
  const std::string& working_dir = actor.runtime().working_dir;
  std::filesystem::path dir =
      (working_dir.empty() ? manifest_dir : manifest_dir / working_dir).lexically_normal();
  if (dir.has_parent_path() && dir.filename().empty()) dir = dir.parent_path();  // "a/b/" -> "a/b"
  return dir;
}

}  // namespace asya::local
