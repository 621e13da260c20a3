#include "manifest/manifest.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/env.hpp"
#include "common/yaml_limits.hpp"

namespace asya::manifest {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kMaxReplicas = 1000;

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// How a bad value is shown in a message: a scalar in quotes, or its shape.
std::string show(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return fmt::format("\"{}\"", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "nothing (null)";
    default:
      return "nothing";
  }
}

// Emits `node` keeping quoted scalars quoted ("true" in a nodeSelector must stay a string).
void emit(const YAML::Node& node, YAML::Emitter& out) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (auto it = node.begin(); it != node.end(); ++it) {
        out << YAML::Key;
        emit(it->first, out);
        out << YAML::Value;
        emit(it->second, out);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit(item, out);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") out << YAML::DoubleQuoted;
      out << node.Scalar();
      break;
    default:
      out << YAML::Null;
  }
}

std::string flow_yaml(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow;
  emit(node, out);
  return out.c_str();
}

// Reads one document into an Actor, recording every problem.
class Reader {
 public:
  Reader(std::string file, std::vector<Diagnostic>& errors)
      : file_(std::move(file)), errors_(errors) {}

  void error(const YAML::Node& at, int fallback_line, const std::string& field,
             std::string message) {
    int line = line_of(at);
    errors_.push_back({file_, line ? line : fallback_line, field, std::move(message)});
  }

  // Reports keys of `map` not in `allowed`. Returns false when `map` is not a mapping.
  bool mapping(const YAML::Node& map, int parent_line, const std::string& field,
               const std::vector<std::string>& allowed) {
    if (!map.IsMap()) {
      error(map, parent_line, field, fmt::format("expected a mapping, got {}", show(map)));
      return false;
    }
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : show(it->first);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(it->first, parent_line, prefix(field) + key,
              fmt::format("unknown field; allowed here: {}", join(allowed)));
      }
    }
    return true;
  }

  std::optional<int> integer(const YAML::Node& node, const std::string& field, int min, int max) {
    static const std::regex kInt("-?[0-9]+");
    if (!node.IsScalar() || node.Tag() == "!" || !std::regex_match(node.Scalar(), kInt)) {
      error(node, 0, field, fmt::format("expected an integer, got {}", show(node)));
      return std::nullopt;
    }
    long long value = 0;
    try {
      value = std::stoll(node.Scalar());
    } catch (const std::exception&) {
      value = node.Scalar()[0] == '-' ? std::numeric_limits<long long>::min()
                                      : std::numeric_limits<long long>::max();
    }
    if (value < min || value > max) {
      std::string what = value < 0 && min >= 0 ? "is negative" : "is out of range";
      error(node, 0, field,
            fmt::format("{} {}; use an integer from {} to {}", node.Scalar(), what, min, max));
      return std::nullopt;
    }
    return static_cast<int>(value);
  }

  std::optional<bool> boolean(const YAML::Node& node, const std::string& field) {
    if (node.IsScalar() && node.Tag() != "!") {
      if (node.Scalar() == "true") return true;
      if (node.Scalar() == "false") return false;
    }
    error(node, 0, field, fmt::format("expected true or false, got {}", show(node)));
    return std::nullopt;
  }

  std::optional<std::string> string(const YAML::Node& node, const std::string& field) {
    if (node.IsScalar()) return node.Scalar();
    error(node, 0, field, fmt::format("expected a string, got {}", show(node)));
    return std::nullopt;
  }

  // A number of seconds (30) or a duration string ("500ms", "1m30s"), at least `min`.
  std::optional<milliseconds> duration(const YAML::Node& node, const std::string& field,
                                       milliseconds min) {
    static const std::regex kSeconds("[0-9]+");
    std::string allowed = fmt::format(
        "use a number of seconds (30) or a duration with a unit (500ms, 30s, 5m), at least {}",
        format_duration(min));
    if (!node.IsScalar()) {
      error(node, 0, field, fmt::format("expected a duration, got {}; {}", show(node), allowed));
      return std::nullopt;
    }
    milliseconds value{0};
    if (std::regex_match(node.Scalar(), kSeconds) && node.Tag() != "!") {
      try {
        value = std::chrono::seconds(std::stoll(node.Scalar()));
      } catch (const std::exception&) {
        error(node, 0, field, fmt::format("{} is too large; {}", node.Scalar(), allowed));
        return std::nullopt;
      }
    } else {
      auto parsed = parse_duration(node.Scalar());
      if (!parsed) {
        error(node, 0, field, fmt::format("{} is not a duration; {}", show(node), allowed));
        return std::nullopt;
      }
      value = *parsed;
    }
    if (value < min) {
      error(node, 0, field, fmt::format("{} is too short; {}", show(node), allowed));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::vector<std::string>> strings(const YAML::Node& node,
                                                  const std::string& field) {
    if (!node.IsSequence()) {
      error(node, 0, field, fmt::format("expected a list of strings, got {}", show(node)));
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < node.size(); ++i) {
      auto item = string(node[i], fmt::format("{}[{}]", field, i));
      if (item)
        out.push_back(*item);
      else
        ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  static std::string prefix(const std::string& field) { return field.empty() ? "" : field + "."; }

  std::optional<Actor> actor(const YAML::Node& doc);

 private:
  void read_metadata(const YAML::Node& node, int line, Actor& actor);
  void read_spec(const YAML::Node& node, int line, Actor& actor);
  void read_scaling(const YAML::Node& node, int line, Actor& actor);
  void read_timeout(const YAML::Node& node, int line, Actor& actor);
  void read_retry(const YAML::Node& node, int line, Actor& actor);
  void read_workload(const YAML::Node& node, int line, Actor& actor);
  std::optional<Container> read_container(const YAML::Node& node, const std::string& field,
                                          int line);

  std::string file_;
  std::vector<Diagnostic>& errors_;
};

std::optional<Actor> Reader::actor(const YAML::Node& doc) {
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

void Reader::read_metadata(const YAML::Node& node, int line, Actor& actor) {
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

void Reader::read_spec(const YAML::Node& node, int line, Actor& actor) {
  if (!mapping(node, line, "spec",
               {"transport", "replicas", "scaling", "timeout", "retry", "sidecar", "isolation",
                "workload"}))
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

void Reader::read_scaling(const YAML::Node& node, int line, Actor& actor) {
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

void Reader::read_timeout(const YAML::Node& node, int line, Actor& actor) {
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

void Reader::read_retry(const YAML::Node& node, int line, Actor& actor) {
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

void Reader::read_workload(const YAML::Node& node, int line, Actor& actor) {
  const std::string f = "spec.workload";
  if (!mapping(node, line, f, {"kind", "template"})) return;
  if (auto kind = node["kind"]) {
    auto value = string(kind, f + ".kind");
    if (value && *value != "Deployment" && *value != "StatefulSet") {
      error(kind, line, f + ".kind",
            fmt::format("\"{}\" is not supported; use Deployment or StatefulSet", *value));
    } else if (value) {
      actor.workload_kind = *value;
    }
  }
  auto tmpl = node["template"];
  if (!tmpl) {
    error(node, line, f + ".template", "missing; give template.spec.containers");
    return;
  }
  if (!mapping(tmpl, line, f + ".template", {"metadata", "spec"})) return;
  if (auto metadata = tmpl["metadata"]) {
    const std::string mf = f + ".template.metadata";
    if (mapping(metadata, line, mf, {"labels", "annotations"})) {
      bool ok = true;
      for (const char* key : {"labels", "annotations"}) {
        auto map = metadata[key];
        if (!map) continue;
        if (!map.IsMap()) {
          error(map, line, fmt::format("{}.{}", mf, key),
                fmt::format("expected a mapping of strings, got {}", show(map)));
          ok = false;
          continue;
        }
        for (auto it = map.begin(); it != map.end(); ++it) {
          if (!it->second.IsScalar()) {
            error(it->second, line, fmt::format("{}.{}.{}", mf, key, it->first.Scalar()),
                  fmt::format("expected a string, got {}", show(it->second)));
            ok = false;
          }
        }
      }
      if (ok && metadata.size() > 0) actor.pod_metadata_yaml = flow_yaml(metadata);
    }
  }
  auto pod = tmpl["spec"];
  const std::string pf = f + ".template.spec";
  if (!pod) {
    error(tmpl, line, pf, "missing; give spec.containers");
    return;
  }
  static const std::vector<std::string> kPodFields{
      "containers",        "volumes",
      "nodeSelector",      "tolerations",
      "affinity",          "serviceAccountName",
      "imagePullSecrets",  "securityContext",
      "priorityClassName", "terminationGracePeriodSeconds"};
  if (!mapping(pod, line, pf, kPodFields)) return;
  YAML::Node extra(YAML::NodeType::Map);
  for (auto it = pod.begin(); it != pod.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() != "containers") extra[it->first] = it->second;
  }
  if (extra.size() > 0) actor.pod_extra_yaml = flow_yaml(extra);

  auto containers = pod["containers"];
  const std::string cf = pf + ".containers";
  if (!containers) {
    error(pod, line, cf, "missing; give one container (named asya-runtime when there are several)");
    return;
  }
  if (!containers.IsSequence() || containers.size() == 0) {
    error(containers, line, cf,
          fmt::format("expected a non-empty list of containers, got {}", show(containers)));
    return;
  }
  bool all_ok = true;
  for (std::size_t i = 0; i < containers.size(); ++i) {
    auto c = read_container(containers[i], fmt::format("{}[{}]", cf, i), line);
    if (c)
      actor.containers.push_back(std::move(*c));
    else
      all_ok = false;
  }
  if (!all_ok) return;
  if (actor.containers.size() > 1) {
    auto it = std::find_if(actor.containers.begin(), actor.containers.end(),
                           [](const Container& c) { return c.name == kRuntimeContainerName; });
    if (it == actor.containers.end()) {
      error(containers, line, cf,
            fmt::format("{} containers and none is named {}; name the runtime container {}",
                        actor.containers.size(), kRuntimeContainerName, kRuntimeContainerName));
      return;
    }
    actor.runtime_container = static_cast<std::size_t>(it - actor.containers.begin());
  }
  const Container& runtime = actor.runtime();
  const std::string rf = fmt::format("{}[{}]", cf, actor.runtime_container);
  auto runtime_node = containers[actor.runtime_container];
  auto mode = runtime.env_value("ASYA_HANDLER_MODE");
  if (mode) {
    if (*mode != "payload" && *mode != "envelope") {
      error(runtime_node["env"], line, rf + ".env.ASYA_HANDLER_MODE",
            fmt::format("\"{}\" is not a handler mode; use payload or envelope", *mode));
    } else {
      actor.handler_mode = *mode;
    }
  }
  if (runtime.command.empty()) {
    static const std::regex kHandler("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+");
    auto handler = runtime.env_value("ASYA_HANDLER");
    if (!handler) {
      error(runtime_node, line, rf + ".env",
            "ASYA_HANDLER is missing; set it to module.function or module.Class.method (or give "
            "the container a command)");
    } else if (!std::regex_match(*handler, kHandler)) {
      error(runtime_node["env"], line, rf + ".env.ASYA_HANDLER",
            fmt::format("\"{}\" is not a handler; use module.function or module.Class.method",
                        *handler));
    }
  }
}

std::optional<Container> Reader::read_container(const YAML::Node& node, const std::string& f,
                                                int line) {
  static const std::vector<std::string> kKubernetesOnly{"resources", "imagePullPolicy",
                                                        "volumeMounts", "ports", "securityContext"};
  std::vector<std::string> allowed{"name", "image", "command", "args", "env", "workingDir"};
  allowed.insert(allowed.end(), kKubernetesOnly.begin(), kKubernetesOnly.end());
  std::size_t errors_before = errors_.size();
  if (!mapping(node, line, f, allowed)) return std::nullopt;
  Container c;
  if (auto n = node["name"]) {
    if (auto v = string(n, f + ".name")) c.name = *v;
  }
  if (auto n = node["image"]) {
    if (auto v = string(n, f + ".image")) c.image = *v;
  }
  if (auto n = node["command"]) {
    if (auto v = strings(n, f + ".command")) c.command = *v;
  }
  if (auto n = node["args"]) {
    if (auto v = strings(n, f + ".args")) c.args = *v;
  }
  if (auto n = node["workingDir"]) {
    if (auto v = string(n, f + ".workingDir")) c.working_dir = *v;
  }
  if (!c.command.empty() || !c.args.empty()) {
    // args without command would be passed to the bundled runtime, which takes none.
    if (c.command.empty()) {
      error(node["args"], line, f + ".args",
            "args need a command; the bundled Python runtime takes no arguments");
    }
  }
  if (auto env = node["env"]) {
    if (!env.IsSequence()) {
      error(env, line, f + ".env",
            fmt::format("expected a list of {{name, value}} entries, got {}", show(env)));
    } else {
      std::map<std::string, int> seen;
      for (std::size_t i = 0; i < env.size(); ++i) {
        const std::string ef = fmt::format("{}.env[{}]", f, i);
        auto entry = env[i];
        if (!mapping(entry, line, ef, {"name", "value", "valueFrom"})) continue;
        EnvVar var;
        auto name_node = entry["name"];
        if (!name_node) {
          error(entry, line, ef + ".name", "missing; every env entry needs a name");
          continue;
        }
        auto name = string(name_node, ef + ".name");
        if (!name) continue;
        if (!valid_env_name(*name)) {
          error(name_node, line, ef + ".name",
                fmt::format("\"{}\" is not a valid environment variable name; use letters, digits "
                            "and '_', not starting with a digit",
                            *name));
          continue;
        }
        if (auto [it, inserted] = seen.emplace(*name, line_of(name_node)); !inserted) {
          error(name_node, line, ef + ".name",
                fmt::format("\"{}\" is set twice (first at line {}); set each variable once", *name,
                            it->second));
          continue;
        }
        var.name = *name;
        auto value = entry["value"];
        auto value_from = entry["valueFrom"];
        if (value && value_from) {
          error(value_from, line, ef + ".valueFrom", "give either value or valueFrom, not both");
          continue;
        }
        if (value) {
          if (value.IsNull()) {
            var.value.clear();
          } else if (!value.IsScalar()) {
            error(value, line, ef + ".value",
                  fmt::format("expected a string, got {}; quote it if it is meant as text",
                              show(value)));
            continue;
          } else {
            var.value = value.Scalar();
          }
        } else if (value_from) {
          if (!value_from.IsMap()) {
            error(value_from, line, ef + ".valueFrom",
                  fmt::format("expected a mapping (secretKeyRef, configMapKeyRef, ...), got {}",
                              show(value_from)));
            continue;
          }
          var.value_from_yaml = flow_yaml(value_from);
        }
        c.env.push_back(std::move(var));
      }
    }
  }
  YAML::Node extra(YAML::NodeType::Map);
  for (const auto& key : kKubernetesOnly) {
    if (node[key]) extra[key] = node[key];
  }
  if (extra.size() > 0) c.kubernetes_extra_yaml = flow_yaml(extra);
  if (errors_.size() != errors_before) return std::nullopt;
  return c;
}

void check_duplicates(LoadResult& result) {
  std::map<std::string, const Actor*> first;
  for (auto& actor : result.actors) {
    auto [it, inserted] = first.emplace(actor.name, &actor);
    if (!inserted) {
      result.errors.push_back(
          {actor.file, actor.line, "metadata.name",
           fmt::format("actor \"{}\" is already defined at {}:{}; each actor name must be unique",
                       actor.name, it->second->file, it->second->line)});
    }
  }
}

void load_into(std::string_view text, const std::string& file, LoadResult& result,
               bool& found_actor) {
  // Alias bombs and deep nesting are refused before the tree is built and walked.
  if (auto limit = check_yaml_limits(text)) {
    result.errors.push_back({file, limit->line, "", limit->message});
    return;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    result.errors.push_back(
        {file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", fmt::format("invalid YAML: {}", e.msg)});
    return;
  }
  Reader reader(file, result.errors);
  for (const auto& doc : docs) {
    if (!doc || doc.IsNull()) continue;
    if (!doc.IsMap()) {
      result.errors.push_back(
          {file, line_of(doc), "",
           fmt::format("expected a mapping (an AsyncActor resource), got {}", show(doc))});
      continue;
    }
    auto kind = doc["kind"];
    auto api = doc["apiVersion"];
    const bool ours = api && api.IsScalar() && api.Scalar().rfind("asya.sh/", 0) == 0;
    if (!kind && !api && !doc["metadata"] && !doc["spec"]) continue;  // not a resource at all
    if (!kind || !kind.IsScalar()) {
      result.errors.push_back(
          {file, line_of(kind ? kind : doc), "kind",
           fmt::format("{}; an Asya manifest document needs kind: {}",
                       kind ? fmt::format("expected a string, got {}", show(kind)) : "missing",
                       kKind)});
      continue;
    }
    if (kind.Scalar() != kKind) {
      // Another Kubernetes object is not ours; another kind of our API group is a mistake.
      if (ours) {
        result.errors.push_back({file, line_of(kind), "kind",
                                 fmt::format("\"{}\" is not a kind of {}; use {}", kind.Scalar(),
                                             api.Scalar(), kKind)});
      }
      continue;
    }
    found_actor = true;
    if (auto actor = reader.actor(doc)) result.actors.push_back(std::move(*actor));
  }
}

}  // namespace

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}", line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

std::optional<std::string> Container::env_value(std::string_view name) const {
  for (const auto& var : env) {
    if (var.name == name) return var.value;
  }
  return std::nullopt;
}

bool Retry::retries_processing_errors() const {
  return std::find(retry_on.begin(), retry_on.end(), "processing_error") != retry_on.end();
}

std::string LoadResult::error_text() const {
  std::string out;
  for (const auto& d : errors) out += d.str() + "\n";
  return out;
}

bool is_routes_file(std::string_view path) {
  auto name = fs::path(path).filename();
  return name == "routes.yaml" || name == "routes.yml";
}

bool valid_env_name(std::string_view name) {
  if (name.empty()) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

LoadResult load_text(std::string_view text, const std::string& file) {
  LoadResult result;
  bool found = false;
  load_into(text, file, result, found);
  if (!found && result.errors.empty()) {
    result.errors.push_back({file, 0, "", fmt::format("no {} resource found", kKind)});
  }
  check_duplicates(result);
  return result;
}

LoadResult load_paths(const std::vector<std::string>& paths) {
  LoadResult result;
  for (const auto& path : paths) {
    std::error_code ec;
    std::vector<fs::path> files;
    bool is_dir = fs::is_directory(path, ec);
    if (is_dir) {
      for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        auto ext = it->path().extension();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml") &&
            !is_routes_file(it->path().string()))
          files.push_back(it->path());
      }
      std::sort(files.begin(), files.end());
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      result.errors.push_back(
          {path, 0, "", "no such file or directory; give manifest files or directories"});
      continue;
    }
    bool found = false;
    std::size_t errors_before = result.errors.size();
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        result.errors.push_back({file.string(), 0, "", "cannot be read"});
        continue;
      }
      std::stringstream buffer;
      buffer << in.rdbuf();
      load_into(buffer.str(), file.string(), result, found);
    }
    if (!found && result.errors.size() == errors_before) {
      result.errors.push_back(
          {path, 0, "",
           is_dir ? fmt::format("no {} resource found in any *.yaml or *.yml file", kKind)
                  : fmt::format("no {} resource found", kKind)});
    }
  }
  check_duplicates(result);
  return result;
}

}  // namespace asya::manifest
