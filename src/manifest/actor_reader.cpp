// ActorReader (actor_reader.hpp): an AsyncActor document's apiVersion, metadata and the spec's
// settings (transport, replicas, scaling, timeout, retry, sidecar, isolation); spec.workload is
// read in workload_reader.cpp.
#include "manifest/actor_reader.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/env.hpp"

namespace asya::manifest::detail {

using std::chrono::milliseconds;

std::optional<Actor> ActorReader::actor(const YAML::Node& doc) {
  std::size_t errors_before = errors_.size();
  Actor actor;
  actor.file = file_;
  actor.line = line_of(doc);
  mapping(doc, actor.line, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  if (auto api = doc["apiVersion"]; !api) {
    error(doc, actor.line, "apiVersion", fmt::format("missing; use {}", kApiVersion));
  } else if (!api.IsScalar() || api.Scalar() != kApiVersion) {
    error(api, actor.line, "apiVersion",
          fmt::format("{} is not supported; use {}", show(api), kApiVersion));
  }
  if (auto metadata = doc["metadata"]) {
    read_metadata(metadata, actor.line, actor);
  } else {
    error(doc, actor.line, "metadata.name", "missing; every AsyncActor needs a name");
  }
  if (auto spec = doc["spec"]) {
    read_spec(spec, actor.line, actor);
  } else {
    error(doc, actor.line, "spec",
          "missing; an AsyncActor needs at least spec.workload.template.spec.containers");
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return actor;
}

void ActorReader::read_metadata(const YAML::Node& node, int line, Actor& actor) {
  if (!mapping(node, line, "metadata", {"name", "namespace", "labels", "annotations"})) return;
  auto name_node = node["name"];
  if (!name_node) {
    error(node, line, "metadata.name", "missing; every AsyncActor needs a name");
    return;
  }
  auto name = string(name_node, "metadata.name");
  if (!name) return;
  if (*name == "happy-end" || *name == "error-end") {
    error(name_node, line, "metadata.name",
          fmt::format("\"{}\" is reserved for the end actor that asya starts itself; choose "
                      "another name",
                      *name));
  } else if (!valid_actor_name(*name)) {
    error(name_node, line, "metadata.name",
          fmt::format("\"{}\" is not a valid actor name; use lowercase letters, digits and '-', "
                      "starting and ending with a letter or digit, at most 63 characters",
                      *name));
  }
  actor.name = *name;
}

void ActorReader::read_spec(const YAML::Node& node, int line, Actor& actor) {
  if (!mapping(node, line, "spec",
               {"transport", "replicas", "scaling", "timeout", "retry", "sidecar", "isolation",
                "batching", "workload"}))
    return;
  if (auto transport = node["transport"]) {
    static const std::vector<std::string> kTransports{"sqlite", "rabbitmq", "sqs"};
    auto value = string(transport, "spec.transport");
    if (value && std::find(kTransports.begin(), kTransports.end(), *value) == kTransports.end()) {
      error(transport, line, "spec.transport",
            fmt::format("\"{}\" is not a transport; use one of {}", *value, join(kTransports)));
    } else if (value) {
      actor.transport = *value;
    }
  }
  if (auto replicas = node["replicas"]) {
    if (auto value = integer(replicas, "spec.replicas", 0, kMaxReplicas)) actor.replicas = *value;
  }
  if (auto scaling = node["scaling"]) read_scaling(scaling, line, actor);
  if (auto timeout = node["timeout"]) read_timeout(timeout, line, actor);
  if (auto retry = node["retry"]) read_retry(retry, line, actor);
  if (auto batching = node["batching"]) read_batching(batching, line, actor);
  if (auto sidecar = node["sidecar"]) {
    if (mapping(sidecar, line, "spec.sidecar", {"concurrency", "maxDeliveries"})) {
      if (auto n = sidecar["concurrency"]) {
        if (auto v = integer(n, "spec.sidecar.concurrency", 1, 1024))
          actor.sidecar.concurrency = *v;
      }
      if (auto n = sidecar["maxDeliveries"]) {
        if (auto v = integer(n, "spec.sidecar.maxDeliveries", 1, 1'000'000))
          actor.sidecar.max_deliveries = *v;
      }
    }
  }
  if (auto isolation = node["isolation"]) {
    if (mapping(isolation, line, "spec.isolation", {"network"})) {
      if (auto n = isolation["network"]) {
        static const std::vector<std::string> kNetworks{"default", "none"};
        auto value = string(n, "spec.isolation.network");
        if (value && *value == "none") {
          actor.isolation.network = RuntimeNetwork::kNone;
        } else if (value && *value != "default") {
          error(n, line, "spec.isolation.network",
                fmt::format("\"{}\" is not a network isolation; use one of {} (none: the runtime "
                            "reaches nothing but its socket)",
                            *value, join(kNetworks)));
        }
      }
    }
  }
  if (auto workload = node["workload"]) {
    read_workload(workload, line, actor);
  } else {
    error(node, line, "spec.workload",
          "missing; give spec.workload.template.spec.containers with the runtime container");
  }
}

void ActorReader::read_scaling(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.scaling";
  if (!mapping(node, line, f,
               {"enabled", "minReplicas", "maxReplicas", "queueLength", "pollingInterval",
                "cooldownPeriod", "activationQueueLength"}))
    return;
  Scaling& s = actor.scaling;
  if (auto n = node["enabled"]) {
    if (auto v = boolean(n, f + ".enabled")) s.enabled = *v;
  }
  bool min_ok = false, max_ok = false;
  if (auto n = node["minReplicas"]) {
    if (auto v = integer(n, f + ".minReplicas", 0, kMaxReplicas))
      s.min_replicas = *v, min_ok = true;
  } else {
    min_ok = true;
  }
  if (auto n = node["maxReplicas"]) {
    if (auto v = integer(n, f + ".maxReplicas", 1, kMaxReplicas))
      s.max_replicas = *v, max_ok = true;
  } else {
    max_ok = true;
  }
  if (min_ok && max_ok && s.min_replicas > s.max_replicas) {
    auto at = node["minReplicas"] ? node["minReplicas"] : node;
    error(at, line, f + ".minReplicas",
          fmt::format("{} is greater than maxReplicas ({}); use minReplicas <= maxReplicas",
                      s.min_replicas, s.max_replicas));
  }
  if (auto n = node["queueLength"]) {
    if (auto v = integer(n, f + ".queueLength", 1, 1'000'000)) s.queue_length = *v;
  }
  if (auto n = node["activationQueueLength"]) {
    if (auto v = integer(n, f + ".activationQueueLength", 0, 1'000'000))
      s.activation_queue_length = *v;
  }
  if (auto n = node["pollingInterval"]) {
    if (auto v = duration(n, f + ".pollingInterval", milliseconds(100))) s.polling_interval = *v;
  }
  if (auto n = node["cooldownPeriod"]) {
    if (auto v = duration(n, f + ".cooldownPeriod", milliseconds(0))) s.cooldown_period = *v;
  }
}

void ActorReader::read_timeout(const YAML::Node& node, int line, Actor& actor) {
  if (!mapping(node, line, "spec.timeout", {"processing", "gracefulShutdown"})) return;
  if (auto n = node["processing"]) {
    if (auto v = duration(n, "spec.timeout.processing", milliseconds(1)))
      actor.timeout.processing = *v;
  }
  if (auto n = node["gracefulShutdown"]) {
    if (auto v = duration(n, "spec.timeout.gracefulShutdown", milliseconds(0)))
      actor.timeout.graceful_shutdown = *v;
  }
}

void ActorReader::read_retry(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.retry";
  if (!mapping(node, line, f, {"maxAttempts", "backoff", "backoffMax", "retryOn"})) return;
  Retry& r = actor.retry;
  if (auto n = node["maxAttempts"]) {
    if (auto v = integer(n, f + ".maxAttempts", 1, 1000)) r.max_attempts = *v;
  }
  if (auto n = node["backoff"]) {
    if (auto v = duration(n, f + ".backoff", milliseconds(0))) r.backoff = *v;
  }
  if (auto n = node["backoffMax"]) {
    if (auto v = duration(n, f + ".backoffMax", milliseconds(0))) r.backoff_max = *v;
  }
  if (r.backoff_max < r.backoff) {
    auto at = node["backoffMax"] ? node["backoffMax"] : node;
    error(at, line, f + ".backoffMax",
          fmt::format("{} is shorter than backoff ({}); use backoffMax >= backoff",
                      format_duration(r.backoff_max), format_duration(r.backoff)));
  }
  if (auto n = node["retryOn"]) {
    if (auto list = strings(n, f + ".retryOn")) {
      static const std::vector<std::string> kAllowed{"runtime_timeout", "processing_error"};
      std::vector<std::string> retry_on;
      for (std::size_t i = 0; i < list->size(); ++i) {
        const auto& item = (*list)[i];
        if (std::find(kAllowed.begin(), kAllowed.end(), item) == kAllowed.end()) {
          error(n[i], line, fmt::format("{}.retryOn[{}]", f, i),
                fmt::format("\"{}\" is not a retryable failure; use {}", item, join(kAllowed)));
        } else if (std::find(retry_on.begin(), retry_on.end(), item) == retry_on.end()) {
          retry_on.push_back(item);
        }
      }
      // The sidecar always retries runtime timeouts when attempts remain.
      if (std::find(retry_on.begin(), retry_on.end(), "runtime_timeout") == retry_on.end())
        retry_on.insert(retry_on.begin(), "runtime_timeout");
      r.retry_on = retry_on;
    }
  }
}

}  // namespace asya::manifest::detail
