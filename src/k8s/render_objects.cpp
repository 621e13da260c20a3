// The building blocks every render step uses: object metadata and labels, environment entries,
// probes and ports, YAML kept for Kubernetes, and how the rendered processes reach the broker and
// the gateway (broker_settings, sidecar_options). Declared in render_parts.hpp.
#include <charconv>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "k8s/render_parts.hpp"
#include "k8s/yaml_json.hpp"

namespace asya::k8s::render_detail {

long ceil_seconds(std::chrono::milliseconds d) {
  return static_cast<long>((d.count() + 999) / 1000);
}

json::object env(std::string_view name, std::string_view value) {
  return {{"name", name}, {"value", value}};
}

json::object secret_env(std::string_view name, std::string_view secret, std::string_view key,
                        bool optional) {
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

namespace {

// ASYA_GATEWAY_INTERNAL_TOKEN of a reporting sidecar or the gateway, from the tokens' Secret.
// Optional: without the Secret the gateway has no internal token and the sidecars send none.
manifest::SecretKeyRef internal_token_ref(const RenderOptions& o) {
  return {o.gateway_token_secret, "internal-token", true};
}

}  // namespace

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
  if (!o.join_store_secret.empty())
    out.join_store = manifest::SecretKeyRef{o.join_store_secret, "url", false};
  else if (!o.join_store.empty())
    out.join_store = o.join_store;
  out.payload_store = o.payload_store;
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

}  // namespace asya::k8s::render_detail
