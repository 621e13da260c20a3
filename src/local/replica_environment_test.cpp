#include "local/replica_environment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace asya::local {
namespace {

manifest::Actor load_one(const std::string& spec_extra) {
  auto r = manifest::load_text(
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: worker}\nspec:\n" +
          spec_extra +
          "  workload:\n    template:\n      spec:\n        containers:\n"
          "        - name: asya-runtime\n          env:\n"
          "          - {name: ASYA_HANDLER, value: mod.fn}\n",
      "worker.yaml");
  EXPECT_TRUE(r.ok()) << r.error_text();
  return r.actors.at(0);
}

SupervisorOptions supervisor(bool gateway) {
  SupervisorOptions o;
  o.paths = StatePaths("/state");
  o.transport = "sqlite";
  if (gateway) {
    o.routes_file = "/work/routes.yaml";
    o.gateway_port = 8123;
  }
  return o;
}

// NAME -> every value it has in `env`, in order (a duplicate would be a bug: getenv sees the
// first).
std::map<std::string, std::vector<std::string>> by_name(const std::vector<std::string>& env) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& e : env) out[e.substr(0, e.find('='))].push_back(e.substr(e.find('=') + 1));
  return out;
}

TEST(ReplicaEnvironment, ManifestDecidesOverTheInheritedEnvironment) {
  const std::vector<std::string> inherited{
      "PATH=/usr/bin",          "ASYA_LOG_LEVEL=debug",          "ASYA_RETRY_MAX_ATTEMPTS=7",
      "ASYA_CONCURRENCY=3",     "ASYA_SOCKET_DIR=/elsewhere",    "ASYA_RUNTIME_TIMEOUT=1s",
      "ASYA_SQLITE_PATH=/q.db", "ASYA_GATEWAY_URL=http://other", "ASYA_ACTOR_NAME=someone"};
  ReplicaSidecar replica{false, "/state/run/worker-0/rt.sock", 41000};
  auto env = replica_sidecar_environment(load_one("  sidecar: {maxDeliveries: 9}\n"), replica,
                                         supervisor(false), "asya-", inherited);
  ASSERT_TRUE(env.ok()) << env.error().message;
  auto vars = by_name(*env);
  for (const auto& [name, values] : vars) EXPECT_EQ(values.size(), 1u) << name;
  // Inherited host settings stay.
  EXPECT_EQ(vars["PATH"][0], "/usr/bin");
  EXPECT_EQ(vars["ASYA_LOG_LEVEL"][0], "debug");
  EXPECT_EQ(vars["ASYA_SQLITE_PATH"][0], "/q.db");
  EXPECT_EQ(vars["ASYA_CONCURRENCY"][0], "3");  // the manifest sets none
  // What the manifest and the supervisor decide replaces the shell's values.
  EXPECT_EQ(vars["ASYA_ACTOR_NAME"][0], "worker");
  EXPECT_EQ(vars["ASYA_SOCKET_PATH"][0], "/state/run/worker-0/rt.sock");
  EXPECT_EQ(vars["ASYA_RUNTIME_TIMEOUT"][0], "5m");
  EXPECT_EQ(vars["ASYA_MAX_DELIVERIES"][0], "9");
  EXPECT_EQ(vars["ASYA_METRICS_ADDR"][0], "127.0.0.1:41000");
  EXPECT_EQ(vars["ASYA_TRANSPORT"][0], "sqlite");
  EXPECT_EQ(vars["ASYA_QUEUE_PREFIX"][0], "asya-");
  EXPECT_FALSE(vars.count("ASYA_SOCKET_DIR"));
  EXPECT_FALSE(vars.count("ASYA_RETRY_MAX_ATTEMPTS"));  // no retries in the manifest
  EXPECT_FALSE(vars.count("ASYA_GATEWAY_URL"));         // no gateway in this run
}

TEST(ReplicaEnvironment, ManifestConcurrencyWinsOverTheInheritedOne) {
  ReplicaSidecar replica{false, "/state/run/worker-0/rt.sock", 41000};
  auto env = replica_sidecar_environment(load_one("  sidecar: {concurrency: 16}\n"), replica,
                                         supervisor(false), "asya-", {"ASYA_CONCURRENCY=3"});
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(by_name(*env)["ASYA_CONCURRENCY"], std::vector<std::string>{"16"});
}

TEST(ReplicaEnvironment, GatewayRunsPassTheirLatestInternalTokenAsValue) {
  ReplicaSidecar replica{false, "/state/run/worker-0/rt.sock", 41000};
  // The supervisor appends a generated token after an inherited empty one.
  auto env = replica_sidecar_environment(
      load_one(""), replica, supervisor(true), "asya-",
      {"ASYA_GATEWAY_INTERNAL_TOKEN=", "ASYA_GATEWAY_INTERNAL_TOKEN=generated"});
  ASSERT_TRUE(env.ok());
  auto vars = by_name(*env);
  // The gateway's Unix socket in the state directory (asya-gateway's ASYA_GATEWAY_SOCKET).
  EXPECT_EQ(vars["ASYA_GATEWAY_URL"], std::vector<std::string>{"unix:/state/gateway.sock"});
  EXPECT_EQ(vars["ASYA_GATEWAY_INTERNAL_TOKEN"], std::vector<std::string>{"generated"});

  auto without = replica_sidecar_environment(load_one(""), replica, supervisor(true), "asya-", {});
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(by_name(*without).count("ASYA_GATEWAY_INTERNAL_TOKEN"));
}

// A state directory whose socket path would not fit a Unix socket address: TCP.
TEST(ReplicaEnvironment, ALongStatePathReachesTheGatewayOverTcp) {
  ReplicaSidecar replica{false, "/state/run/worker-0/rt.sock", 41000};
  SupervisorOptions options = supervisor(true);
  options.paths = StatePaths("/" + std::string(100, 's'));
  EXPECT_EQ(options.gateway_socket(), "");
  auto env = replica_sidecar_environment(load_one(""), replica, options, "asya-", {});
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(by_name(*env)["ASYA_GATEWAY_URL"], std::vector<std::string>{"http://127.0.0.1:8123"});
}

TEST(ReplicaEnvironment, EndActorsWriteIntoTheirResultDirectory) {
  manifest::Actor happy;
  happy.name = "happy-end";
  manifest::Actor error;
  error.name = "error-end";
  ReplicaSidecar replica{true, "/state/run/happy-end-0/rt.sock", 41001};
  auto h = replica_sidecar_environment(happy, replica, supervisor(false), "asya-", {});
  auto e = replica_sidecar_environment(error, replica, supervisor(false), "asya-", {});
  ASSERT_TRUE(h.ok() && e.ok());
  EXPECT_EQ(by_name(*h)["ASYA_RESULT_STORE"][0], "file:///state/results/succeeded");
  EXPECT_EQ(by_name(*e)["ASYA_RESULT_STORE"][0], "file:///state/results/failed");
  EXPECT_EQ(by_name(*h)["ASYA_IS_END_ACTOR"][0], "true");
  EXPECT_FALSE(by_name(*h).count("ASYA_SOCKET_PATH"));
  EXPECT_FALSE(by_name(*h).count("ASYA_RUNTIME_TIMEOUT"));
}

TEST(RuntimeEnvironment, OnlyBasicsTheManifestsEnvAndTheSupervisorsSocket) {
  auto actor = load_one("");
  auto& env_list = actor.containers.at(actor.runtime_container).env;
  env_list.push_back({"MODEL", "small", ""});
  env_list.push_back({"ASYA_SOCKET_PATH", "/mine.sock", ""});  // the supervisor owns the socket
  auto env =
      runtime_environment(actor, "/state/run/worker-0/rt.sock",
                          {"PATH=/usr/bin", "HOME=/root", "PATH=/second",
                           "ASYA_RABBITMQ_URL=amqp://secret@broker", "AWS_SECRET_ACCESS_KEY=s"});
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(*env, (std::vector<std::string>{
                      "PATH=/usr/bin", "HOME=/root", "ASYA_HANDLER=mod.fn", "MODEL=small",
                      "ASYA_SOCKET_PATH=/state/run/worker-0/rt.sock",
                      "ASYA_SOCKET_DIR=/state/run/worker-0", "ASYA_SOCKET_NAME=rt.sock"}));
}

TEST(RuntimeEnvironment, BatchingMakesTheHandlerABatchHandlerOverTheContainersOwnValue) {
  auto actor = load_one("  batching: {maxSize: 8}\n");
  actor.containers.at(actor.runtime_container).env.push_back({"ASYA_HANDLER_BATCH", "false", ""});
  auto env = runtime_environment(actor, "/s/rt.sock", {});
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(by_name(*env)["ASYA_HANDLER_BATCH"], std::vector<std::string>{"true"});
  auto sidecar = replica_sidecar_environment(actor, ReplicaSidecar{false, "/s/rt.sock", 9000},
                                             supervisor(false), "asya-",
                                             {"ASYA_BATCH_MAX_SIZE=99", "ASYA_BATCH_MAX_WAIT=1s"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.error().message;
  EXPECT_EQ(by_name(*sidecar)["ASYA_BATCH_MAX_SIZE"], std::vector<std::string>{"8"});
  EXPECT_EQ(by_name(*sidecar)["ASYA_BATCH_MAX_WAIT"], std::vector<std::string>{"10ms"});
}

TEST(RuntimeEnvironment, ValueFromIsRefusedNamingTheVariable) {
  auto actor = load_one("");
  actor.containers.at(actor.runtime_container).env.push_back({"TOKEN", "", "{secretKeyRef: x}"});
  auto env = runtime_environment(actor, "/s/rt.sock", {});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.error().message.find("worker: env TOKEN uses valueFrom"), std::string::npos);
}

TEST(RuntimeEnvironment, WorkingDirIsRelativeToTheManifestsFolder) {
  auto actor = load_one("");
  actor.file = "/projects/wc/./wc.yaml";
  EXPECT_EQ(runtime_working_dir(actor), "/projects/wc");
  actor.containers.at(actor.runtime_container).working_dir = "../handlers/";
  EXPECT_EQ(runtime_working_dir(actor), "/projects/handlers");
}

}  // namespace
}  // namespace asya::local
