// The objects rendered once per stream, not per actor: ConfigMap asya-runtime (the bundled Python
// runtime), Secret asya-gateway-token, the end actors happy-end and error-end with their
// ServiceAccount, and the gateway (ServiceAccount, routes ConfigMap, Deployment, Service).
// Declared in render_parts.hpp (runtime_config_map in render.hpp).
#include <fmt/format.h>
#include <boost/json.hpp>

#include "k8s/render_parts.hpp"

namespace asya::k8s {

boost::json::object runtime_config_map(const RenderOptions& o) {
  using namespace render_detail;
  auto cm = object("v1", "ConfigMap",
                   metadata(kRuntimeConfigMap, o,
                            {{"app.kubernetes.io/name", kRuntimeConfigMap},
                             {"app.kubernetes.io/component", "runtime"},
                             {"app.kubernetes.io/part-of", "asya"},
                             {"app.kubernetes.io/managed-by", o.managed_by}}));
  cm["data"] = {{"asya_runtime.py", python_runtime_source()}};
  return cm;
}

namespace render_detail {

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

json::object end_actor_service_account(const RenderOptions& o) {
  auto sa = object("v1", "ServiceAccount",
                   metadata(kEndActorAccount, o, labels_for(kEndActorAccount, "end-actor", o)));
  sa["metadata"].as_object()["labels"].as_object().erase("asya.sh/actor");
  return sa;
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
  if (!o.payload_store.empty()) e.push_back(env("ASYA_PAYLOAD_STORE", o.payload_store));
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

}  // namespace render_detail
}  // namespace asya::k8s
