#include "k8s/operator/reconciler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <ctime>

#include <boost/json.hpp>

#include "common/env.hpp"
#include "common/rfc3339.hpp"
#include "k8s/yaml_json.hpp"

namespace asya::k8s::op {
namespace json = boost::json;

namespace {

std::string str_at(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string());
}

const json::object& obj_at(const json::object& o, std::string_view key) {
  static const json::object empty;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_object()) return empty;
  return it->value().as_object();
}

std::int64_t int_at(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_int64()) return it->value().as_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().as_uint64());
  return 0;
}

// Kubernetes' metav1.Time: RFC 3339 in whole seconds.
std::string now_rfc3339() {
  return format_rfc3339(std::chrono::system_clock::now(), Rfc3339Precision::kSeconds);
}

bool has_finalizer(const json::object& metadata) {
  auto it = metadata.find("finalizers");
  if (it == metadata.end() || !it->value().is_array()) return false;
  for (const auto& f : it->value().as_array()) {
    if (f.is_string() && f.as_string() == kFinalizer) return true;
  }
  return false;
}

std::string actor_path(std::string_view ns, std::string_view name) {
  return fmt::format("/apis/{}/namespaces/{}/asyncactors/{}", kGroupVersion, ns, name);
}

// "ns/name" for logs and messages.
std::string key_of(const json::object& metadata) {
  return fmt::format("{}/{}", str_at(metadata, "namespace"), str_at(metadata, "name"));
}

Result<json::object> parse_object(const HttpResponse& response, std::string_view what) {
  std::error_code ec;
  auto value = json::parse(response.body, ec);
  if (ec || !value.is_object()) {
    return Error{
        fmt::format("{}: the API server answered HTTP {} with a body that is not a JSON "
                    "object",
                    what, response.status)};
  }
  return std::move(value.as_object());
}

// Merge-patches the AsyncActor's finalizers (optimistic: resourceVersion must still match).
Result<json::object> patch_finalizers(const KubeClient& kube, const json::object& actor,
                                      json::array finalizers) {
  const auto& meta = obj_at(actor, "metadata");
  json::object patch{{"metadata",
                      {{"finalizers", std::move(finalizers)},
                       {"resourceVersion", str_at(meta, "resourceVersion")}}}};
  const std::string path = actor_path(str_at(meta, "namespace"), str_at(meta, "name"));
  auto response =
      kube.request("PATCH", path, json::serialize(patch), "application/merge-patch+json");
  if (!response) return response.error();
  if (response->status != 200) return Error{describe_failure("PATCH", path, *response)};
  return parse_object(*response, "PATCH " + path);
}

enum class DeleteResult { kDeleted, kAbsent, kNotOwned };

// Deletes an object if it exists and is owned by the actor with `owner_uid`.
Result<DeleteResult> delete_owned(const KubeClient& kube, std::string_view api_version,
                                  std::string_view kind, std::string_view ns, std::string_view name,
                                  const std::string& owner_uid) {
  const std::string path = object_path(api_version, kind, ns, name);
  auto got = kube.request("GET", path);
  if (!got) return got.error();
  if (got->status == 404) return DeleteResult::kAbsent;
  if (got->status != 200) return Error{describe_failure("GET", path, *got)};
  auto object = parse_object(*got, "GET " + path);
  if (!object) return object.error();
  bool owned = false;
  const auto& meta = obj_at(*object, "metadata");
  if (auto it = meta.find("ownerReferences"); it != meta.end() && it->value().is_array()) {
    for (const auto& ref : it->value().as_array()) {
      if (ref.is_object() && str_at(ref.as_object(), "uid") == owner_uid) owned = true;
    }
  }
  if (!owned) return DeleteResult::kNotOwned;
  const std::string del_path = path + "?propagationPolicy=Background";
  auto deleted = kube.request("DELETE", del_path);
  if (!deleted) return deleted.error();
  if (deleted->status == 404) return DeleteResult::kAbsent;
  if (deleted->status != 200 && deleted->status != 202) {
    return Error{describe_failure("DELETE", path, *deleted)};
  }
  return DeleteResult::kDeleted;
}

// Deletes the listed objects the actor owns; logs those it does not own.
Status delete_all_owned(const KubeClient& kube, const std::string& owner_key,
                        const std::string& owner_uid, std::string_view ns,
                        const std::vector<std::pair<std::string, std::string>>& kinds_names) {
  for (const auto& [kind, name] : kinds_names) {
    const std::string api_version = kind == "Deployment" || kind == "StatefulSet" ? "apps/v1"
                                    : kind == "Service"                           ? "v1"
                                    : kind == "NetworkPolicy" ? "networking.k8s.io/v1"
                                                              : "keda.sh/v1alpha1";
    auto result = delete_owned(kube, api_version, kind, ns, name, owner_uid);
    if (!result) return result.error();
    if (*result == DeleteResult::kDeleted) {
      spdlog::info("{}: deleted {} {} (no longer in the spec)", owner_key, kind, name);
    } else if (*result == DeleteResult::kNotOwned) {
      spdlog::warn("{}: {} {}/{} exists but is not owned by this AsyncActor; left in place",
                   owner_key, kind, ns, name);
    }
  }
  return Status::Ok();
}

}  // namespace

std::string object_path(std::string_view api_version, std::string_view kind,
                        std::string_view namespace_name, std::string_view name) {
  std::string plural;
  for (char c : kind)
    plural.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  // NetworkPolicy -> networkpolicies; every other kind here just takes an s.
  if (plural.ends_with('y'))
    plural.replace(plural.size() - 1, 1, "ies");
  else
    plural += "s";
  const std::string base = api_version.find('/') == std::string_view::npos
                               ? fmt::format("/api/{}", api_version)
                               : fmt::format("/apis/{}", api_version);
  return fmt::format("{}/namespaces/{}/{}/{}", base, namespace_name, plural, name);
}

Result<manifest::Actor> actor_from_object(const json::object& object) {
  const auto& meta = obj_at(object, "metadata");
  json::object doc{{"apiVersion", kGroupVersion},
                   {"kind", manifest::kKind},
                   {"metadata", {{"name", str_at(meta, "name")}}}};
  if (auto it = object.find("spec"); it != object.end()) doc["spec"] = it->value();
  const std::string file = fmt::format("AsyncActor {}", key_of(meta));
  auto loaded = manifest::load_text(to_yaml(doc), file);
  if (!loaded.ok()) {
    std::string message;
    for (const auto& d : loaded.errors) {
      if (!message.empty()) message += "; ";
      message += d.field.empty() ? d.message : d.field + ": " + d.message;
    }
    return Error{message};
  }
  if (loaded.actors.size() != 1) return Error{"spec: the object does not describe one actor"};
  return std::move(loaded.actors.front());
}

struct Reconciler::Conditions {
  struct Condition {
    std::string status = "Unknown";
    std::string reason;
    std::string message;
  };
  Condition ready, transport, scaling, workload;
  std::string queue;
  std::optional<std::int64_t> replicas;

  void set_all(std::string status, const std::string& reason, const std::string& message) {
    for (auto* c : {&ready, &transport, &scaling, &workload}) *c = {status, reason, message};
  }
};

Reconciler::Reconciler(const KubeClient& kube, OperatorOptions options)
    : kube_(kube), options_(std::move(options)) {
  options_.render.managed_by = std::string(kFieldManager);
}

Reconciler::~Reconciler() {
  for (auto& [name, t] : transports_) t->close();
}

Status Reconciler::ensure_queue(const std::string& transport_name, const std::string& queue) {
  auto it = transports_.find(transport_name);
  if (it == transports_.end()) {
    try {
      auto made = transport::make_transport(transport_name, options_.transport_options);
      it = transports_.emplace(transport_name, std::move(made)).first;
    } catch (const ConfigError& e) {
      return Error{fmt::format("transport {} is not configured: {}", transport_name, e.what())};
    } catch (const std::exception& e) {
      return Error{fmt::format("transport {} could not start: {}", transport_name, e.what())};
    }
  }
  Status status = it->second->ensure_queue(queue);
  if (!status.ok()) {
    // Reconnect on the next attempt: the connection may be what failed.
    it->second->close();
    transports_.erase(it);
  }
  return status;
}

ReconcileResult Reconciler::finalize(const json::object& actor) {
  const auto& meta = obj_at(actor, "metadata");
  const std::string key = key_of(meta);
  if (!has_finalizer(meta)) return {Outcome::kDone, "being deleted; no finalizer of ours"};
  const std::string ns = str_at(meta, "namespace");
  const std::string name = str_at(meta, "name");
  // KEDA first, so it stops scaling the workload that garbage collection is about to remove.
  Status cleaned =
      delete_all_owned(kube_, key, str_at(meta, "uid"), ns,
                       {{"ScaledObject", name}, {"TriggerAuthentication", name + "-broker"}});
  if (!cleaned.ok())
    return {Outcome::kRetry, "cleanup before deletion failed: " + cleaned.message()};
  json::array remaining;
  for (const auto& f : meta.at("finalizers").as_array()) {
    if (!(f.is_string() && f.as_string() == kFinalizer)) remaining.push_back(f);
  }
  auto patched = patch_finalizers(kube_, actor, std::move(remaining));
  if (!patched) {
    if (patched.error().message.find("HTTP 404") != std::string::npos) {
      return {Outcome::kDone, "already deleted"};
    }
    return {Outcome::kRetry, "removing the finalizer failed: " + patched.error().message};
  }
  return {Outcome::kDone, "finalizer removed; Kubernetes deletes the owned objects"};
}

ReconcileResult Reconciler::reconcile(const json::object& input) {
  const auto& in_meta = obj_at(input, "metadata");
  const std::string key = key_of(in_meta);
  if (in_meta.contains("deletionTimestamp")) return finalize(input);

  json::object actor = input;
  if (!has_finalizer(in_meta)) {
    json::array finalizers;
    if (auto it = in_meta.find("finalizers"); it != in_meta.end() && it->value().is_array()) {
      finalizers = it->value().as_array();
    }
    finalizers.push_back(json::string(kFinalizer));
    auto patched = patch_finalizers(kube_, input, std::move(finalizers));
    if (!patched)
      return {Outcome::kRetry, "adding the finalizer failed: " + patched.error().message};
    actor = std::move(*patched);
  }
  const auto& meta = obj_at(actor, "metadata");
  const std::string ns = str_at(meta, "namespace");
  const std::string name = str_at(meta, "name");
  const std::string uid = str_at(meta, "uid");

  Conditions c;
  auto fail = [&](Outcome outcome, const std::string& summary) -> ReconcileResult {
    Status written = write_status(actor, c);
    if (!written.ok())
      return {Outcome::kRetry, summary + "; writing status failed: " + written.message()};
    return {outcome, summary};
  };

  // 3. The manifest model.
  auto model = actor_from_object(actor);
  if (!model) {
    c.set_all("Unknown", "InvalidSpec", "not reconciled: the spec is invalid (see Ready)");
    c.ready = {"False", "InvalidSpec", model.error().message};
    return fail(Outcome::kDone, "invalid spec: " + model.error().message);
  }

  // The transport the actor runs on (render_actor makes the same choice).
  std::string transport_name = model->transport;
  if (transport_name == "sqlite" && !options_.render.transport.empty()) {
    transport_name = options_.render.transport;
  }
  c.queue = options_.render.queue_prefix + name;
  if (transport_name != "rabbitmq" && transport_name != "sqs") {
    const std::string message = fmt::format(
        "spec.transport \"{}\" only works on one machine; set spec.transport to rabbitmq or sqs, "
        "or run asya-operator with --transport (ASYA_TRANSPORT) rabbitmq or sqs to run sqlite "
        "actors on the cluster's transport",
        transport_name);
    c.set_all("Unknown", "UnsupportedTransport", "not reconciled: no usable transport");
    c.transport = {"False", "UnsupportedTransport", message};
    c.ready = {"False", "UnsupportedTransport", message};
    c.workload = {"False", "UnsupportedTransport", "nothing applied: " + message};
    return fail(Outcome::kDone, message);
  }

  // 4. Render.
  RenderOptions render_options = options_.render;
  render_options.namespace_name = ns;
  auto rendered = render_actor(*model, render_options);
  if (!rendered) {
    std::string message = rendered.error().message;
    // Drop the "<file>:<line>: " prefix: the line of a generated document means nothing here.
    if (message.rfind(model->file + ":", 0) == 0) {
      auto colon = message.find(": ", model->file.size() + 1);
      if (colon != std::string::npos) message = message.substr(colon + 2);
    }
    c.set_all("Unknown", "RenderFailed", "not reconciled: the actor cannot be rendered");
    c.ready = {"False", "RenderFailed", message};
    return fail(Outcome::kDone, "render failed: " + message);
  }

  // 5. The queue, before any sidecar can start.
  const std::string queue_transport =
      options_.queue_transport.empty() ? transport_name : options_.queue_transport;
  if (queue_transport == "none") {
    c.transport = {"True", "QueueNotManaged",
                   fmt::format("queue {} on {} is not created by the operator "
                               "(--queue-transport none)",
                               rendered->queue, transport_name)};
  } else {
    Status ensured = ensure_queue(queue_transport, rendered->queue);
    if (!ensured.ok()) {
      const std::string message =
          fmt::format("queue {} on {}: {}", rendered->queue, queue_transport, ensured.message());
      c.transport = {"False", "QueueError", message};
      c.ready = {"False", "TransportNotReady", message};
      c.workload = {"False", "WaitingForQueue",
                    fmt::format("not applied until queue {} exists", rendered->queue)};
      c.scaling = {"Unknown", "WaitingForQueue",
                   fmt::format("not applied until queue {} exists", rendered->queue)};
      return fail(Outcome::kRetry, message);
    }
    c.transport = {"True", "QueueReady",
                   fmt::format("queue {} exists on {}", rendered->queue, queue_transport)};
  }

  // 6. Apply.
  std::vector<json::object> objects;
  if (model->runtime().command.empty()) objects.push_back(runtime_config_map(render_options));
  const json::object owner{
      {"apiVersion", kGroupVersion}, {"kind", manifest::kKind},   {"name", name}, {"uid", uid},
      {"controller", true},          {"blockOwnerDeletion", true}};
  for (auto object : rendered->objects) {
    object["metadata"].as_object()["ownerReferences"] = json::array{owner};
    objects.push_back(std::move(object));
  }
  bool scaled = false;
  std::string workload_kind = model->workload_kind;
  for (const auto& object : objects) {
    const std::string kind = str_at(object, "kind");
    const std::string oname = str_at(obj_at(object, "metadata"), "name");
    const std::string path = object_path(str_at(object, "apiVersion"), kind, ns, oname) +
                             fmt::format("?fieldManager={}&force=true", kFieldManager);
    auto response =
        kube_.request("PATCH", path, json::serialize(object), "application/apply-patch+yaml");
    std::string failure;
    if (!response) {
      failure = response.error().message;
    } else if (response->status != 200 && response->status != 201) {
      failure = describe_failure("PATCH", path, *response);
      if (response->status == 404 && str_at(object, "apiVersion").rfind("keda.sh/", 0) == 0) {
        failure += " (is KEDA installed? its CRDs define " + kind + ")";
      }
    }
    const bool keda = kind == "ScaledObject" || kind == "TriggerAuthentication";
    if (!failure.empty()) {
      const std::string message = fmt::format("applying {} {}: {}", kind, oname, failure);
      if (keda) {
        c.scaling = {"False", "ApplyFailed", message};
        c.workload = {"True", "Applied", fmt::format("{} {} applied", workload_kind, name)};
      } else {
        c.workload = {"False", "ApplyFailed", message};
        c.scaling = {"Unknown", "WaitingForWorkload", "not applied: the workload failed"};
      }
      c.ready = {"False", "ApplyFailed", message};
      return fail(Outcome::kRetry, message);
    }
    if (keda) scaled = true;
    if (kind == workload_kind) {
      auto applied = parse_object(*response, "PATCH " + path);
      if (applied) {
        const auto& st = obj_at(*applied, "status");
        if (st.contains("replicas")) c.replicas = int_at(st, "replicas");
      }
    }
  }
  c.workload = {"True", "Applied", fmt::format("{} {} applied", workload_kind, name)};

  // 7. Delete what the spec no longer asks for.
  std::vector<std::pair<std::string, std::string>> stale;
  if (!model->scaling.enabled) {
    stale.push_back({"ScaledObject", name});
    stale.push_back({"TriggerAuthentication", name + "-broker"});
  }
  if (model->isolation.network != manifest::RuntimeNetwork::kNone) {
    stale.push_back({"NetworkPolicy", name + "-egress"});
  }
  if (workload_kind == "StatefulSet") {
    stale.push_back({"Deployment", name});
  } else {
    stale.push_back({"StatefulSet", name});
    stale.push_back({"Service", name});  // the StatefulSet's headless Service
  }
  Status cleaned = delete_all_owned(kube_, key, uid, ns, stale);
  if (!cleaned.ok()) {
    c.ready = {"False", "CleanupFailed", cleaned.message()};
    c.scaling = model->scaling.enabled
                    ? Conditions::Condition{"True", "ScaledObjectApplied", "ScaledObject applied"}
                    : Conditions::Condition{"Unknown", "CleanupFailed", cleaned.message()};
    return fail(Outcome::kRetry, "deleting stale objects failed: " + cleaned.message());
  }
  if (model->scaling.enabled && scaled) {
    c.scaling = {
        "True", "ScaledObjectApplied",
        fmt::format("KEDA scales {} between {} and {} replicas on queue {}", name,
                    model->scaling.min_replicas, model->scaling.max_replicas, rendered->queue)};
  } else {
    c.scaling = {"True", "ScalingDisabled",
                 fmt::format("scaling.enabled is false: {} fixed replicas", model->replicas)};
  }
  c.ready = {"True", "Reconciled",
             fmt::format("{} {} consumes queue {} on {}", workload_kind, name, rendered->queue,
                         transport_name)};
  Status written = write_status(actor, c);
  if (!written.ok()) return {Outcome::kRetry, "writing status failed: " + written.message()};
  return {Outcome::kDone, c.ready.message};
}

Status Reconciler::write_status(const json::object& actor, const Conditions& c) {
  const auto& meta = obj_at(actor, "metadata");
  const std::int64_t generation = int_at(meta, "generation");
  const auto& old_status = obj_at(actor, "status");
  json::array old_conditions;
  if (auto it = old_status.find("conditions"); it != old_status.end() && it->value().is_array()) {
    old_conditions = it->value().as_array();
  }
  auto previous = [&](std::string_view type) -> const json::object* {
    for (const auto& v : old_conditions) {
      if (v.is_object() && str_at(v.as_object(), "type") == type) return &v.as_object();
    }
    return nullptr;
  };

  bool changed = int_at(old_status, "observedGeneration") != generation ||
                 str_at(old_status, "queue") != c.queue ||
                 (c.replicas.has_value() != old_status.contains("replicas")) ||
                 (c.replicas && int_at(old_status, "replicas") != *c.replicas) ||
                 old_conditions.size() != 4;
  const std::string now = now_rfc3339();
  json::array conditions;
  const std::pair<std::string_view, const Conditions::Condition*> all[] = {
      {"Ready", &c.ready},
      {"TransportReady", &c.transport},
      {"ScalingReady", &c.scaling},
      {"WorkloadReady", &c.workload}};
  for (const auto& [type, cond] : all) {
    const json::object* old = previous(type);
    std::string transition = now;
    if (old && str_at(*old, "status") == cond->status) {
      transition = str_at(*old, "lastTransitionTime");
      if (transition.empty()) transition = now;
    }
    if (!old || str_at(*old, "status") != cond->status || str_at(*old, "reason") != cond->reason ||
        str_at(*old, "message") != cond->message ||
        int_at(*old, "observedGeneration") != generation) {
      changed = true;
    }
    conditions.push_back(json::object{{"type", type},
                                      {"status", cond->status},
                                      {"reason", cond->reason},
                                      {"message", cond->message},
                                      {"lastTransitionTime", transition},
                                      {"observedGeneration", generation}});
  }
  if (!changed) return Status::Ok();

  json::object status{{"observedGeneration", generation},
                      {"queue", c.queue},
                      {"conditions", std::move(conditions)}};
  status["replicas"] = c.replicas ? json::value(*c.replicas) : json::value(nullptr);
  const std::string path = actor_path(str_at(meta, "namespace"), str_at(meta, "name")) + "/status";
  auto response = kube_.request("PATCH", path, json::serialize(json::object{{"status", status}}),
                                "application/merge-patch+json");
  if (!response) return response.error();
  if (response->status != 200) return Error{describe_failure("PATCH", path, *response)};
  spdlog::info("{}: status Ready={} ({}): {}", key_of(meta), c.ready.status, c.ready.reason,
               c.ready.message);
  return Status::Ok();
}

}  // namespace asya::k8s::op
