// render() and render_actor(): per actor, render_one() checks what Kubernetes cannot run and
// puts the named steps of render_parts.hpp together in apply order; render() adds the objects
// shared by the stream (runtime ConfigMap, gateway token Secret, end actors, gateway) and checks
// that the actors agree on one transport.
#include "k8s/render.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "k8s/render_parts.hpp"
#include "k8s/yaml_json.hpp"

namespace asya::k8s {
namespace json = boost::json;
using namespace render_detail;

namespace {

// The actor's identity on the cluster: its queue and effective transport (sqlite becomes the
// cluster's transport). Fails when the actor cannot run on Kubernetes or its name clashes with
// an object Asya creates.
Result<ActorObjects> actor_identity(const manifest::Actor& a, const RenderOptions& o,
                                    const std::string& where) {
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
  return result;
}

// The objects of one actor, in apply order: ServiceAccount, headless Service (StatefulSet),
// Deployment or StatefulSet, egress NetworkPolicy (isolation none), TriggerAuthentication and
// ScaledObject (scaling enabled). Errors come in the order of the steps, naming file:line.
Result<ActorObjects> render_one(const manifest::Actor& a, const RenderOptions& o,
                                const std::string& gateway_url) {
  const std::string where = fmt::format("{}:{}: actor {}", a.file, a.line, a.name);
  auto result = actor_identity(a, o, where);
  if (!result) return result.error();

  // Pod-level fields the manifest kept for Kubernetes (volumes, nodeSelector, ...).
  json::object pod_extra;
  if (!a.pod_extra_yaml.empty()) {
    auto parsed = parse_mapping(a.pod_extra_yaml, where + ": spec.workload.template.spec");
    if (!parsed) return parsed.error();
    pod_extra = std::move(*parsed);
  }
  auto containers = pod_containers(a, result->transport, o, gateway_url, where);
  if (!containers) return containers.error();
  auto pod = pod_spec(a, pod_extra, std::move(*containers), where);
  if (!pod) return pod.error();

  const json::object labels = labels_for(a.name, "actor", o);
  if (auto workload = append_workload(a, std::move(*pod), labels, o, where, result->objects);
      !workload) {
    return workload.error();
  }
  if (a.isolation.network == manifest::RuntimeNetwork::kNone) {
    result->objects.push_back(egress_policy(a, result->transport, o, gateway_url, labels));
  }
  if (a.scaling.enabled) {
    for (auto& scaling : scaling_objects(a, *result, o, labels)) {
      result->objects.push_back(std::move(scaling));
    }
  }
  return result;
}

bool uses_python_runtime(const manifest::Actor& a) {
  return a.runtime().command.empty();
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

Result<ActorObjects> render_actor(const manifest::Actor& actor, const RenderOptions& options) {
  return render_one(actor, options, effective_gateway_url(options, false));
}

Result<Rendered> render(const std::vector<manifest::Actor>& actors, const RenderOptions& options,
                        const std::optional<GatewayRoutes>& routes) {
  if (!options.transport.empty() && options.transport != "rabbitmq" && options.transport != "sqs") {
    return Error{fmt::format("transport \"{}\" cannot run on Kubernetes; use rabbitmq or sqs",
                             options.transport)};
  }
  if (!options.payload_store.empty() && !options.payload_store.starts_with("s3://")) {
    return Error{
        fmt::format("--payload-store \"{}\" cannot be shared by the pods of a cluster: use "
                    "s3://bucket/prefix (every sidecar and the gateway must reach the same store)",
                    options.payload_store)};
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
    out.shared.push_back(end_actor_service_account(options));
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
