// ActorReader (actor_reader.hpp): spec.workload: its kind, the pod template's metadata and
// Kubernetes-only pod fields (kept as YAML text for render), the containers with their env, and
// which one is the runtime container with a valid handler or handler mode.
#include <algorithm>
#include <map>
#include <regex>

#include <fmt/format.h>

#include "manifest/actor_reader.hpp"

namespace asya::manifest::detail {

void ActorReader::read_workload(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.workload";
  if (!mapping(node, line, f, {"kind", "template"})) return;
  if (auto kind = node["kind"]) {
    auto value = string(kind, f + ".kind");
    if (value && *value != "Deployment" && *value != "StatefulSet") {
      error(kind, line, f + ".kind",
            fmt::format("\"{}\" is not supported; use Deployment or StatefulSet", *value));
    } else if (value) {
      actor.workload_kind = *value;
    }
  }
  auto tmpl = node["template"];
  if (!tmpl) {
    error(node, line, f + ".template", "missing; give template.spec.containers");
    return;
  }
  if (!mapping(tmpl, line, f + ".template", {"metadata", "spec"})) return;
  if (auto metadata = tmpl["metadata"]) {
    const std::string mf = f + ".template.metadata";
    if (mapping(metadata, line, mf, {"labels", "annotations"})) {
      bool ok = true;
      for (const char* key : {"labels", "annotations"}) {
        auto map = metadata[key];
        if (!map) continue;
        if (!map.IsMap()) {
          error(map, line, fmt::format("{}.{}", mf, key),
                fmt::format("expected a mapping of strings, got {}", show(map)));
          ok = false;
          continue;
        }
        for (auto it = map.begin(); it != map.end(); ++it) {
          if (!it->second.IsScalar()) {
            error(it->second, line, fmt::format("{}.{}.{}", mf, key, it->first.Scalar()),
                  fmt::format("expected a string, got {}", show(it->second)));
            ok = false;
          }
        }
      }
      if (ok && metadata.size() > 0) actor.pod_metadata_yaml = flow_yaml(metadata);
    }
  }
  auto pod = tmpl["spec"];
  const std::string pf = f + ".template.spec";
  if (!pod) {
    error(tmpl, line, pf, "missing; give spec.containers");
    return;
  }
  static const std::vector<std::string> kPodFields{
      "containers",        "volumes",
      "nodeSelector",      "tolerations",
      "affinity",          "serviceAccountName",
      "imagePullSecrets",  "securityContext",
      "priorityClassName", "terminationGracePeriodSeconds"};
  if (!mapping(pod, line, pf, kPodFields)) return;
  YAML::Node extra(YAML::NodeType::Map);
  for (auto it = pod.begin(); it != pod.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() != "containers") extra[it->first] = it->second;
  }
  if (extra.size() > 0) actor.pod_extra_yaml = flow_yaml(extra);

  auto containers = pod["containers"];
  const std::string cf = pf + ".containers";
  if (!containers) {
    error(pod, line, cf, "missing; give one container (named asya-runtime when there are several)");
    return;
  }
  if (!containers.IsSequence() || containers.size() == 0) {
    error(containers, line, cf,
          fmt::format("expected a non-empty list of containers, got {}", show(containers)));
    return;
  }
  bool all_ok = true;
  for (std::size_t i = 0; i < containers.size(); ++i) {
    auto c = read_container(containers[i], fmt::format("{}[{}]", cf, i), line);
    if (c)
      actor.containers.push_back(std::move(*c));
    else
      all_ok = false;
  }
  if (!all_ok) return;
  if (actor.containers.size() > 1) {
    auto it = std::find_if(actor.containers.begin(), actor.containers.end(),
                           [](const Container& c) { return c.name == kRuntimeContainerName; });
    if (it == actor.containers.end()) {
      error(containers, line, cf,
            fmt::format("{} containers and none is named {}; name the runtime container {}",
                        actor.containers.size(), kRuntimeContainerName, kRuntimeContainerName));
      return;
    }
    actor.runtime_container = static_cast<std::size_t>(it - actor.containers.begin());
  }
  const Container& runtime = actor.runtime();
  const std::string rf = fmt::format("{}[{}]", cf, actor.runtime_container);
  auto runtime_node = containers[actor.runtime_container];
  auto mode = runtime.env_value("ASYA_HANDLER_MODE");
  if (mode) {
    if (*mode != "payload" && *mode != "envelope") {
      error(runtime_node["env"], line, rf + ".env.ASYA_HANDLER_MODE",
            fmt::format("\"{}\" is not a handler mode; use payload or envelope", *mode));
    } else {
      actor.handler_mode = *mode;
    }
  }
  if (runtime.command.empty()) {
    static const std::regex kHandler("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+");
    auto handler = runtime.env_value("ASYA_HANDLER");
    if (!handler) {
      error(runtime_node, line, rf + ".env",
            "ASYA_HANDLER is missing; set it to module.function or module.Class.method (or give "
            "the container a command)");
    } else if (!std::regex_match(*handler, kHandler)) {
      error(runtime_node["env"], line, rf + ".env.ASYA_HANDLER",
            fmt::format("\"{}\" is not a handler; use module.function or module.Class.method",
                        *handler));
    }
  }
}

std::optional<Container> ActorReader::read_container(const YAML::Node& node, const std::string& f,
                                                     int line) {
  static const std::vector<std::string> kKubernetesOnly{"resources", "imagePullPolicy",
                                                        "volumeMounts", "ports", "securityContext"};
  std::vector<std::string> allowed{"name", "image", "command", "args", "env", "workingDir"};
  allowed.insert(allowed.end(), kKubernetesOnly.begin(), kKubernetesOnly.end());
  std::size_t errors_before = errors_.size();
  if (!mapping(node, line, f, allowed)) return std::nullopt;
  Container c;
  if (auto n = node["name"]) {
    if (auto v = string(n, f + ".name")) c.name = *v;
  }
  if (auto n = node["image"]) {
    if (auto v = string(n, f + ".image")) c.image = *v;
  }
  if (auto n = node["command"]) {
    if (auto v = strings(n, f + ".command")) c.command = *v;
  }
  if (auto n = node["args"]) {
    if (auto v = strings(n, f + ".args")) c.args = *v;
  }
  if (auto n = node["workingDir"]) {
    if (auto v = string(n, f + ".workingDir")) c.working_dir = *v;
  }
  if (!c.command.empty() || !c.args.empty()) {
    // args without command would be passed to the bundled runtime, which takes none.
    if (c.command.empty()) {
      error(node["args"], line, f + ".args",
            "args need a command; the bundled Python runtime takes no arguments");
    }
  }
  if (auto env = node["env"]) {
    if (!env.IsSequence()) {
      error(env, line, f + ".env",
            fmt::format("expected a list of {{name, value}} entries, got {}", show(env)));
    } else {
      std::map<std::string, int> seen;
      for (std::size_t i = 0; i < env.size(); ++i) {
        const std::string ef = fmt::format("{}.env[{}]", f, i);
        auto entry = env[i];
        if (!mapping(entry, line, ef, {"name", "value", "valueFrom"})) continue;
        EnvVar var;
        auto name_node = entry["name"];
        if (!name_node) {
          error(entry, line, ef + ".name", "missing; every env entry needs a name");
          continue;
        }
        auto name = string(name_node, ef + ".name");
        if (!name) continue;
        if (!valid_env_name(*name)) {
          error(name_node, line, ef + ".name",
                fmt::format("\"{}\" is not a valid environment variable name; use letters, digits "
                            "and '_', not starting with a digit",
                            *name));
          continue;
        }
        if (auto [it, inserted] = seen.emplace(*name, line_of(name_node)); !inserted) {
          error(name_node, line, ef + ".name",
                fmt::format("\"{}\" is set twice (first at line {}); set each variable once", *name,
                            it->second));
          continue;
        }
        var.name = *name;
        auto value = entry["value"];
        auto value_from = entry["valueFrom"];
        if (value && value_from) {
          error(value_from, line, ef + ".valueFrom", "give either value or valueFrom, not both");
          continue;
        }
        if (value) {
          if (value.IsNull()) {
            var.value.clear();
          } else if (!value.IsScalar()) {
            error(value, line, ef + ".value",
                  fmt::format("expected a string, got {}; quote it if it is meant as text",
                              show(value)));
            continue;
          } else {
            var.value = value.Scalar();
          }
        } else if (value_from) {
          if (!value_from.IsMap()) {
            error(value_from, line, ef + ".valueFrom",
                  fmt::format("expected a mapping (secretKeyRef, configMapKeyRef, ...), got {}",
                              show(value_from)));
            continue;
          }
          var.value_from_yaml = flow_yaml(value_from);
        }
        c.env.push_back(std::move(var));
      }
    }
  }
  YAML::Node extra(YAML::NodeType::Map);
  for (const auto& key : kKubernetesOnly) {
    if (node[key]) extra[key] = node[key];
  }
  if (extra.size() > 0) c.kubernetes_extra_yaml = flow_yaml(extra);
  if (errors_.size() != errors_before) return std::nullopt;
  return c;
}

}  // namespace asya::manifest::detail
