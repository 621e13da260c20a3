// The rendered pods really configure the programs they run: every asya-sidecar container `asya
// render` prints (actors and end actors, both transports, every example) is fed to the sidecar's
// own load_config(), which must accept it and read back the manifest's settings; the runtime
// container's socket, its readiness probe and the sidecar agree on one path in a shared emptyDir.
#include <stdlib.h>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/env.hpp"
#include "k8s/render.hpp"
#include "manifest/manifest.hpp"
#include "sidecar/config.hpp"
#include "wire/runtime_client.hpp"

extern char** environ;

namespace asya::k8s {
namespace {
namespace json = boost::json;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Directories holding AsyncActor manifests: every example and tests/k8s/manifests/*.
std::vector<std::string> manifest_dirs() {
  std::vector<std::string> out;
  for (const char* root : {"examples", "tests/k8s/manifests"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(ASYA_SOURCE_DIR) / root)) {
      if (!entry.is_directory()) continue;
      if (manifest::load_paths({entry.path().string()}).actors.empty()) continue;
      out.push_back(entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Replaces the process's ASYA_*/AWS_* variables with the container's env; secret references get
// a placeholder value (the kubelet would resolve them).
void apply_env(const json::object& container) {
  std::vector<std::string> names;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (name.rfind("ASYA_", 0) == 0 || name.rfind("AWS_", 0) == 0) names.push_back(name);
  }
  for (const auto& n : names) unsetenv(n.c_str());
  for (const auto& v : container.at("env").as_array()) {
    const auto& var = v.as_object();
    std::string value = var.contains("value") ? std::string(var.at("value").as_string())
                                              : std::string("secret-from-kubelet");
    setenv(std::string(var.at("name").as_string()).c_str(), value.c_str(), 1);
  }
}

const json::object* container_named(const json::object& pod, std::string_view name) {
  for (const auto& c : pod.at("containers").as_array()) {
    if (c.at("name").as_string() == name) return &c.as_object();
  }
  return nullptr;
}

std::string mount_path(const json::object& container, std::string_view volume) {
  if (!container.contains("volumeMounts")) return "";
  for (const auto& m : container.at("volumeMounts").as_array()) {
    if (m.at("name").as_string() == volume) return std::string(m.at("mountPath").as_string());
  }
  return "";
}

bool is_empty_dir_volume(const json::object& pod, std::string_view volume) {
  for (const auto& v : pod.at("volumes").as_array()) {
    if (v.at("name").as_string() == volume) return v.as_object().contains("emptyDir");
  }
  return false;
}

class RenderedSidecarEnv : public testing::TestWithParam<std::string> {};

TEST_P(RenderedSidecarEnv, IsAcceptedByTheSidecarAndCarriesTheManifestSettings) {
  const std::string transport = GetParam();
  int sidecars = 0;
  for (const auto& dir : manifest_dirs()) {
    SCOPED_TRACE(dir + " on " + transport);
    auto loaded = manifest::load_paths({dir});
    ASSERT_TRUE(loaded.ok()) << loaded.error_text();
    std::map<std::string, manifest::Actor> actors;
    for (const auto& a : loaded.actors) actors[a.name] = a;
    RenderOptions options;
    options.transport = transport;
    options.gateway_url = "http://asya-gateway.asya.svc:8080";
    auto rendered = render(loaded.actors, options);
    ASSERT_TRUE(rendered.ok()) << rendered.error().message;
    for (const auto& object : rendered->all()) {
      const std::string kind(object.at("kind").as_string());
      if (kind != "Deployment" && kind != "StatefulSet") continue;
      const std::string name(object.at("metadata").at("name").as_string());
      SCOPED_TRACE(kind + "/" + name);
      const auto& pod = object.at("spec").at("template").at("spec").as_object();
      const json::object* sidecar = container_named(pod, "asya-sidecar");
      ASSERT_NE(sidecar, nullptr);
      ++sidecars;
      apply_env(*sidecar);
      sidecar::Config config;
      try {
        config = sidecar::load_config();
      } catch (const ConfigError& e) {
        FAIL() << "the sidecar refuses its rendered env: " << e.what();
      }
      EXPECT_EQ(config.actor_name, name);
      EXPECT_EQ(config.transport, transport);
      EXPECT_EQ(config.queue_prefix, "asya-");
      EXPECT_EQ(config.gateway_url, options.gateway_url);
      // The internal token comes from Secret asya-gateway-token (resolved by the kubelet).
      EXPECT_EQ(config.gateway_internal_token, "secret-from-kubelet");
      EXPECT_EQ(config.metrics_addr, ":9090");
      EXPECT_EQ(sidecar->at("ports").at(0).at("containerPort"), 9090);
      if (name == "happy-end" || name == "error-end") {
        EXPECT_TRUE(config.is_end_actor);
        // A short lease of their own: a killed end actor strands nothing for long.
        EXPECT_EQ(config.visibility_timeout, sidecar::kEndActorVisibility);
        EXPECT_EQ(config.result_store, options.result_store);
        EXPECT_EQ(mount_path(*sidecar, "results"), "/var/lib/asya/results");
        continue;
      }
      ASSERT_TRUE(actors.count(name));
      const auto& actor = actors.at(name);
      EXPECT_FALSE(config.is_end_actor);
      EXPECT_EQ(config.runtime_timeout, actor.timeout.processing);
      EXPECT_EQ(config.visibility_timeout, sidecar::kActorVisibility);  // extended while working
      EXPECT_EQ(config.shutdown_grace, actor.timeout.graceful_shutdown);
      EXPECT_EQ(config.concurrency, actor.sidecar.concurrency.value_or(1));
      EXPECT_EQ(config.max_deliveries, actor.sidecar.max_deliveries.value_or(5));
      EXPECT_EQ(config.retry_max_attempts, actor.retry.max_attempts);
      if (actor.retry.max_attempts > 1) {
        EXPECT_EQ(config.retry_backoff, actor.retry.backoff);
        EXPECT_EQ(config.retry_backoff_max, actor.retry.backoff_max);
        EXPECT_EQ(config.retry_on_processing_error, actor.retry.retries_processing_errors());
      }
      // The kubelet must let the sidecar drain: the grace period covers gracefulShutdown, and a
      // message started just before the stop (processing timeout), plus 10 s to nack and exit.
      EXPECT_GE(pod.at("terminationGracePeriodSeconds").as_int64() * 1000,
                actor.timeout.graceful_shutdown.count());
      EXPECT_GE(pod.at("terminationGracePeriodSeconds").as_int64() * 1000,
                actor.timeout.processing.count() + 10000);

      // Sidecar and runtime meet at one socket in a shared emptyDir, and the runtime's
      // readiness probe looks at that socket and the ready file next to it.
      const std::string socket_dir = fs::path(config.socket_path).parent_path().string();
      EXPECT_EQ(mount_path(*sidecar, "asya-socket"), socket_dir);
      EXPECT_TRUE(is_empty_dir_volume(pod, "asya-socket"));
      const std::string runtime_name = actor.runtime().name.empty()
                                           ? std::string(manifest::kRuntimeContainerName)
                                           : actor.runtime().name;
      const json::object* runtime = container_named(pod, runtime_name);
      ASSERT_NE(runtime, nullptr);
      EXPECT_EQ(mount_path(*runtime, "asya-socket"), socket_dir);
      bool socket_env = false;
      for (const auto& v : runtime->at("env").as_array()) {
        if (v.at("name") == "ASYA_SOCKET_DIR") socket_env = v.at("value").as_string() == socket_dir;
      }
      EXPECT_TRUE(socket_env) << "runtime ASYA_SOCKET_DIR";
      const std::string probe(
          json::serialize(runtime->at("readinessProbe").at("exec").at("command")));
      EXPECT_NE(probe.find("test -S " + config.socket_path), std::string::npos) << probe;
      EXPECT_NE(probe.find("test -e " + wire::ready_file_for(config.socket_path)),
                std::string::npos)
          << probe;
      // Broker credentials reach the sidecar only.
      for (const auto& v : runtime->at("env").as_array()) {
        const std::string var(v.at("name").as_string());
        EXPECT_TRUE(var.rfind("AWS_", 0) != 0 && var != "ASYA_RABBITMQ_URL") << var;
      }
      if (actor.runtime().command.empty()) {
        EXPECT_EQ(mount_path(*runtime, "asya-runtime"), "/opt/asya");
      }
    }
  }
  EXPECT_GE(sidecars, 8) << "too few sidecars rendered: are the examples found?";
}

INSTANTIATE_TEST_SUITE_P(Transports, RenderedSidecarEnv, testing::Values("rabbitmq", "sqs"));

}  // namespace
}  // namespace asya::k8s
