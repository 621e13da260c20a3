#include "k8s/render.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <set>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "common/env.hpp"
#include "common/scaling_policy.hpp"
#include "k8s/yaml_json.hpp"
#include "manifest/sidecar_environment.hpp"

namespace asya::k8s {
namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

constexpr const char* kSocketDir = "/var/run/asya";
constexpr const char* kSocketVolume = "asya-socket";
constexpr const char* kRuntimeVolume = "asya-runtime";
constexpr const char* kRuntimeConfigMap = "asya-runtime";
constexpr const char* kRuntimeMountDir = "/opt/asya";
constexpr const char* kSidecarName = "asya-sidecar";
constexpr const char* kGatewayName = "asya-gateway";
constexpr const char* kEndActorAccount = "asya-end-actor";
constexpr int kGatewayPort = 8080;
// Extra seconds the kubelet waits after the sidecar's own drain deadline, so it can nack the
// unfinished messages and exit before SIGKILL.
constexpr long kGraceMarginSeconds = 10;

long ceil_seconds(milliseconds d) {
  return static_cast<long>((d.count() + 999) / 1000);
}

// The ScaledObject's HPA behaviour: the policies of common/scaling_policy.hpp, which the local
// autoscaler applies too, with the scale-down stabilization window from the cooldown.
json::object hpa_behavior(const manifest::Scaling& scaling) {
  auto rules = [](const auto& policies, long window_seconds) {
    json::array list;
    for (const scaling::Policy& p : policies)
      list.push_back(json::object{{"type", scaling::label(p.type)},
                                  {"value", p.value},
                                  {"periodSeconds", p.period.count()}});
    return json::object{{"stabilizationWindowSeconds", window_seconds},
                        {"selectPolicy", scaling::kSelectPolicy},
                        {"policies", std::move(list)}};
  };
  return json::object{
      {"scaleUp", rules(scaling::kScaleUpPolicies, scaling::kScaleUpStabilizationWindow.count())},
      {"scaleDown",
       rules(scaling::kScaleDownPolicies,
             ceil_seconds(scaling::scale_down_stabilization_window(scaling.cooldown_period)))}};
}

// The shortest terminationGracePeriodSeconds of an actor's pod: a replica asked to stop (a
// scale-down may pick one that is busy, a rollout stops them all) may have just started a
// message, which can take up to the processing timeout, and the sidecar drains for up to
// gracefulShutdown; then it needs kGraceMarginSeconds to nack what is left and exit. A shorter
// grace lets the kubelet SIGKILL the pod in the middle of a message.
long minimum_grace_seconds(const manifest::Actor& a) {
  return ceil_seconds(std::max(a.timeout.processing, a.timeout.graceful_shutdown)) +
         kGraceMarginSeconds;
}

// The pod's terminationGracePeriodSeconds: the manifest's, when it sets one that keeps the rule
// above, else the minimum. A shorter or non-integer value is an error naming the field.
Result<json::value> termination_grace(const manifest::Actor& a, const json::object& pod_extra,
                                      const std::string& where) {
  const long minimum = minimum_grace_seconds(a);
  const json::value* given = pod_extra.if_contains("terminationGracePeriodSeconds");
  if (given == nullptr) return json::value(minimum);
  const std::string field = where + ": spec.workload.template.spec.terminationGracePeriodSeconds";
  if (!given->is_int64() && !given->is_uint64()) {
    return Error{
        fmt::format("{}: {} is not a whole number of seconds", field, json::serialize(*given))};
  }
  const std::int64_t seconds =
      given->is_int64() ? given->as_int64() : static_cast<std::int64_t>(given->as_uint64());
  if (seconds < minimum) {
    return Error{fmt::format(
        "{}: {} is shorter than the longest a stopping replica may need: max(spec.timeout."
        "processing {}, spec.timeout.gracefulShutdown {}) + {}s for the sidecar to nack and exit "
        "= {}; the kubelet would kill a replica that is scaled down or rolled while it processes "
        "a message. Use at least {}, leave the field out (Asya then sets {}), or lower the "
        "timeouts",
        field, seconds, format_duration(a.timeout.processing),
        format_duration(a.timeout.graceful_shutdown), kGraceMarginSeconds, minimum, minimum,
        minimum)};
  }
  return *given;
}

json::object env(std::string_view name, std::string_view value) {
  return {{"name", name}, {"value", value}};
}

json::object secret_env(std::string_view name, std::string_view secret, std::string_view key,
                        bool optional = false) {
  json::object ref{{"name", secret}, {"key", key}};
  if (optional) ref["optional"] = true;
  return {{"name", name}, {"valueFrom", {{"secretKeyRef", std::move(ref)}}}};
}

json::object metadata(std::string_view name, const RenderOptions& o, json::object labels) {
  json::object m{{"name", name}};
  if (!o.namespace_name.empty()) m["namespace"] = o.namespace_name;
  m["labels"] = std::move(labels);
  return m;
}

json::object labels_for(std::string_view name, std::string_view component, const RenderOptions& o) {
  return {{"app.kubernetes.io/name", name},
          {"app.kubernetes.io/component", component},
          {"app.kubernetes.io/part-of", "asya"},
          {"app.kubernetes.io/managed-by", o.managed_by},
          {"asya.sh/actor", name}};
}

json::object object(std::string_view api_version, std::string_view kind, json::object meta) {
  return {{"apiVersion", api_version}, {"kind", kind}, {"metadata", std::move(meta)}};
}

// The rendered form of an environment: {name, value}, or {name, valueFrom: {secretKeyRef}}.
json::object env_entry(const manifest::EnvironmentVariable& var) {
  if (const auto* ref = var.secret())
    return secret_env(var.name, ref->secret, ref->key, ref->optional);
  return env(var.name, *var.literal());
}

json::array env_array(const manifest::Environment& vars) {
  json::array out;
  for (const auto& var : vars) out.push_back(env_entry(var));
  return out;
}

// How the broker is reached, after ASYA_TRANSPORT and ASYA_QUEUE_PREFIX (sidecars, gateway).
manifest::Environment broker_settings(std::string_view transport, const RenderOptions& o) {
  manifest::Environment out;
  auto from_secret = [&](std::string name, const std::string& secret, const std::string& key) {
    out.push_back({std::move(name), manifest::SecretKeyRef{secret, key}});
  };
  if (transport == "rabbitmq") {
    from_secret("ASYA_RABBITMQ_URL", o.rabbitmq_secret, o.rabbitmq_secret_key);
    if (!o.rabbitmq_exchange.empty())
      out.push_back({"ASYA_RABBITMQ_EXCHANGE", o.rabbitmq_exchange});
  } else if (transport == "sqs") {
    out.push_back({"AWS_REGION", o.sqs_region});
    if (!o.sqs_endpoint.empty()) out.push_back({"ASYA_SQS_ENDPOINT", o.sqs_endpoint});
    if (!o.sqs_pod_identity) {
      from_secret("AWS_ACCESS_KEY_ID", o.sqs_secret, "AWS_ACCESS_KEY_ID");
      from_secret("AWS_SECRET_ACCESS_KEY", o.sqs_secret, "AWS_SECRET_ACCESS_KEY");
    }
  }
  return out;
}

// Variables every process talking to the transport needs (the gateway; sidecars get the same
// from manifest::sidecar_environment).
json::array transport_env(std::string_view transport, const RenderOptions& o) {
  json::array out;
  out.push_back(env("ASYA_TRANSPORT", transport));
  out.push_back(env("ASYA_QUEUE_PREFIX", o.queue_prefix));
  for (const auto& var : broker_settings(transport, o)) out.push_back(env_entry(var));
  return out;
}

void append(json::array& to, const json::array& from) {
  for (const auto& v : from) to.push_back(v);
}

json::object http_probe(std::string_view path, std::string_view port, int period,
                        int failure_threshold) {
  return {{"httpGet", {{"path", path}, {"port", port}}},
          {"periodSeconds", period},
          {"failureThreshold", failure_threshold}};
}

json::object resources(std::string_view cpu, std::string_view memory) {
  return {{"requests", {{"cpu", cpu}, {"memory", memory}}}};
}

std::string effective_gateway_url(const RenderOptions& o, bool gateway_rendered) {
  if (!o.gateway_url.empty()) return o.gateway_url;
  return gateway_rendered ? fmt::format("http://{}:{}", kGatewayName, kGatewayPort) : "";
}

// ASYA_GATEWAY_INTERNAL_TOKEN of a reporting sidecar or the gateway, from the tokens' Secret.
// Optional: without the Secret the gateway has no internal token and the sidecars send none.
manifest::SecretKeyRef internal_token_ref(const RenderOptions& o) {
  return {o.gateway_token_secret, "internal-token", true};
}

json::object internal_token_env(const RenderOptions& o) {
  return env_entry({"ASYA_GATEWAY_INTERNAL_TOKEN", internal_token_ref(o)});
}

// What Kubernetes decides for every sidecar: the cluster's broker, the shared socket directory,
// the metrics port, the log level and the gateway with its token from the tokens' Secret.
manifest::SidecarEnvironmentOptions sidecar_options(std::string_view transport,
                                                    const RenderOptions& o,
                                                    const std::string& gateway_url) {
  manifest::SidecarEnvironmentOptions out;
  out.transport = std::string(transport);
  out.queue_prefix = o.queue_prefix;
  out.transport_settings = broker_settings(transport, o);
  out.socket_dir = kSocketDir;
  out.metrics_addr = fmt::format(":{}", o.metrics_port);
  out.log_level = o.log_level;
  out.gateway_url = gateway_url;
  out.gateway_internal_token = internal_token_ref(o);
  return out;
}

// The TCP port of an http(s) URL: the explicit one, else 80 or 443 by scheme.
int url_port(std::string_view url) {
  const bool https = url.starts_with("https://");
  auto rest = url.substr(url.find("://") == std::string_view::npos ? 0 : url.find("://") + 3);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    int port = 0;
    auto digits = rest.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536)
      return port;
  }
  return https ? 443 : 80;
}

json::array tcp_ports(std::initializer_list<int> ports) {
  json::array out;
  for (int port : ports) out.push_back({{"protocol", "TCP"}, {"port", port}});
  return out;
}

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

Result<json::object> parse_mapping(const std::string& yaml, const std::string& what) {
  auto parsed = from_yaml(yaml, what);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return Error{what + ": expected a mapping"};
  return std::move(parsed->get_object());
}

json::array strings(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& s : items) out.push_back(json::string(s));
  return out;
}

// A container as written in the manifest (name, image, command, args, env, workingDir and the
// Kubernetes-only fields).
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
// integer or boolean (`tier: 1`) is kept as its text, anything else must be quoted.
Result<json::object> pod_metadata(const manifest::Actor& a, const json::object& labels,
                                  const std::string& where) {
  json::object out;
  if (a.pod_metadata_yaml.empty()) {
    out["labels"] = labels;
    return out;
  }
  const std::string field = where + ": spec.workload.template.metadata";
  auto parsed = parse_mapping(a.pod_metadata_yaml, field);
  if (!parsed) return parsed.error();
  for (const char* key : {"labels", "annotations"}) {
    if (!parsed->contains(key)) continue;
    const auto& value = parsed->at(key);
    if (!value.is_object()) {
      return Error{fmt::format("{}.{}: expected a mapping of strings", field, key)};
    }
    json::object strings_only;
    for (const auto& [name, v] : value.as_object()) {
      if (v.is_string()) {
        strings_only[name] = v;
      } else if (v.is_int64() || v.is_uint64()) {
        strings_only[name] = json::serialize(v);
      } else if (v.is_bool()) {
        strings_only[name] = v.as_bool() ? "true" : "false";
      } else {
        return Error{fmt::format("{}.{}.{}: {} is not a string; quote the value", field, key,
                                 std::string_view(name), json::serialize(v))};
      }
    }
    out[key] = std::move(strings_only);
  }
  // The user's labels are added to Asya's (a user value wins), but the selector label must stay
  // the actor's name.
  json::object merged = labels;
  if (out.contains("labels")) {
    for (const auto& [name, v] : out["labels"].as_object()) {
      if (name == "asya.sh/actor" && v != labels.at("asya.sh/actor")) {
        return Error{fmt::format(
            "{}.labels.asya.sh/actor: \"{}\" differs from the actor's name \"{}\"; Asya selects "
            "the actor's pods by this label: remove it",
            field, std::string_view(v.as_string()), a.name)};
      }
      merged[name] = v;
    }
  }
  json::object ordered{{"labels", std::move(merged)}};
  if (out.contains("annotations")) ordered["annotations"] = std::move(out["annotations"]);
  return ordered;
}

}  // namespace

std::vector<json::object> Rendered::all() const {
  std::vector<json::object> out;
  // ConfigMaps and ServiceAccounts before the workloads that use them.
  for (const auto& o : shared) {
    if (o.at("kind") != "Deployment" && o.at("kind") != "Service") out.push_back(o);
  }
  for (const auto& a : actors) out.insert(out.end(), a.objects.begin(), a.objects.end());
  for (const auto& o : shared) {
    if (o.at("kind") == "Deployment" || o.at("kind") == "Service") out.push_back(o);
  }
  return out;
}

json::object runtime_config_map(const RenderOptions& o) {
  auto cm = object("v1", "ConfigMap",
                   metadata(kRuntimeConfigMap, o,
                            {{"app.kubernetes.io/name", kRuntimeConfigMap},
                             {"app.kubernetes.io/component", "runtime"},
                             {"app.kubernetes.io/part-of", "asya"},
                             {"app.kubernetes.io/managed-by", o.managed_by}}));
  cm["data"] = {{"asya_runtime.py", python_runtime_source()}};
  return cm;
}

namespace {

// spec.isolation.network none on Kubernetes: the runtime container shares the pod's network
// namespace with the sidecar, so what can be enforced is the pod's egress: DNS (kube-dns), the
// broker's ports (at broker_cidrs / pods with broker_pod_labels when given) and the gateway.
// Ingress is left alone (probes and metrics scraping).
json::object egress_policy(const manifest::Actor& a, std::string_view transport,
                           const RenderOptions& o, const std::string& gateway_url,
                           const json::object& labels) {
  json::array egress;
  egress.push_back(
      {{"to", json::array{{{"namespaceSelector", json::object{}},
                           {"podSelector", {{"matchLabels", {{"k8s-app", "kube-dns"}}}}}}}},
       {"ports",
        json::array{{{"protocol", "UDP"}, {"port", 53}}, {{"protocol", "TCP"}, {"port", 53}}}}});
  json::object broker;
  if (transport == "rabbitmq") {
    broker["ports"] = tcp_ports({5672, 5671});
  } else {
    int endpoint_port = o.sqs_endpoint.empty() ? 443 : url_port(o.sqs_endpoint);
    broker["ports"] = endpoint_port == 443 ? tcp_ports({443}) : tcp_ports({443, endpoint_port});
  }
  json::array peers;
  for (const auto& cidr : o.broker_cidrs)
    peers.push_back(json::object{{"ipBlock", {{"cidr", cidr}}}});
  if (!o.broker_pod_labels.empty()) {
    json::object match;
    for (const auto& [key, value] : o.broker_pod_labels) match[key] = value;
    peers.push_back(
        {{"namespaceSelector", json::object{}}, {"podSelector", {{"matchLabels", match}}}});
  }
  if (!peers.empty()) broker["to"] = std::move(peers);
  egress.push_back(std::move(broker));
  if (!gateway_url.empty()) {
    if (o.gateway_url.empty()) {
      // The rendered gateway: its pods, on their port.
      egress.push_back(
          {{"to", json::array{{{"podSelector",
                                {{"matchLabels", {{"app.kubernetes.io/name", kGatewayName}}}}}}}},
           {"ports", tcp_ports({kGatewayPort})}});
    } else {
      egress.push_back(json::object{{"ports", tcp_ports({url_port(gateway_url)})}});
    }
  }
  auto policy =
      object("networking.k8s.io/v1", "NetworkPolicy", metadata(a.name + "-egress", o, labels));
  policy["spec"] = {{"podSelector", {{"matchLabels", {{"asya.sh/actor", a.name}}}}},
                    {"policyTypes", json::array{"Egress"}},
                    {"egress", std::move(egress)}};
  return policy;
}

// Secret asya-gateway-token with the tokens given in the options (stringData: the API server
// encodes it).
json::object gateway_token_secret(const RenderOptions& o) {
  json::object labels{{"app.kubernetes.io/name", kGatewayName},
                      {"app.kubernetes.io/component", "gateway"},
                      {"app.kubernetes.io/part-of", "asya"},
                      {"app.kubernetes.io/managed-by", o.managed_by}};
  auto secret = object("v1", "Secret", metadata(o.gateway_token_secret, o, std::move(labels)));
  secret["type"] = "Opaque";
  json::object data{{"internal-token", o.gateway_internal_token}};
  if (!o.gateway_client_token.empty()) data["token"] = o.gateway_client_token;
  secret["stringData"] = std::move(data);
  return secret;
}

Result<ActorObjects> render_one(const manifest::Actor& a, const RenderOptions& o,
                                const std::string& gateway_url) {
  const std::string where = fmt::format("{}:{}: actor {}", a.file, a.line, a.name);
  ActorObjects result;
  result.actor = a.name;
  result.queue = o.queue_prefix + a.name;
  result.transport = a.transport;
  if (result.transport == "sqlite" && !o.transport.empty()) result.transport = o.transport;
  if (result.transport != "rabbitmq" && result.transport != "sqs") {
    return Error{fmt::format(
        "{}: spec.transport \"{}\" only works on one machine; on Kubernetes use rabbitmq or sqs "
        "(set spec.transport, or pass --transport rabbitmq|sqs to render every sqlite actor with "
        "the cluster's transport)",
        where, result.transport)};
  }
  static const std::set<std::string> kReserved{kGatewayName, kEndActorAccount, kRuntimeConfigMap,
                                               "asya-operator"};
  if (kReserved.count(a.name)) {
    return Error{
        fmt::format("{}: metadata.name \"{}\" clashes with an object Asya creates; "
                    "rename the actor (reserved: asya-gateway, asya-end-actor, "
                    "asya-runtime, asya-operator)",
                    where, a.name)};
  }

  const json::object labels = labels_for(a.name, "actor", o);
  const json::object selector{{"asya.sh/actor", a.name}};

  // Pod-level fields the manifest kept for Kubernetes (volumes, nodeSelector, ...).
  json::object pod_extra;
  if (!a.pod_extra_yaml.empty()) {
    auto parsed = parse_mapping(a.pod_extra_yaml, where + ": spec.workload.template.spec");
    if (!parsed) return parsed.error();
    pod_extra = std::move(*parsed);
  }

  // Containers: the user's, with the runtime one wired to the socket, then the sidecar.
  json::array containers;
  bool needs_runtime_config_map = false;
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
    if (i == a.runtime_container) {
      auto& rc = *container;
      if (c.name.empty()) rc["name"] = manifest::kRuntimeContainerName;
      if (c.command.empty()) {
        // The bundled Python runtime, mounted from ConfigMap asya-runtime.
        needs_runtime_config_map = true;
        rc["command"] = json::array{"python3", fmt::format("{}/asya_runtime.py", kRuntimeMountDir)};
        add_mount(rc,
                  {{"name", kRuntimeVolume}, {"mountPath", kRuntimeMountDir}, {"readOnly", true}});
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
    }
    containers.push_back(std::move(*container));
  }
  containers.push_back(sidecar_container(a, result.transport, o, gateway_url));

  json::array volumes;
  if (pod_extra.contains("volumes")) volumes = pod_extra["volumes"].as_array();
  volumes.push_back({{"name", kSocketVolume}, {"emptyDir", json::object{}}});
  if (needs_runtime_config_map) {
    volumes.push_back({{"name", kRuntimeVolume},
                       {"configMap", {{"name", kRuntimeConfigMap}, {"defaultMode", 0444}}}});
  }

  json::object pod_spec;
  bool own_service_account = !pod_extra.contains("serviceAccountName");
  pod_spec["serviceAccountName"] =
      own_service_account ? json::value(a.name) : pod_extra["serviceAccountName"];
  auto grace = termination_grace(a, pod_extra, where);
  if (!grace) return grace.error();
  pod_spec["terminationGracePeriodSeconds"] = std::move(*grace);
  pod_spec["containers"] = std::move(containers);
  pod_spec["volumes"] = std::move(volumes);
  for (auto& [key, value] : pod_extra) {
    if (!pod_spec.contains(key)) pod_spec[key] = value;
  }

  if (own_service_account) {
    result.objects.push_back(object("v1", "ServiceAccount", metadata(a.name, o, labels)));
  }
  const bool stateful = a.workload_kind == "StatefulSet";
  auto template_metadata = pod_metadata(a, labels, where);
  if (!template_metadata) return template_metadata.error();
  json::object spec;
  if (!a.scaling.enabled) spec["replicas"] = a.replicas;
  spec["selector"] = {{"matchLabels", selector}};
  if (stateful) {
    spec["serviceName"] = a.name;
    spec["podManagementPolicy"] = "Parallel";
  }
  spec["template"] = {{"metadata", std::move(*template_metadata)}, {"spec", std::move(pod_spec)}};
  if (stateful) {
    auto service = object("v1", "Service", metadata(a.name, o, labels));
    service["spec"] = {{"clusterIP", "None"},
                       {"selector", selector},
                       {"ports", json::array{{{"name", "metrics"},
                                              {"port", o.metrics_port},
                                              {"targetPort", "metrics"},
                                              {"protocol", "TCP"}}}}};
    result.objects.push_back(std::move(service));
  }
  auto workload =
      object("apps/v1", stateful ? "StatefulSet" : "Deployment", metadata(a.name, o, labels));
  workload["spec"] = std::move(spec);
  result.objects.push_back(std::move(workload));
  if (a.isolation.network == manifest::RuntimeNetwork::kNone) {
    result.objects.push_back(egress_policy(a, result.transport, o, gateway_url, labels));
  }

  if (a.scaling.enabled) {
    const std::string auth_name = a.name + "-broker";
    auto auth = object("keda.sh/v1alpha1", "TriggerAuthentication", metadata(auth_name, o, labels));
    json::object trigger;
    if (result.transport == "rabbitmq") {
      // The management API (protocol http) counts ready + unacknowledged messages; over AMQP
      // KEDA sees only the ready ones, so a replica busy with the last message looks idle and
      // is scaled down (or to zero) under it. Its URL, with credentials and vhost, comes from
      // the broker Secret like the AMQP URL.
      auth["spec"] = {
          {"secretTargetRef", json::array{{{"parameter", "host"},
                                           {"name", o.rabbitmq_secret},
                                           {"key", o.rabbitmq_management_secret_key}}}}};
      trigger = {{"type", "rabbitmq"},
                 {"metadata",
                  {{"protocol", "http"},
                   {"queueName", result.queue},
                   {"mode", "QueueLength"},
                   {"value", std::to_string(a.scaling.queue_length)},
                   {"activationValue", std::to_string(a.scaling.activation_queue_length)}}},
                 {"authenticationRef", {{"name", auth_name}}}};
    } else {
      if (o.sqs_pod_identity) {
        auth["spec"] = {{"podIdentity", {{"provider", "aws"}}}};
      } else {
        auth["spec"] = {{"secretTargetRef", json::array{{{"parameter", "awsAccessKeyID"},
                                                         {"name", o.sqs_secret},
                                                         {"key", "AWS_ACCESS_KEY_ID"}},
                                                        {{"parameter", "awsSecretAccessKey"},
                                                         {"name", o.sqs_secret},
                                                         {"key", "AWS_SECRET_ACCESS_KEY"}}}}};
      }
      json::object meta{
          {"queueURL", o.sqs_queue_url_base.empty()
                           ? result.queue
                           : fmt::format("{}/{}", o.sqs_queue_url_base, result.queue)},
          {"queueLength", std::to_string(a.scaling.queue_length)},
          {"activationQueueLength", std::to_string(a.scaling.activation_queue_length)},
          {"awsRegion", o.sqs_region},
          {"scaleOnInFlight", "true"}};
      if (!o.sqs_endpoint.empty()) meta["awsEndpoint"] = o.sqs_endpoint;
      trigger = {{"type", "aws-sqs-queue"},
                 {"metadata", std::move(meta)},
                 {"authenticationRef", {{"name", auth_name}}}};
    }
    result.objects.push_back(std::move(auth));

    const long cooldown = ceil_seconds(a.scaling.cooldown_period);
    auto scaled = object("keda.sh/v1alpha1", "ScaledObject", metadata(a.name, o, labels));
    scaled["spec"] = {
        {"scaleTargetRef",
         {{"apiVersion", "apps/v1"},
          {"kind", stateful ? "StatefulSet" : "Deployment"},
          {"name", a.name}}},
        {"pollingInterval", std::max(1L, ceil_seconds(a.scaling.polling_interval))},
        {"cooldownPeriod", cooldown},
        {"minReplicaCount", a.scaling.min_replicas},
        {"maxReplicaCount", a.scaling.max_replicas},
        {"advanced", {{"horizontalPodAutoscalerConfig", {{"behavior", hpa_behavior(a.scaling)}}}}},
        {"triggers", json::array{std::move(trigger)}}};
    result.objects.push_back(std::move(scaled));
  }
  return result;
}

bool uses_python_runtime(const manifest::Actor& a) {
  return a.runtime().command.empty();
}

json::object end_actor_deployment(std::string_view name, std::string_view transport,
                                  const RenderOptions& o, const std::string& gateway_url) {
  const json::object labels = labels_for(name, "end-actor", o);
  manifest::Actor end_actor;
  end_actor.name = std::string(name);
  auto options = sidecar_options(transport, o, gateway_url);
  options.end_actor = true;
  options.result_store = o.result_store;
  json::array e = env_array(manifest::sidecar_environment(end_actor, options));
  json::object container = sidecar_container_base(o, std::move(e));
  json::array volumes;
  if (o.result_store.rfind("file://", 0) == 0) {
    // A file store lives on an emptyDir here; use s3:// for results that outlive the pod.
    std::string dir = o.result_store.substr(7);
    container["volumeMounts"] = json::array{{{"name", "results"}, {"mountPath", dir}}};
    volumes.push_back({{"name", "results"}, {"emptyDir", json::object{}}});
  }
  json::object pod{{"serviceAccountName", kEndActorAccount},
                   {"terminationGracePeriodSeconds", 30 + kGraceMarginSeconds},
                   {"containers", json::array{std::move(container)}}};
  if (!volumes.empty()) pod["volumes"] = std::move(volumes);
  auto d = object("apps/v1", "Deployment", metadata(name, o, labels));
  d["spec"] = {{"replicas", 1},
               {"selector", {{"matchLabels", {{"asya.sh/actor", name}}}}},
               {"template", {{"metadata", {{"labels", labels}}}, {"spec", std::move(pod)}}}};
  return d;
}

json::array gateway_objects(std::string_view transport, const RenderOptions& o,
                            const GatewayRoutes& routes) {
  json::object labels{{"app.kubernetes.io/name", kGatewayName},
                      {"app.kubernetes.io/component", "gateway"},
                      {"app.kubernetes.io/part-of", "asya"},
                      {"app.kubernetes.io/managed-by", o.managed_by}};
  const json::object selector{{"app.kubernetes.io/name", kGatewayName}};
  json::array out;
  out.push_back(object("v1", "ServiceAccount", metadata(kGatewayName, o, labels)));
  auto cm = object("v1", "ConfigMap", metadata("asya-gateway-routes", o, labels));
  cm["data"] = {{"routes.yaml", routes.text}};
  out.push_back(std::move(cm));

  json::array e;
  e.push_back(env("ASYA_CONFIG_PATH", "/etc/asya/gateway/routes.yaml"));
  e.push_back(env("ASYA_GATEWAY_HOST", "0.0.0.0"));
  e.push_back(env("ASYA_GATEWAY_PORT", std::to_string(kGatewayPort)));
  e.push_back(env("ASYA_GATEWAY_DB", "/var/lib/asya/gateway.db"));
  e.push_back(secret_env("ASYA_DATABASE_URL", "asya-gateway-db", "url", true));
  append(e, transport_env(transport, o));
  e.push_back(env("ASYA_LOG_LEVEL", o.log_level));
  e.push_back(secret_env("ASYA_GATEWAY_TOKEN", o.gateway_token_secret, "token", true));
  e.push_back(internal_token_env(o));
  json::object container{
      {"name", "gateway"},
      {"image", o.gateway_image},
      {"command", json::array{"asya-gateway"}},
      {"env", std::move(e)},
      {"ports",
       json::array{{{"name", "http"}, {"containerPort", kGatewayPort}, {"protocol", "TCP"}}}},
      {"readinessProbe", http_probe("/readyz", "http", 5, 3)},
      {"livenessProbe", http_probe("/healthz", "http", 10, 6)},
      {"resources", resources("50m", "64Mi")},
      {"volumeMounts",
       json::array{{{"name", "routes"}, {"mountPath", "/etc/asya/gateway"}, {"readOnly", true}},
                   {{"name", "state"}, {"mountPath", "/var/lib/asya"}}}}};
  auto d = object("apps/v1", "Deployment", metadata(kGatewayName, o, labels));
  d["spec"] = {{"replicas", 1},
               {"selector", {{"matchLabels", selector}}},
               {"template",
                {{"metadata", {{"labels", labels}}},
                 {"spec",
                  {{"serviceAccountName", kGatewayName},
                   {"containers", json::array{std::move(container)}},
                   {"volumes", json::array{{{"name", "routes"},
                                            {"configMap", {{"name", "asya-gateway-routes"}}}},
                                           {{"name", "state"}, {"emptyDir", json::object{}}}}}}}}}};
  out.push_back(std::move(d));
  auto svc = object("v1", "Service", metadata(kGatewayName, o, labels));
  svc["spec"] = {{"selector", selector},
                 {"ports", json::array{{{"name", "http"},
                                        {"port", kGatewayPort},
                                        {"targetPort", "http"},
                                        {"protocol", "TCP"}}}}};
  out.push_back(std::move(svc));
  return out;
}

}  // namespace

Result<ActorObjects> render_actor(const manifest::Actor& actor, const RenderOptions& options) {
  return render_one(actor, options, effective_gateway_url(options, false));
}

Result<Rendered> render(const std::vector<manifest::Actor>& actors, const RenderOptions& options,
                        const std::optional<GatewayRoutes>& routes) {
  if (!options.transport.empty() && options.transport != "rabbitmq" && options.transport != "sqs") {
    return Error{fmt::format("transport \"{}\" cannot run on Kubernetes; use rabbitmq or sqs",
                             options.transport)};
  }
  if (routes) {
    auto parsed = from_yaml(routes->text, routes->file);
    if (!parsed) return parsed.error();
    if (!parsed->is_object()) return Error{routes->file + ": expected a mapping with tools"};
  }
  const std::string gateway_url = effective_gateway_url(options, routes.has_value());
  Rendered out;
  std::vector<std::string> errors;
  std::set<std::string> transports;
  bool python_runtime = false;
  for (const auto& actor : actors) {
    auto one = render_one(actor, options, gateway_url);
    if (!one) {
      errors.push_back(one.error().message);
      continue;
    }
    transports.insert(one->transport);
    python_runtime = python_runtime || uses_python_runtime(actor);
    out.actors.push_back(std::move(*one));
  }
  if (!errors.empty()) {
    std::string message;
    for (const auto& e : errors) message += (message.empty() ? "" : "\n") + e;
    return Error{message};
  }
  // End actors and the gateway use the cluster transport: the option, else the one every actor
  // shares.
  std::string shared_transport = options.transport;
  if (!shared_transport.empty() && (options.end_actors || routes)) {
    for (const auto& a : out.actors) {
      if (a.transport == shared_transport) continue;
      const auto& actor = *std::find_if(actors.begin(), actors.end(),
                                        [&](const auto& m) { return m.name == a.actor; });
      errors.push_back(fmt::format(
          "{}:{}: actor {}: spec.transport \"{}\" differs from --transport {}; the end actors "
          "and the gateway consume one transport, so this actor's results would never arrive "
          "(use spec.transport sqlite or {}, or render with --no-end-actors --no-gateway)",
          actor.file, actor.line, a.actor, a.transport, shared_transport, shared_transport));
    }
    if (!errors.empty()) {
      std::string message;
      for (const auto& e : errors) message += (message.empty() ? "" : "\n") + e;
      return Error{message};
    }
  }
  if (shared_transport.empty()) {
    if (transports.size() > 1) {
      return Error{
          "actors use different transports (rabbitmq and sqs); the end actors and the "
          "gateway need one: pass --transport"};
    }
    shared_transport = transports.empty() ? "" : *transports.begin();
  }
  if (python_runtime) out.shared.push_back(runtime_config_map(options));
  if (!options.gateway_internal_token.empty()) out.shared.push_back(gateway_token_secret(options));
  if ((options.end_actors || routes) && shared_transport.empty()) {
    return Error{"no actor names a transport; pass --transport rabbitmq|sqs"};
  }
  if (options.end_actors) {
    auto sa = object(
        "v1", "ServiceAccount",
        metadata(kEndActorAccount, options, labels_for(kEndActorAccount, "end-actor", options)));
    sa["metadata"].as_object()["labels"].as_object().erase("asya.sh/actor");
    out.shared.push_back(std::move(sa));
    out.shared.push_back(end_actor_deployment("happy-end", shared_transport, options, gateway_url));
    out.shared.push_back(end_actor_deployment("error-end", shared_transport, options, gateway_url));
  }
  if (routes) {
    for (auto& o : gateway_objects(shared_transport, options, *routes)) {
      out.shared.push_back(std::move(o.as_object()));
    }
  }
  return out;
}

}  // namespace asya::k8s
