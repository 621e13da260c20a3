// The KEDA objects of an actor with scaling enabled: TriggerAuthentication <name>-broker (the
// broker's management URL from its Secret, or AWS credentials / pod identity) and ScaledObject
// <name> (a rabbitmq or aws-sqs-queue trigger counting messages in flight, and the HPA behaviour
// of common/scaling_policy.hpp that the local autoscaler applies too). Declared in
// render_parts.hpp.
#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "common/scaling_policy.hpp"
#include "k8s/render_parts.hpp"

namespace asya::k8s::render_detail {
namespace {

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

}  // namespace

std::vector<json::object> scaling_objects(const manifest::Actor& a, const ActorObjects& actor,
                                          const RenderOptions& o, const json::object& labels) {
  const bool stateful = a.workload_kind == "StatefulSet";
  std::vector<json::object> out;
  const std::string auth_name = a.name + "-broker";
  auto auth = object("keda.sh/v1alpha1", "TriggerAuthentication", metadata(auth_name, o, labels));
  json::object trigger;
  if (actor.transport == "rabbitmq") {
    // The management API (protocol http) counts ready + unacknowledged messages; over AMQP
    // KEDA sees only the ready ones, so a replica busy with the last message looks idle and
    // is scaled down (or to zero) under it. Its URL, with credentials and vhost, comes from
    // the broker Secret like the AMQP URL.
    auth["spec"] = {{"secretTargetRef", json::array{{{"parameter", "host"},
                                                     {"name", o.rabbitmq_secret},
                                                     {"key", o.rabbitmq_management_secret_key}}}}};
    trigger = {{"type", "rabbitmq"},
               {"metadata",
                {{"protocol", "http"},
                 {"queueName", actor.queue},
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
    json::object meta{{"queueURL", o.sqs_queue_url_base.empty()
                                       ? actor.queue
                                       : fmt::format("{}/{}", o.sqs_queue_url_base, actor.queue)},
                      {"queueLength", std::to_string(a.scaling.queue_length)},
                      {"activationQueueLength", std::to_string(a.scaling.activation_queue_length)},
                      {"awsRegion", o.sqs_region},
                      {"scaleOnInFlight", "true"}};
    if (!o.sqs_endpoint.empty()) meta["awsEndpoint"] = o.sqs_endpoint;
    trigger = {{"type", "aws-sqs-queue"},
               {"metadata", std::move(meta)},
               {"authenticationRef", {{"name", auth_name}}}};
  }
  out.push_back(std::move(auth));

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
  out.push_back(std::move(scaled));
  return out;
}

}  // namespace asya::k8s::render_detail
