// The containers of an actor's pod: the user's containers as written in the manifest (with
// --image replacements and $(NAME) checks), the runtime container wired to the shared socket
// (and to the bundled Python runtime when it has no command), and the injected asya-sidecar with
// the manifest's sidecar environment. Declared in render_parts.hpp.
#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "k8s/render_parts.hpp"

namespace asya::k8s::render_detail {

// The asya-sidecar container with its environment: image, metrics port, probes, resources.
json::object sidecar_container_base(const RenderOptions& o, json::array env_vars) {
  return {
      {"name", kSidecarName},
      {"image", o.sidecar_image},
      {"command", json::array{"asya-sidecar"}},
      {"env", std::move(env_vars)},
      {"ports",
       json::array{{{"name", "metrics"}, {"containerPort", o.metrics_port}, {"protocol", "TCP"}}}},
      {"readinessProbe", http_probe("/readyz", "metrics", 5, 3)},
      {"livenessProbe", http_probe("/healthz", "metrics", 10, 6)},
      {"resources", resources("50m", "32Mi")}};
}

json::object sidecar_container(const manifest::Actor& a, std::string_view transport,
                               const RenderOptions& o, const std::string& gateway_url) {
  json::array e =
      env_array(manifest::sidecar_environment(a, sidecar_options(transport, o, gateway_url)));
  json::object container = sidecar_container_base(o, std::move(e));
  container["volumeMounts"] = json::array{{{"name", kSocketVolume}, {"mountPath", kSocketDir}}};
  return container;
}

namespace {

// The $(NAME) references of a command or args entry, as the kubelet expands them ($$ escapes).
std::vector<std::string> variable_references(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$') continue;
    if (text[i + 1] == '$') {
      ++i;
      continue;
    }
    if (text[i + 1] != '(') continue;
    auto end = text.find(')', i + 2);
    if (end == std::string_view::npos) break;
    auto name = std::string(text.substr(i + 2, end - i - 2));
    if (manifest::valid_env_name(name)) out.push_back(std::move(name));
    i = end;
  }
  return out;
}

// A container as written in the manifest (name, image, command, args, env, workingDir and the
// Kubernetes-only fields), with --image replacements applied. The kubelet expands $(NAME) in
// command and args only from the container's env: ASYA_BUILD_DIR (which `asya up` defaults to its
// build tree) gets RenderOptions::build_dir, any other undefined name is an error.
Result<json::object> user_container(const manifest::Container& c, const std::string& where,
                                    const RenderOptions& o) {
  auto image = o.images.find(c.image);
  json::object out{{"name", c.name}, {"image", image == o.images.end() ? c.image : image->second}};
  std::set<std::string> undefined;
  for (const auto* list : {&c.command, &c.args}) {
    for (const auto& item : *list) {
      for (auto& name : variable_references(item)) {
        const bool in_env =
            std::any_of(c.env.begin(), c.env.end(), [&](const auto& v) { return v.name == name; });
        if (!in_env) undefined.insert(std::move(name));
      }
    }
  }
  if (!c.command.empty()) out["command"] = strings(c.command);
  if (!c.args.empty()) out["args"] = strings(c.args);
  if (!c.working_dir.empty()) out["workingDir"] = c.working_dir;
  json::array e;
  for (const auto& var : c.env) {
    if (!var.value_from_yaml.empty()) {
      auto from = parse_mapping(var.value_from_yaml, where + ".env." + var.name + ".valueFrom");
      if (!from) return from.error();
      e.push_back({{"name", var.name}, {"valueFrom", std::move(*from)}});
    } else {
      e.push_back(env(var.name, var.value));
    }
  }
  for (const auto& name : undefined) {
    if (name != "ASYA_BUILD_DIR") {
      return Error{fmt::format(
          "{}.command: $({}) is not set in the container's env, and Kubernetes expands $(NAME) "
          "only from there (it would run the text \"$({})\"); add {} to env (or write $$({}) for "
          "a literal)",
          where, name, name, name, name)};
    }
    e.push_back(env(name, o.build_dir));
  }
  if (!e.empty()) out["env"] = std::move(e);
  if (!c.kubernetes_extra_yaml.empty()) {
    auto extra = parse_mapping(c.kubernetes_extra_yaml, where);
    if (!extra) return extra.error();
    for (auto& [key, value] : *extra) out[key] = std::move(value);
  }
  return out;
}

bool has_env(const json::object& container, std::string_view name) {
  if (!container.contains("env")) return false;
  for (const auto& e : container.at("env").as_array()) {
    if (e.as_object().at("name").as_string() == name) return true;
  }
  return false;
}

void add_env(json::object& container, json::object var) {
  if (!container.contains("env")) container["env"] = json::array{};
  container["env"].as_array().push_back(std::move(var));
}

void add_mount(json::object& container, json::object mount) {
  if (!container.contains("volumeMounts")) container["volumeMounts"] = json::array{};
  container["volumeMounts"].as_array().push_back(std::move(mount));
}

// Labels and annotations of the pod template: the manifest's spec.workload.template.metadata
// with Asya's labels added. Label and annotation values are strings on Kubernetes; a plain YAML
// The runtime container's wiring: the shared socket directory (ASYA_SOCKET_DIR unless the
// manifest points elsewhere), a readiness probe on the runtime's socket and ready file, and, for
// a container without a command, the bundled Python runtime mounted from ConfigMap asya-runtime.
// Returns whether that ConfigMap is needed.
bool wire_runtime_container(const manifest::Container& c, json::object& rc) {
  bool needs_runtime_config_map = false;
  if (c.name.empty()) rc["name"] = manifest::kRuntimeContainerName;
  if (c.command.empty()) {
    // The bundled Python runtime, mounted from ConfigMap asya-runtime.
    needs_runtime_config_map = true;
    rc["command"] = json::array{"python3", fmt::format("{}/asya_runtime.py", kRuntimeMountDir)};
    add_mount(rc, {{"name", kRuntimeVolume}, {"mountPath", kRuntimeMountDir}, {"readOnly", true}});
  }
  if (!has_env(rc, "ASYA_SOCKET_DIR") && !has_env(rc, "ASYA_SOCKET_PATH")) {
    add_env(rc, env("ASYA_SOCKET_DIR", kSocketDir));
  }
  add_mount(rc, {{"name", kSocketVolume}, {"mountPath", kSocketDir}});
  if (!rc.contains("readinessProbe")) {
    rc["readinessProbe"] = {
        {"exec",
         {{"command",
           json::array{"sh", "-c",
                       fmt::format("test -S {0}/asya-runtime.sock && test -e {0}/runtime-ready",
                                   kSocketDir)}}}},
        {"periodSeconds", 5},
        {"failureThreshold", 3}};
  }
  return needs_runtime_config_map;
}

}  // namespace

Result<PodContainers> pod_containers(const manifest::Actor& a, std::string_view transport,
                                     const RenderOptions& o, const std::string& gateway_url,
                                     const std::string& where) {
  // The user's containers, with the runtime one wired to the socket, then the sidecar.
  PodContainers out;
  for (std::size_t i = 0; i < a.containers.size(); ++i) {
    const auto& c = a.containers[i];
    const std::string cwhere =
        fmt::format("{}: spec.workload.template.spec.containers[{}]", where, i);
    if (c.image.empty()) {
      return Error{cwhere + ".image: missing; a Kubernetes pod needs an image for every container"};
    }
    if (c.name == kSidecarName) {
      return Error{cwhere + ".name: \"asya-sidecar\" is injected by Asya; rename the container"};
    }
    auto container = user_container(c, cwhere, o);
    if (!container) return container.error();
    if (i == a.runtime_container && wire_runtime_container(c, *container)) {
      out.needs_runtime_config_map = true;
    }
    if (i == a.runtime_container) {
      // What the manifest decides for the runtime (spec.batching) wins over the container's env.
      for (const auto& var : manifest::runtime_environment(a)) {
        if (container->contains("env")) {
          auto& list = container->at("env").as_array();
          for (auto it = list.begin(); it != list.end();)
            it = it->as_object().at("name").as_string() == var.name ? list.erase(it) : it + 1;
        }
        add_env(*container, env(var.name, *var.literal()));
      }
    }
    out.containers.push_back(std::move(*container));
  }
  out.containers.push_back(sidecar_container(a, transport, o, gateway_url));
  return out;
}

}  // namespace asya::k8s::render_detail
