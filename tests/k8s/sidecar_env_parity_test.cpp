// One manifest configures its sidecars alike under `asya up` and on Kubernetes: the same
// manifests go through the supervisor's path (local::replica_sidecar_environment, what `asya up`
// gives a replica's sidecar) and through `asya render` (the pod's asya-sidecar container env, as
// the operator applies it too), and the two environments must hold the same names and values.
// Only what the host decides may differ, and is compared after resolving it: the socket
// (ASYA_SOCKET_PATH of the replica vs ASYA_SOCKET_DIR of the pod's shared directory, both naming
// one file), the metrics address (its port), the gateway's address (`asya up` gives its local
// gateway's Unix socket, `unix:<state>/gateway.sock`; the pod a URL of the gateway's Service) and
// the values Kubernetes reads from Secrets (given to `asya up` as the same placeholders through
// its environment).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "k8s/render.hpp"
#include "local/replica_environment.hpp"
#include "manifest/manifest.hpp"

namespace asya::k8s {
namespace {
namespace json = boost::json;
namespace fs = std::filesystem;

constexpr const char* kSocketFile = "asya-runtime.sock";  // the sidecar's default file name
constexpr int kMetricsPort = 9090;
constexpr int kGatewayPort = 8123;

std::string secret_placeholder(std::string_view secret, std::string_view key) {
  return fmt::format("<secret {}/{}>", secret, key);
}

using EnvMap = std::map<std::string, std::string>;

// Host-decided variables, resolved to what they mean for the sidecar.
void normalize(EnvMap& env) {
  if (env.count("ASYA_SOCKET_DIR")) {
    env["ASYA_SOCKET"] = env["ASYA_SOCKET_DIR"] + "/" + kSocketFile;
    env.erase("ASYA_SOCKET_DIR");
  }
  if (env.count("ASYA_SOCKET_PATH")) {
    env["ASYA_SOCKET"] = env["ASYA_SOCKET_PATH"];
    env.erase("ASYA_SOCKET_PATH");
  }
  if (env.count("ASYA_METRICS_ADDR")) {
    const std::string addr = env["ASYA_METRICS_ADDR"];
    env["ASYA_METRICS_ADDR"] = "port " + addr.substr(addr.rfind(':') + 1);
  }
  // The one gateway, reached over its Unix socket under `asya up` (test state "/state").
  if (env.count("ASYA_GATEWAY_URL") && env["ASYA_GATEWAY_URL"] == "unix:/state/gateway.sock")
    env["ASYA_GATEWAY_URL"] = fmt::format("http://127.0.0.1:{}", kGatewayPort);
}

// The rendered container's env, secret references replaced by their placeholder.
EnvMap rendered_env(const json::object& container) {
  EnvMap out;
  for (const auto& v : container.at("env").as_array()) {
    const auto& var = v.as_object();
    const std::string name(var.at("name").as_string());
    EXPECT_FALSE(out.count(name)) << "duplicate " << name;
    if (var.contains("value")) {
      out[name] = std::string(var.at("value").as_string());
    } else {
      const auto& ref = var.at("valueFrom").at("secretKeyRef");
      out[name] = secret_placeholder(ref.at("name").as_string(), ref.at("key").as_string());
    }
  }
  normalize(out);
  return out;
}

// What `asya up` would give the sidecar, restricted to the sidecar's own variables (ASYA_*,
// AWS_*; PATH and the like are inherited and not the mapping's business).
EnvMap local_env(const manifest::Actor& actor, bool end_actor, const std::string& transport) {
  local::SupervisorOptions options;
  options.paths = local::StatePaths("/state");
  options.transport = transport;
  options.routes_file = "/state/routes.yaml";
  options.gateway_port = kGatewayPort;
  // The supervisor's own environment: the broker settings and the log level come from here.
  std::vector<std::string> inherited{
      "PATH=/usr/bin", "HOME=/root", "ASYA_LOG_LEVEL=info",
      "ASYA_GATEWAY_INTERNAL_TOKEN=" + secret_placeholder("asya-gateway-token", "internal-token")};
  if (transport == "rabbitmq") {
    inherited.push_back("ASYA_RABBITMQ_URL=" + secret_placeholder("asya-rabbitmq", "url"));
  } else {
    inherited.push_back("AWS_REGION=us-east-1");
    inherited.push_back("AWS_ACCESS_KEY_ID=" + secret_placeholder("asya-sqs", "AWS_ACCESS_KEY_ID"));
    inherited.push_back("AWS_SECRET_ACCESS_KEY=" +
                        secret_placeholder("asya-sqs", "AWS_SECRET_ACCESS_KEY"));
  }
  local::ReplicaSidecar replica{end_actor, fs::path("/var/run/asya") / kSocketFile, kMetricsPort};
  auto env = local::replica_sidecar_environment(actor, replica, options, "asya-", inherited);
  EXPECT_TRUE(env.ok()) << env.error().message;
  EnvMap out;
  if (!env) return out;
  for (const auto& entry : *env) {
    const std::string name = entry.substr(0, entry.find('='));
    if (name.rfind("ASYA_", 0) != 0 && name.rfind("AWS_", 0) != 0) continue;
    EXPECT_FALSE(out.count(name)) << "duplicate " << name;
    out[name] = entry.substr(entry.find('=') + 1);
  }
  normalize(out);
  return out;
}

const json::object* sidecar_of(const json::object& workload) {
  for (const auto& c : workload.at("spec").at("template").at("spec").at("containers").as_array()) {
    if (c.at("name") == "asya-sidecar") return &c.as_object();
  }
  return nullptr;
}

// Renders `actors` (with end actors storing into `result_store`) and compares every sidecar with
// the supervisor's. Returns how many sidecars were compared.
int compare(const std::vector<manifest::Actor>& actors, const std::string& transport) {
  std::map<std::string, const manifest::Actor*> by_name;
  for (const auto& a : actors) by_name[a.name] = &a;
  int compared = 0;
  for (const char* end_store : {"succeeded", "failed"}) {
    RenderOptions options;
    options.transport = transport;
    options.gateway_url = fmt::format("http://127.0.0.1:{}", kGatewayPort);
    options.metrics_port = kMetricsPort;
    options.result_store = std::string("file:///state/results/") + end_store;
    auto rendered = render(actors, options);
    EXPECT_TRUE(rendered.ok()) << rendered.error().message;
    if (!rendered) return compared;
    for (const auto& object : rendered->all()) {
      const std::string kind(object.at("kind").as_string());
      if (kind != "Deployment" && kind != "StatefulSet") continue;
      const std::string name(object.at("metadata").at("name").as_string());
      // Each end actor once, with the store the supervisor gives it.
      const bool end_actor = name == "happy-end" || name == "error-end";
      if (end_actor && (name == "happy-end") != (std::string(end_store) == "succeeded")) continue;
      if (!end_actor && std::string(end_store) != "succeeded") continue;
      SCOPED_TRACE(kind + "/" + name + " on " + transport);
      const json::object* sidecar = sidecar_of(object);
      EXPECT_NE(sidecar, nullptr);
      if (sidecar == nullptr) continue;
      manifest::Actor end;
      end.name = name;
      const manifest::Actor& actor = end_actor ? end : *by_name.at(name);
      EXPECT_EQ(local_env(actor, end_actor, transport), rendered_env(*sidecar));
      ++compared;
    }
  }
  return compared;
}

std::vector<manifest::Actor> load(const std::string& yaml) {
  auto loaded = manifest::load_text(yaml, "parity.yaml");
  EXPECT_TRUE(loaded.ok()) << loaded.error_text();
  return loaded.actors;
}

std::string actor_yaml(const std::string& name, const std::string& spec_extra) {
  return "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: " + name + "}\nspec:\n" +
         spec_extra +
         "  workload:\n    template:\n      spec:\n        containers:\n"
         "        - name: asya-runtime\n          image: python:3.11-slim\n          env:\n"
         "          - {name: ASYA_HANDLER, value: mod.fn}\n---\n";
}

class SidecarEnvParity : public testing::TestWithParam<std::string> {};

TEST_P(SidecarEnvParity, EachKindOfManifestGivesTheSameSidecarEnvironmentOnBothHosts) {
  const auto actors = load(
      actor_yaml("plain", "") +
      actor_yaml("retries-off", "  retry: {maxAttempts: 1, backoff: 5s, backoffMax: 10s}\n") +
      actor_yaml("retries-on", "  retry: {maxAttempts: 3, backoff: 250ms, backoffMax: 90s}\n") +
      actor_yaml("retries-processing",
                 "  retry: {maxAttempts: 2, retryOn: [runtime_timeout, processing_error]}\n") +
      actor_yaml("timeouts", "  timeout: {processing: 90s, gracefulShutdown: 1500ms}\n") +
      actor_yaml("scaled",
                 "  scaling: {enabled: true, minReplicas: 1, maxReplicas: 4, queueLength: 3}\n") +
      actor_yaml("fixed", "  scaling: {enabled: false}\n  replicas: 2\n") +
      actor_yaml("tuned", "  sidecar: {concurrency: 8, maxDeliveries: 12}\n") +
      actor_yaml("isolated", "  isolation: {network: none}\n"));
  ASSERT_EQ(actors.size(), 9u);
  // 9 actors + happy-end + error-end.
  EXPECT_EQ(compare(actors, GetParam()), 11);
}

TEST_P(SidecarEnvParity, EveryExampleAndTestManifestGivesTheSameSidecarEnvironmentOnBothHosts) {
  int compared = 0;
  for (const char* root : {"examples", "tests/k8s/manifests"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(ASYA_SOURCE_DIR) / root)) {
      if (!entry.is_directory()) continue;
      auto loaded = manifest::load_paths({entry.path().string()});
      if (loaded.actors.empty()) continue;
      SCOPED_TRACE(entry.path().string());
      ASSERT_TRUE(loaded.ok()) << loaded.error_text();
      compared += compare(loaded.actors, GetParam());
    }
  }
  EXPECT_GE(compared, 12) << "too few sidecars compared: are the examples found?";
}

// The comparison is not blind: the rendered sidecar of one manifest differs from what `asya up`
// gives the sidecar of a manifest that retries once more.
TEST(SidecarEnvParity, ADifferentManifestGivesADifferentEnvironment) {
  const auto a = load(actor_yaml("w", "  retry: {maxAttempts: 3}\n"));
  const auto b = load(actor_yaml("w", "  retry: {maxAttempts: 4}\n"));
  RenderOptions options;
  options.transport = "rabbitmq";
  options.gateway_url = fmt::format("http://127.0.0.1:{}", kGatewayPort);
  auto rendered = render_actor(a.at(0), options);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const json::object* sidecar = nullptr;
  for (const auto& object : rendered->objects) {
    if (object.at("kind") == "Deployment") sidecar = sidecar_of(object);
  }
  ASSERT_NE(sidecar, nullptr);
  EXPECT_EQ(local_env(a.at(0), false, "rabbitmq"), rendered_env(*sidecar));
  EXPECT_NE(local_env(b.at(0), false, "rabbitmq"), rendered_env(*sidecar));
}

INSTANTIATE_TEST_SUITE_P(Transports, SidecarEnvParity, testing::Values("rabbitmq", "sqs"));

}  // namespace
}  // namespace asya::k8s
