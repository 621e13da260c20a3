// The actor's workload: the pod spec (containers, socket and runtime volumes, a grace period long
// enough for a stopping replica to finish or give back its message, the manifest's own pod
// fields), the pod template's labels and annotations, and the objects that run the pod: its
// ServiceAccount, a Deployment, or a StatefulSet with its headless Service. Declared in
// render_parts.hpp.
#include <algorithm>
#include <cstdint>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "common/env.hpp"
#include "k8s/render_parts.hpp"

namespace asya::k8s::render_detail {
namespace {

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

Result<PodSpec> pod_spec(const manifest::Actor& a, const json::object& pod_extra,
                         PodContainers containers, const std::string& where) {
  json::array volumes;
  if (pod_extra.contains("volumes")) volumes = pod_extra.at("volumes").as_array();
  volumes.push_back({{"name", kSocketVolume}, {"emptyDir", json::object{}}});
  if (containers.needs_runtime_config_map) {
    volumes.push_back({{"name", kRuntimeVolume},
                       {"configMap", {{"name", kRuntimeConfigMap}, {"defaultMode", 0444}}}});
  }

  PodSpec out;
  json::object& spec = out.spec;
  out.own_service_account = !pod_extra.contains("serviceAccountName");
  spec["serviceAccountName"] =
      out.own_service_account ? json::value(a.name) : pod_extra.at("serviceAccountName");
  auto grace = termination_grace(a, pod_extra, where);
  if (!grace) return grace.error();
  spec["terminationGracePeriodSeconds"] = std::move(*grace);
  spec["containers"] = std::move(containers.containers);
  spec["volumes"] = std::move(volumes);
  for (const auto& [key, value] : pod_extra) {
    if (!spec.contains(key)) spec[key] = value;
  }
  return out;
}

Status append_workload(const manifest::Actor& a, PodSpec pod, const json::object& labels,
                       const RenderOptions& o, const std::string& where,
                       std::vector<json::object>& objects) {
  const json::object selector{{"asya.sh/actor", a.name}};
  if (pod.own_service_account) {
    objects.push_back(object("v1", "ServiceAccount", metadata(a.name, o, labels)));
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
  spec["template"] = {{"metadata", std::move(*template_metadata)}, {"spec", std::move(pod.spec)}};
  if (stateful) {
    auto service = object("v1", "Service", metadata(a.name, o, labels));
    service["spec"] = {{"clusterIP", "None"},
                       {"selector", selector},
                       {"ports", json::array{{{"name", "metrics"},
                                              {"port", o.metrics_port},
                                              {"targetPort", "metrics"},
                                              {"protocol", "TCP"}}}}};
    objects.push_back(std::move(service));
  }
  auto workload =
      object("apps/v1", stateful ? "StatefulSet" : "Deployment", metadata(a.name, o, labels));
  workload["spec"] = std::move(spec);
  objects.push_back(std::move(workload));
  return Status::Ok();
}

}  // namespace asya::k8s::render_detail
