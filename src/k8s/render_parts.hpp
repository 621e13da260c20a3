// The named steps of render() and the building blocks they share; internal to src/k8s (the
// public face is render.hpp). Each group below says which file defines it:
//   render.cpp                 render(), render_actor() and render_one(): the order of the steps
//   render_objects.cpp         names Asya reserves, metadata/labels/env/probe builders, how
//                              processes reach the broker and the gateway
//   render_containers.cpp      the pod's containers: the user's, the runtime one wired to the
//                              socket, and the injected asya-sidecar
//   render_workload.cpp        pod spec, pod template metadata, grace period, and the
//                              ServiceAccount / Deployment or StatefulSet (+ headless Service)
//   render_scaling.cpp         KEDA TriggerAuthentication + ScaledObject with the HPA behaviour
//   render_network_policy.cpp  the egress NetworkPolicy of spec.isolation.network none
//   render_shared.cpp          the objects rendered once per stream: runtime ConfigMap, gateway
//                              token Secret, end actors, gateway
// Every function is pure: JSON objects out of the manifest and RenderOptions, in an order that
// keeps the rendered YAML byte for byte what the golden files of tests/k8s hold.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/result.hpp"
#include "k8s/render.hpp"
#include "manifest/manifest.hpp"
#include "manifest/sidecar_environment.hpp"

namespace asya::k8s::render_detail {
namespace json = boost::json;

// --- render_objects.cpp -------------------------------------------------------------------------

inline constexpr const char* kSocketDir = "/var/run/asya";
inline constexpr const char* kSocketVolume = "asya-socket";
inline constexpr const char* kRuntimeVolume = "asya-runtime";
inline constexpr const char* kRuntimeConfigMap = "asya-runtime";
inline constexpr const char* kRuntimeMountDir = "/opt/asya";
inline constexpr const char* kSidecarName = "asya-sidecar";
inline constexpr const char* kGatewayName = "asya-gateway";
inline constexpr const char* kEndActorAccount = "asya-end-actor";
inline constexpr int kGatewayPort = 8080;
// Extra seconds the kubelet waits after the sidecar's own drain deadline, so it can nack the
// unfinished messages and exit before SIGKILL.
inline constexpr long kGraceMarginSeconds = 10;

// Whole seconds, rounded up.
long ceil_seconds(std::chrono::milliseconds d);

// {apiVersion, kind, metadata} of a new object.
json::object object(std::string_view api_version, std::string_view kind, json::object meta);
// {name, namespace (when the options set one), labels}.
json::object metadata(std::string_view name, const RenderOptions& o, json::object labels);
// The app.kubernetes.io labels of an object of `name` plus asya.sh/actor (the pod selector).
json::object labels_for(std::string_view name, std::string_view component, const RenderOptions& o);

json::object env(std::string_view name, std::string_view value);
json::object secret_env(std::string_view name, std::string_view secret, std::string_view key,
                        bool optional = false);
// The rendered form of an environment: {name, value}, or {name, valueFrom: {secretKeyRef}}.
json::object env_entry(const manifest::EnvironmentVariable& var);
json::array env_array(const manifest::Environment& vars);
void append(json::array& to, const json::array& from);

json::object http_probe(std::string_view path, std::string_view port, int period,
                        int failure_threshold);
json::object resources(std::string_view cpu, std::string_view memory);
json::array tcp_ports(std::initializer_list<int> ports);
// The TCP port of an http(s) URL: the explicit one, else 80 or 443 by scheme.
int url_port(std::string_view url);

// A YAML text the manifest kept for Kubernetes, as a JSON object; `what` names it in errors.
Result<json::object> parse_mapping(const std::string& yaml, const std::string& what);
json::array strings(const std::vector<std::string>& items);

// How the broker is reached, after ASYA_TRANSPORT and ASYA_QUEUE_PREFIX (sidecars, gateway).
manifest::Environment broker_settings(std::string_view transport, const RenderOptions& o);
// Variables every process talking to the transport needs (the gateway; sidecars get the same
// from manifest::sidecar_environment).
json::array transport_env(std::string_view transport, const RenderOptions& o);
// ASYA_GATEWAY_URL of the sidecars: the option, else the rendered gateway's Service, else none.
std::string effective_gateway_url(const RenderOptions& o, bool gateway_rendered);
// ASYA_GATEWAY_INTERNAL_TOKEN of a reporting sidecar or the gateway, from the tokens' Secret.
json::object internal_token_env(const RenderOptions& o);
// What Kubernetes decides for every sidecar: the cluster's broker, the shared socket directory,
// the metrics port, the log level and the gateway with its token from the tokens' Secret.
manifest::SidecarEnvironmentOptions sidecar_options(std::string_view transport,
                                                    const RenderOptions& o,
                                                    const std::string& gateway_url);

// --- render_containers.cpp ----------------------------------------------------------------------

// The asya-sidecar container with its environment: image, metrics port, probes, resources.
json::object sidecar_container_base(const RenderOptions& o, json::array env_vars);
// The actor's asya-sidecar: its manifest::sidecar_environment and the socket mount.
json::object sidecar_container(const manifest::Actor& a, std::string_view transport,
                               const RenderOptions& o, const std::string& gateway_url);

struct PodContainers {
  json::array containers;                 // the manifest's, in order, then asya-sidecar
  bool needs_runtime_config_map = false;  // the runtime container runs the bundled Python runtime
};
// Step: the pod's containers. Fails, naming the container, on a missing image, a container named
// asya-sidecar, an undefined $(NAME) or Kubernetes fields that are not a mapping.
Result<PodContainers> pod_containers(const manifest::Actor& a, std::string_view transport,
                                     const RenderOptions& o, const std::string& gateway_url,
                                     const std::string& where);

// --- render_workload.cpp ------------------------------------------------------------------------

struct PodSpec {
  json::object spec;
  bool own_service_account = true;  // no serviceAccountName in the manifest: render one
};
// Step: the pod spec: containers, the socket (and runtime) volumes, the grace period, and the
// manifest's own pod fields. Fails on a bad spec.workload.template.spec.
Result<PodSpec> pod_spec(const manifest::Actor& a, const json::object& pod_extra,
                         PodContainers containers, const std::string& where);

// Step: the actor's ServiceAccount (when it has its own), headless Service (StatefulSet only)
// and its Deployment or StatefulSet, appended to `objects` in apply order.
Status append_workload(const manifest::Actor& a, PodSpec pod, const json::object& labels,
                       const RenderOptions& o, const std::string& where,
                       std::vector<json::object>& objects);

// --- render_scaling.cpp -------------------------------------------------------------------------

// Step (scaling enabled): the KEDA TriggerAuthentication <name>-broker and ScaledObject <name>,
// in that order, for the actor's queue on its transport.
std::vector<json::object> scaling_objects(const manifest::Actor& a, const ActorObjects& actor,
                                          const RenderOptions& o, const json::object& labels);

// --- render_network_policy.cpp ------------------------------------------------------------------

// Step (spec.isolation.network none): NetworkPolicy <name>-egress.
json::object egress_policy(const manifest::Actor& a, std::string_view transport,
                           const RenderOptions& o, const std::string& gateway_url,
                           const json::object& labels);

// --- render_shared.cpp --------------------------------------------------------------------------

// Secret asya-gateway-token with the tokens given in the options.
json::object gateway_token_secret(const RenderOptions& o);
// ServiceAccount asya-end-actor.
json::object end_actor_service_account(const RenderOptions& o);
// Deployment happy-end or error-end: an asya-sidecar alone, in end-actor mode.
json::object end_actor_deployment(std::string_view name, std::string_view transport,
                                  const RenderOptions& o, const std::string& gateway_url);
// ServiceAccount, routes ConfigMap, Deployment and Service of asya-gateway.
json::array gateway_objects(std::string_view transport, const RenderOptions& o,
                            const GatewayRoutes& routes);

}  // namespace asya::k8s::render_detail
