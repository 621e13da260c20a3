#include "manifest/sidecar_environment.hpp"

#include <gtest/gtest.h>

#include "common/env.hpp"

namespace asya::manifest {
namespace {

using namespace std::chrono_literals;

Actor load_one(const std::string& spec_extra) {
  auto r = load_text(
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: worker}\nspec:\n" +
          spec_extra +
          "  workload:\n    template:\n      spec:\n        containers:\n"
          "        - name: asya-runtime\n          env:\n"
          "          - {name: ASYA_HANDLER, value: mod.fn}\n",
      "worker.yaml");
  EXPECT_TRUE(r.ok()) << r.error_text();
  return r.actors.at(0);
}

SidecarEnvironmentOptions host() {
  SidecarEnvironmentOptions o;
  o.transport = "rabbitmq";
  o.queue_prefix = "asya-";
  o.transport_settings = {{"ASYA_RABBITMQ_URL", SecretKeyRef{"asya-rabbitmq", "url"}}};
  o.socket_dir = "/var/run/asya";
  o.metrics_addr = ":9090";
  o.log_level = "info";
  return o;
}

std::vector<std::string> names(const Environment& env) {
  std::vector<std::string> out;
  for (const auto& v : env) out.push_back(v.name);
  return out;
}

std::string value(const Environment& env, std::string_view name) {
  const auto* v = find_variable(env, name);
  if (v == nullptr) return "<unset>";
  return v->literal() ? *v->literal() : "<secret>";
}

TEST(SidecarEnvironment, PlainActorGetsHostSettingsAndTimeoutsInOrder) {
  const auto env = sidecar_environment(load_one(""), host());
  EXPECT_EQ(names(env), (std::vector<std::string>{
                            "ASYA_ACTOR_NAME", "ASYA_TRANSPORT", "ASYA_QUEUE_PREFIX",
                            "ASYA_RABBITMQ_URL", "ASYA_SOCKET_DIR", "ASYA_RUNTIME_TIMEOUT",
                            "ASYA_SHUTDOWN_GRACE", "ASYA_METRICS_ADDR", "ASYA_LOG_LEVEL"}));
  EXPECT_EQ(value(env, "ASYA_ACTOR_NAME"), "worker");
  EXPECT_EQ(value(env, "ASYA_RUNTIME_TIMEOUT"), "5m");  // the manifest default, 300 s
  EXPECT_EQ(value(env, "ASYA_SHUTDOWN_GRACE"), "30s");
  EXPECT_EQ(*find_variable(env, "ASYA_RABBITMQ_URL")->secret(),
            (SecretKeyRef{"asya-rabbitmq", "url", false}));
}

TEST(SidecarEnvironment, PayloadStoreIsGivenToActorsAndEndActorsAlike) {
  SidecarEnvironmentOptions o = host();
  o.payload_store = "s3://b/p";
  EXPECT_EQ(value(sidecar_environment(load_one(""), o), "ASYA_PAYLOAD_STORE"), "s3://b/p");
  o.end_actor = true;
  o.result_store = "s3://b/results";
  EXPECT_EQ(value(sidecar_environment(load_one(""), o), "ASYA_PAYLOAD_STORE"), "s3://b/p");
  EXPECT_EQ(value(sidecar_environment(load_one(""), host()), "ASYA_PAYLOAD_STORE"), "<unset>");
}

TEST(SidecarEnvironment, DurationsAreWrittenTheWayTheSidecarParsesThem) {
  const auto env =
      sidecar_environment(load_one("  timeout: {processing: 90s, gracefulShutdown: 1500ms}\n"
                                   "  retry: {maxAttempts: 2, backoff: 250ms, backoffMax: 1h}\n"),
                          host());
  EXPECT_EQ(value(env, "ASYA_RUNTIME_TIMEOUT"), "1m30s");
  EXPECT_EQ(value(env, "ASYA_SHUTDOWN_GRACE"), "1500ms");
  EXPECT_EQ(value(env, "ASYA_RETRY_BACKOFF"), "250ms");
  EXPECT_EQ(value(env, "ASYA_RETRY_BACKOFF_MAX"), "1h");
  for (const char* name : {"ASYA_RUNTIME_TIMEOUT", "ASYA_SHUTDOWN_GRACE", "ASYA_RETRY_BACKOFF",
                           "ASYA_RETRY_BACKOFF_MAX"}) {
    ASSERT_TRUE(parse_duration(value(env, name)).ok()) << name;
  }
  EXPECT_EQ(*parse_duration(value(env, "ASYA_RUNTIME_TIMEOUT")), 90s);
}

TEST(SidecarEnvironment, RetryVariablesOnlyWhenTheManifestRetries) {
  // maxAttempts 1 is the sidecar's own default: nothing to say, backoffs mean nothing.
  const auto off =
      sidecar_environment(load_one("  retry: {maxAttempts: 1, backoff: 5s}\n"), host());
  for (const char* name : {"ASYA_RETRY_MAX_ATTEMPTS", "ASYA_RETRY_BACKOFF",
                           "ASYA_RETRY_BACKOFF_MAX", "ASYA_RETRY_ON_PROCESSING_ERROR"}) {
    EXPECT_EQ(find_variable(off, name), nullptr) << name;
  }
  const auto timeouts_only =
      sidecar_environment(load_one("  retry: {maxAttempts: 3, backoff: 2s}\n"), host());
  EXPECT_EQ(value(timeouts_only, "ASYA_RETRY_MAX_ATTEMPTS"), "3");
  EXPECT_EQ(value(timeouts_only, "ASYA_RETRY_BACKOFF"), "2s");
  EXPECT_EQ(value(timeouts_only, "ASYA_RETRY_BACKOFF_MAX"), "1m");
  EXPECT_EQ(find_variable(timeouts_only, "ASYA_RETRY_ON_PROCESSING_ERROR"), nullptr);
  const auto processing = sidecar_environment(
      load_one("  retry: {maxAttempts: 4, retryOn: [runtime_timeout, processing_error]}\n"),
      host());
  EXPECT_EQ(value(processing, "ASYA_RETRY_ON_PROCESSING_ERROR"), "true");
  EXPECT_EQ(names(processing).back(), "ASYA_RETRY_ON_PROCESSING_ERROR");
}

TEST(SidecarEnvironment, SidecarSettingsAreSetOnlyWhenTheManifestSetsThem) {
  const auto plain = sidecar_environment(load_one(""), host());
  EXPECT_EQ(find_variable(plain, "ASYA_CONCURRENCY"), nullptr);
  EXPECT_EQ(find_variable(plain, "ASYA_MAX_DELIVERIES"), nullptr);
  const auto set =
      sidecar_environment(load_one("  sidecar: {concurrency: 8, maxDeliveries: 12}\n"), host());
  EXPECT_EQ(value(set, "ASYA_CONCURRENCY"), "8");
  EXPECT_EQ(value(set, "ASYA_MAX_DELIVERIES"), "12");
}

TEST(SidecarEnvironment, BatchingSetsTheSidecarsBatchVariablesAndTheRuntimesBatchFlag) {
  const Actor batched = load_one("  batching: {maxSize: 32, maxWait: 250ms}\n");
  const auto env = sidecar_environment(batched, host());
  EXPECT_EQ(value(env, "ASYA_BATCH_MAX_SIZE"), "32");
  EXPECT_EQ(value(env, "ASYA_BATCH_MAX_WAIT"), "250ms");
  EXPECT_EQ(names(env).back(), "ASYA_BATCH_MAX_WAIT");
  const auto runtime = runtime_environment(batched);
  ASSERT_EQ(runtime.size(), 1u);
  EXPECT_EQ(value(runtime, "ASYA_HANDLER_BATCH"), "true");

  const Actor plain = load_one("");
  EXPECT_EQ(value(sidecar_environment(plain, host()), "ASYA_BATCH_MAX_SIZE"), "<unset>");
  EXPECT_TRUE(runtime_environment(plain).empty());
}

TEST(SidecarEnvironment, GatewayTokenComesOnlyWithTheGatewayAsValueOrSecret) {
  auto o = host();
  o.gateway_internal_token = SecretKeyRef{"asya-gateway-token", "internal-token", true};
  auto env = sidecar_environment(load_one(""), o);
  EXPECT_EQ(find_variable(env, "ASYA_GATEWAY_URL"), nullptr);
  EXPECT_EQ(find_variable(env, "ASYA_GATEWAY_INTERNAL_TOKEN"), nullptr);

  o.gateway_url = "http://asya-gateway:8080";
  env = sidecar_environment(load_one(""), o);
  EXPECT_EQ(value(env, "ASYA_GATEWAY_URL"), "http://asya-gateway:8080");
  EXPECT_EQ(*find_variable(env, "ASYA_GATEWAY_INTERNAL_TOKEN")->secret(),
            (SecretKeyRef{"asya-gateway-token", "internal-token", true}));

  o.gateway_internal_token = std::string("t0ken");
  env = sidecar_environment(load_one(""), o);
  EXPECT_EQ(value(env, "ASYA_GATEWAY_INTERNAL_TOKEN"), "t0ken");
}

TEST(SidecarEnvironment, EndActorGetsStoreAndEndModeButNoRuntimeSettings) {
  Actor end;
  end.name = "happy-end";
  end.retry.max_attempts = 5;  // ignored: an end actor calls no runtime
  end.sidecar.concurrency = 4;
  auto o = host();
  o.end_actor = true;
  o.result_store = "s3://bucket/results";
  const auto env = sidecar_environment(end, o);
  EXPECT_EQ(names(env),
            (std::vector<std::string>{"ASYA_ACTOR_NAME", "ASYA_IS_END_ACTOR", "ASYA_TRANSPORT",
                                      "ASYA_QUEUE_PREFIX", "ASYA_RABBITMQ_URL", "ASYA_RESULT_STORE",
                                      "ASYA_METRICS_ADDR", "ASYA_LOG_LEVEL"}));
  EXPECT_EQ(value(env, "ASYA_IS_END_ACTOR"), "true");
  EXPECT_EQ(value(env, "ASYA_RESULT_STORE"), "s3://bucket/results");
}

TEST(SidecarEnvironment, SocketPathAndUnsetLogLevelForAsyaUp) {
  auto o = host();
  o.socket_dir.clear();
  o.socket_path = "/state/run/worker-0/rt.sock";
  o.log_level.reset();
  o.transport_settings.clear();
  const auto env = sidecar_environment(load_one(""), o);
  EXPECT_EQ(value(env, "ASYA_SOCKET_PATH"), "/state/run/worker-0/rt.sock");
  EXPECT_EQ(find_variable(env, "ASYA_SOCKET_DIR"), nullptr);
  EXPECT_EQ(find_variable(env, "ASYA_LOG_LEVEL"), nullptr);
}

TEST(SidecarEnvironment, EverySetNameOutsideHostDefaultsIsOwned) {
  auto o = host();
  o.gateway_url = "http://gw";
  o.gateway_internal_token = std::string("t");
  const auto& owned = sidecar_environment_owned_names();
  const auto env =
      sidecar_environment(load_one("  retry: {maxAttempts: 2, retryOn: [processing_error]}\n"), o);
  for (const auto& v : env) {
    const bool host_default = v.name == "ASYA_LOG_LEVEL" || v.name == "ASYA_RABBITMQ_URL";
    EXPECT_EQ(std::find(owned.begin(), owned.end(), v.name) != owned.end(), !host_default)
        << v.name;
  }
}

}  // namespace
}  // namespace asya::manifest
