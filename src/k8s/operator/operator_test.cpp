// Unit tests of the operator's pure parts; tests/k8s/test_operator.py runs the binary against a
// fake API server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <boost/json.hpp>

#include "k8s/operator/kube_client.hpp"
#include "k8s/operator/reconciler.hpp"

namespace asya::k8s::op {
namespace {
namespace json = boost::json;

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("asya-operator-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(KubeconfigTest, ReadsServerTokenCaDataAndNamespaceOfCurrentContext) {
  TempDir dir;
  // "-----BEGIN" in base64.
  const auto path = dir.write("config", R"(apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: other
  context: {cluster: c2, user: u2}
- name: dev
  context: {cluster: c1, user: u1, namespace: team}
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTg==
- name: c2
  cluster: {server: https://other, insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: abc, client-key: keys/k.pem}
- name: u2
  user: {tokenFile: /t}
)");
  auto config = kubeconfig_config(path);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  EXPECT_EQ(config->token, "abc");
  EXPECT_EQ(config->ca_data, "-----BEGIN");
  EXPECT_EQ(config->default_namespace, "team");
  EXPECT_FALSE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->client_key_file, (dir.path() / "keys/k.pem").string());

  auto other = kubeconfig_config(path, "other");
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_EQ(other->server, "https://other");
  EXPECT_TRUE(other->insecure_skip_tls_verify);
  EXPECT_EQ(other->token_file, "/t");
}

TEST(KubeconfigTest, UnknownContextAndExecPluginAreClearErrors) {
  TempDir dir;
  const auto path = dir.write("config", R"(current-context: dev
contexts: [{name: dev, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: https://x}}]
users: [{name: u, user: {exec: {command: aws}}}]
)");
  auto missing = kubeconfig_config(path, "prod");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("context \"prod\" not found"), std::string::npos)
      << missing.error().message;
  auto exec = kubeconfig_config(path);
  ASSERT_FALSE(exec.ok());
  EXPECT_NE(exec.error().message.find("exec or auth-provider plugin"), std::string::npos)
      << exec.error().message;
  auto absent = kubeconfig_config((dir.path() / "nope").string());
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.error().message.find("cannot read"), std::string::npos);
}

TEST(InClusterTest, FailsOutsideAPodNamingTheVariables) {
  auto config = in_cluster_config("/nonexistent", environment_with({}, [](std::string_view) {
                                    return std::optional<std::string>{};
                                  }));
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

TEST(InClusterTest, ReadsTokenFileCaAndNamespaceFromServiceAccountDir) {
  TempDir dir;
  dir.write("token", "tok\n");
  dir.write("ca.crt", "pem");
  dir.write("namespace", "asya\n");
  auto config = in_cluster_config(dir.path().string(),
                                  environment_with({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                                    {"KUBERNETES_SERVICE_PORT", "443"}}));
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token_file, (dir.path() / "token").string());
  EXPECT_EQ(config->ca_file, (dir.path() / "ca.crt").string());
  EXPECT_EQ(config->default_namespace, "asya");
}

TEST(ObjectPathTest, CoreAndNamedGroups) {
  EXPECT_EQ(object_path("v1", "ServiceAccount", "ns", "a"),
            "/api/v1/namespaces/ns/serviceaccounts/a");
  EXPECT_EQ(object_path("apps/v1", "StatefulSet", "ns", "a"),
            "/apis/apps/v1/namespaces/ns/statefulsets/a");
  EXPECT_EQ(object_path("keda.sh/v1alpha1", "ScaledObject", "ns", "a"),
            "/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/a");
  EXPECT_EQ(object_path("networking.k8s.io/v1", "NetworkPolicy", "ns", "a-egress"),
            "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/a-egress");
}

json::object actor_object(json::value spec) {
  return json::object{{"apiVersion", "asya.sh/v1alpha1"},
                      {"kind", "AsyncActor"},
                      {"metadata",
                       {{"name", "echo"},
                        {"namespace", "team"},
                        {"uid", "u-1"},
                        {"resourceVersion", "7"},
                        {"generation", 2},
                        {"managedFields", json::array{}},
                        {"finalizers", json::array{"asya.sh/finalizer"}}}},
                      {"spec", std::move(spec)},
                      {"status", {{"observedGeneration", 1}}}};
}

TEST(ActorFromObjectTest, ApiObjectWithServerFieldsBecomesTheModel) {
  auto spec = json::parse(R"({"transport":"rabbitmq","scaling":{"minReplicas":1,"maxReplicas":3},
    "timeout":{"processing":"30s"},
    "workload":{"template":{"spec":{"containers":[{"name":"asya-runtime","image":"py:3",
      "env":[{"name":"ASYA_HANDLER","value":"h.process"}]}]}}}})");
  auto actor = actor_from_object(actor_object(spec));
  ASSERT_TRUE(actor.ok()) << actor.error().message;
  EXPECT_EQ(actor->name, "echo");
  EXPECT_EQ(actor->transport, "rabbitmq");
  EXPECT_EQ(actor->scaling.min_replicas, 1);
  EXPECT_EQ(actor->scaling.max_replicas, 3);
  EXPECT_EQ(actor->timeout.processing, std::chrono::seconds(30));
  EXPECT_EQ(actor->runtime().image, "py:3");
}

TEST(ActorFromObjectTest, InvalidSpecListsFieldAndMessageWithoutLineNumbers) {
  auto spec = json::parse(R"({"scaling":{"minReplicas":-1},
    "workload":{"template":{"spec":{"containers":[{"name":"r","image":"py:3",
      "env":[{"name":"ASYA_HANDLER","value":"h.process"}]}]}}}})");
  auto actor = actor_from_object(actor_object(spec));
  ASSERT_FALSE(actor.ok());
  EXPECT_EQ(actor.error().message.rfind("spec.scaling.minReplicas: ", 0), 0u)
      << actor.error().message;
}

}  // namespace
}  // namespace asya::k8s::op
