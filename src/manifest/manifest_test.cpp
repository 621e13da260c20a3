#include "manifest/manifest.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace asya::manifest {
namespace {

using namespace std::chrono_literals;

// A valid manifest with `spec_extra` appended under spec (indented by 2).
std::string actor_yaml(const std::string& name, const std::string& spec_extra = "",
                       const std::string& env_extra = "") {
  return "apiVersion: asya.sh/v1alpha1\n"
         "kind: AsyncActor\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "spec:\n" +
         spec_extra +
         "  workload:\n"
         "    template:\n"
         "      spec:\n"
         "        containers:\n"
         "        - name: asya-runtime\n"
         "          env:\n"
         "          - {name: ASYA_HANDLER, value: mod.fn}\n" +
         env_extra;
}

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.errors) out.push_back(d.str());
  return out;
}

TEST(Manifest, FullExampleIsReadIntoTheModel) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: text-classifier}
spec:
  transport: sqlite
  scaling: {enabled: true, minReplicas: 1, maxReplicas: 8, queueLength: 5, pollingInterval: 2,
            cooldownPeriod: 500ms, activationQueueLength: 3}
  timeout: {processing: 300, gracefulShutdown: 10s}
  retry: {maxAttempts: 3, backoff: 2s, backoffMax: 1m, retryOn: [processing_error]}
  workload:
    template:
      spec:
        nodeSelector: {gpu: "true"}
        containers:
        - name: asya-runtime
          image: my-classifier:latest
          workingDir: handlers
          resources: {limits: {cpu: "1"}}
          env:
          - {name: ASYA_HANDLER, value: classifier.TextClassifier.process}
          - {name: ASYA_HANDLER_MODE, value: envelope}
          - {name: MODEL, value: "5"}
          - name: TOKEN
            valueFrom: {secretKeyRef: {name: s, key: k}}
)",
                     "a.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.actors.size(), 1u);
  const Actor& a = r.actors[0];
  EXPECT_EQ(a.name, "text-classifier");
  EXPECT_EQ(a.file, "a.yaml");
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.transport, "sqlite");
  EXPECT_TRUE(a.scaling.enabled);
  EXPECT_EQ(a.scaling.min_replicas, 1);
  EXPECT_EQ(a.scaling.max_replicas, 8);
  EXPECT_EQ(a.scaling.queue_length, 5);
  EXPECT_EQ(a.scaling.activation_queue_length, 3);
  EXPECT_EQ(a.scaling.polling_interval, 2s);
  EXPECT_EQ(a.scaling.cooldown_period, 500ms);
  EXPECT_EQ(a.timeout.processing, 300s);
  EXPECT_EQ(a.timeout.graceful_shutdown, 10s);
  EXPECT_EQ(a.retry.max_attempts, 3);
  EXPECT_EQ(a.retry.backoff, 2s);
  EXPECT_EQ(a.retry.backoff_max, 60s);
  EXPECT_TRUE(a.retry.retries_processing_errors());
  EXPECT_EQ(a.handler_mode, "envelope");
  EXPECT_EQ(a.runtime().image, "my-classifier:latest");
  EXPECT_EQ(a.runtime().working_dir, "handlers");
  EXPECT_EQ(a.runtime().env_value("MODEL"), "5");
  EXPECT_EQ(a.runtime().env.size(), 4u);
  EXPECT_EQ(a.runtime().env[3].value_from_yaml, "{secretKeyRef: {name: s, key: k}}");
  EXPECT_EQ(a.runtime().kubernetes_extra_yaml, "{resources: {limits: {cpu: \"1\"}}}");
  EXPECT_EQ(a.pod_extra_yaml, "{nodeSelector: {gpu: \"true\"}}");
}

TEST(Manifest, DefaultsWhenOnlyTheHandlerIsGiven) {
  auto r = load_text(actor_yaml("hello"), "h.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const Actor& a = r.actors.at(0);
  EXPECT_EQ(a.transport, "sqlite");
  EXPECT_EQ(a.replicas, 1);
  EXPECT_EQ(a.scaling.min_replicas, 0);
  EXPECT_EQ(a.scaling.max_replicas, 10);
  EXPECT_EQ(a.scaling.queue_length, 5);
  EXPECT_EQ(a.scaling.polling_interval, 10s);
  EXPECT_EQ(a.scaling.cooldown_period, 60s);
  EXPECT_EQ(a.timeout.processing, 300s);
  EXPECT_EQ(a.retry.max_attempts, 1);
  EXPECT_FALSE(a.retry.retries_processing_errors());
  EXPECT_EQ(a.handler_mode, "payload");
  EXPECT_TRUE(a.runtime().command.empty());
}

TEST(Manifest, MultiDocumentFileSkipsOtherKinds) {
  auto r = load_text(actor_yaml("a") +
                         "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" +
                         actor_yaml("b"),
                     "m.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.actors.size(), 2u);
  EXPECT_EQ(r.actors[1].name, "b");
  EXPECT_EQ(r.actors[1].line, 18);
}

TEST(Manifest, UnknownFieldNamesTheFieldAndTheAllowedOnes) {
  auto r = load_text(actor_yaml("a", "  scaling: {maxReplica: 3}\n"), "u.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "u.yaml:6: spec.scaling.maxReplica: unknown field; allowed here: "
                             "enabled, minReplicas, maxReplicas, queueLength, pollingInterval, "
                             "cooldownPeriod, activationQueueLength"});
}

TEST(Manifest, WrongTypeShowsTheValue) {
  auto r = load_text(actor_yaml("a", "  replicas: three\n  scaling: {enabled: maybe}\n"), "t.yaml");
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "t.yaml:6: spec.replicas: expected an integer, got \"three\"",
                "t.yaml:7: spec.scaling.enabled: expected true or false, got \"maybe\""}));
}

TEST(Manifest, QuotedNumberIsAString) {
  auto r = load_text(actor_yaml("a", "  replicas: \"3\"\n"), "q.yaml");
  EXPECT_EQ(messages(r),
            std::vector<std::string>{"q.yaml:6: spec.replicas: expected an integer, got \"3\""});
}

TEST(Manifest, NegativeReplicas) {
  auto r = load_text(actor_yaml("a", "  replicas: -1\n  scaling: {minReplicas: -2}\n"), "n.yaml");
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "n.yaml:6: spec.replicas: -1 is negative; use an integer from 0 to 1000",
                "n.yaml:7: spec.scaling.minReplicas: -2 is negative; use an integer from 0 to "
                "1000"}));
}

TEST(Manifest, MinGreaterThanMax) {
  auto r =
      load_text(actor_yaml("a", "  scaling:\n    minReplicas: 5\n    maxReplicas: 2\n"), "mm.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "mm.yaml:7: spec.scaling.minReplicas: 5 is greater than maxReplicas "
                             "(2); use minReplicas <= maxReplicas"});
}

TEST(Manifest, ReservedNames) {
  auto r = load_text(actor_yaml("happy-end") + "---\n" + actor_yaml("error-end"), "r.yaml");
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "r.yaml:4: metadata.name: \"happy-end\" is reserved for the end actor that asya "
                "starts itself; choose another name",
                "r.yaml:17: metadata.name: \"error-end\" is reserved for the end actor that asya "
                "starts itself; choose another name"}));
}

TEST(Manifest, InvalidActorName) {
  auto r = load_text(actor_yaml("Text_Classifier"), "i.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "i.yaml:4: metadata.name: \"Text_Classifier\" is not a valid actor "
                             "name; use lowercase letters, digits and '-', starting and ending "
                             "with a letter or digit, at most 63 characters"});
}

TEST(Manifest, DuplicateActorAcrossDocuments) {
  auto r = load_text(actor_yaml("dup") + "---\n" + actor_yaml("dup"), "d.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "d.yaml:14: metadata.name: actor \"dup\" is already defined at "
                             "d.yaml:1; each actor name must be unique"});
}

TEST(Manifest, BadEnvVars) {
  auto r = load_text(actor_yaml("a", "",
                                "          - {name: 1BAD, value: x}\n"
                                "          - {name: ASYA_HANDLER, value: other.fn}\n"
                                "          - {name: LIST, value: [1, 2]}\n"
                                "          - {value: nameless}\n"),
                     "e.yaml");
  const std::string f = "spec.workload.template.spec.containers[0].env";
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "e.yaml:13: " + f +
                    "[1].name: \"1BAD\" is not a valid environment variable name; use letters, "
                    "digits and '_', not starting with a digit",
                "e.yaml:14: " + f +
                    "[2].name: \"ASYA_HANDLER\" is set twice (first at line 12); set each "
                    "variable once",
                "e.yaml:15: " + f +
                    "[3].value: expected a string, got a list; quote it if it is "
                    "meant as text",
                "e.yaml:16: " + f + "[4].name: missing; every env entry needs a name"}));
}

TEST(Manifest, MissingHandlerAndBadMode) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: a}
spec:
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          env: [{name: ASYA_HANDLER_MODE, value: batch}]
)",
                     "h.yaml");
  const std::string f = "spec.workload.template.spec.containers[0]";
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "h.yaml:10: " + f +
                    ".env.ASYA_HANDLER_MODE: \"batch\" is not a handler mode; use payload or "
                    "envelope",
                "h.yaml:9: " + f +
                    ".env: ASYA_HANDLER is missing; set it to module.function or "
                    "module.Class.method (or give the container a command)"}));
}

TEST(Manifest, AllMistakesOfAFileAreReported) {
  auto r = load_text(R"(apiVersion: asya.sh/v1
kind: AsyncActor
metadata: {name: ok}
spec:
  transport: kafka
  timeout: {processing: soon}
  retry: {maxAttempts: 0, retryOn: [everything]}
  workload: {template: {spec: {containers: []}}}
)",
                     "all.yaml");
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "all.yaml:1: apiVersion: \"asya.sh/v1\" is not supported; use asya.sh/v1alpha1",
                "all.yaml:5: spec.transport: \"kafka\" is not a transport; use one of sqlite, "
                "rabbitmq, sqs",
                "all.yaml:6: spec.timeout.processing: \"soon\" is not a duration; use a number of "
                "seconds (30) or a duration with a unit (500ms, 30s, 5m), at least 1ms",
                "all.yaml:7: spec.retry.maxAttempts: 0 is out of range; use an integer from 1 to "
                "1000",
                "all.yaml:7: spec.retry.retryOn[0]: \"everything\" is not a retryable failure; use "
                "runtime_timeout, processing_error",
                "all.yaml:8: spec.workload.template.spec.containers: expected a non-empty list of "
                "containers, got a list"}));
}

TEST(Manifest, YamlSyntaxErrorHasItsLine) {
  auto r =
      load_text("apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: [x\n", "s.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "s.yaml");
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].message.rfind("invalid YAML: ", 0), 0u) << r.errors[0].message;
}

// An actor whose runtime container's `resources` hold `levels` anchors, each a list of nine
// aliases of the one before: a few hundred bytes that expand to 9^levels nodes.
std::string alias_bomb_actor(int levels) {
  std::string resources = "          resources:\n            a0: &a0 [x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level < levels; ++level) {
    std::string name = "a", alias = "*a";
    name.append(std::to_string(level));
    alias.append(std::to_string(level - 1));
    resources.append("            ").append(name).append(": &").append(name).append(" [");
    for (int i = 0; i < 9; ++i) resources.append(i ? ", " : "").append(alias);
    resources.append("]\n");
  }
  return actor_yaml("bomb", "", resources);
}

TEST(Manifest, AliasBombIsRefusedWithFileLineAndLimit) {
  std::string text = alias_bomb_actor(9);
  ASSERT_LT(text.size(), 900u);
  auto r = load_text(text, "bomb.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << r.error_text();
  EXPECT_EQ(r.errors[0].file, "bomb.yaml");
  EXPECT_GT(r.errors[0].line, 13);
  EXPECT_NE(r.errors[0].str().find("YAML aliases expand to more than 100000 nodes"),
            std::string::npos)
      << r.error_text();
  EXPECT_TRUE(r.actors.empty());
  // A few aliases are fine and expand into the kept Kubernetes fields.
  r = load_text(alias_bomb_actor(2), "fine.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_NE(r.actors[0].containers[0].kubernetes_extra_yaml.find("a1: [[x, x"), std::string::npos)
      << r.actors[0].containers[0].kubernetes_extra_yaml;
}

TEST(Manifest, DeepNestingSaysSoWithDepthLimitAndLine) {
  std::string deep = std::string(200, '[') + std::string(200, ']');
  auto r = load_text(actor_yaml("deep", "", "          resources: {limits: " + deep + "}\n"),
                     "deep.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << r.error_text();
  EXPECT_EQ(r.errors[0].str(),
            "deep.yaml:13: nested too deeply: depth 101 exceeds the limit of 100 mappings and "
            "lists inside each other");
}

TEST(Manifest, SeveralContainersNeedOneNamedAsyaRuntime) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: a}
spec:
  workload:
    template:
      spec:
        containers:
        - {name: one, command: [x]}
        - {name: two, command: [y]}
)",
                     "c.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "c.yaml:9: spec.workload.template.spec.containers: 2 containers and "
                             "none is named asya-runtime; name the runtime container "
                             "asya-runtime"});
}

TEST(Manifest, CommandMakesHandlerOptional) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: cpp}
spec:
  workload: {template: {spec: {containers: [{name: asya-runtime, command: [./echo], args: [-v]}]}}}
)",
                     "cmd.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors[0].runtime().command, std::vector<std::string>{"./echo"});
  EXPECT_EQ(r.actors[0].runtime().args, std::vector<std::string>{"-v"});
}

TEST(Manifest, WorkloadKindAndPodTemplateMetadataAreKept) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: s}
spec:
  workload:
    kind: StatefulSet
    template:
      metadata:
        labels: {team: nlp, gpu: "true", tier: '5'}
        annotations: {note: plain}
      spec:
        containers: [{name: asya-runtime, env: [{name: ASYA_HANDLER, value: m.f}]}]
)",
                     "k.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors[0].workload_kind, "StatefulSet");
  EXPECT_EQ(r.actors[0].pod_metadata_yaml,
            "{labels: {team: nlp, gpu: \"true\", tier: \"5\"}, annotations: {note: plain}}");
  auto d = load_text(actor_yaml("d"), "d.yaml");
  ASSERT_TRUE(d.ok()) << d.error_text();
  EXPECT_EQ(d.actors[0].workload_kind, "Deployment");
  EXPECT_EQ(d.actors[0].pod_metadata_yaml, "");
}

TEST(Manifest, WorkloadKindAndTemplateMetadataMistakes) {
  auto r = load_text(R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: s}
spec:
  workload:
    kind: DaemonSet
    template:
      metadata: {labels: {a: [1]}, name: x}
      spec:
        containers: [{name: asya-runtime, env: [{name: ASYA_HANDLER, value: m.f}]}]
)",
                     "k.yaml");
  EXPECT_EQ(messages(r),
            (std::vector<std::string>{
                "k.yaml:6: spec.workload.kind: \"DaemonSet\" is not supported; use Deployment or "
                "StatefulSet",
                "k.yaml:8: spec.workload.template.metadata.name: unknown field; allowed here: "
                "labels, annotations",
                "k.yaml:8: spec.workload.template.metadata.labels.a: expected a string, got a "
                "list"}));
}

TEST(Manifest, QuotedScalarsStayQuotedInKeptYaml) {
  auto r = load_text(actor_yaml("q", "",
                                "          - name: T\n"
                                "            valueFrom: {secretKeyRef: {name: \"123\", key: 'yes', "
                                "optional: true}}\n"),
                     "q.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors[0].runtime().env[1].value_from_yaml,
            "{secretKeyRef: {name: \"123\", key: \"yes\", optional: true}}");
}

TEST(Manifest, DurationsAcceptIntegerSecondsAndStrings) {
  auto r = load_text(actor_yaml("t",
                                "  timeout: {processing: 300, gracefulShutdown: \"5m\"}\n"
                                "  retry: {maxAttempts: 2, backoff: 2, backoffMax: 1m30s}\n"),
                     "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors[0].timeout.processing, 300s);
  EXPECT_EQ(r.actors[0].timeout.graceful_shutdown, 300s);
  EXPECT_EQ(r.actors[0].retry.backoff, 2s);
  EXPECT_EQ(r.actors[0].retry.backoff_max, 90s);
}

TEST(Manifest, DocumentsThatAreNotResourcesAreSkipped) {
  auto r = load_text("tools: [{name: x}]\n---\n" + actor_yaml("a"), "m.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors.size(), 1u);
}

TEST(Manifest, TypoedKindOfOurApiIsAnError) {
  std::string text = actor_yaml("a");
  text.replace(text.find("AsyncActor"), 10, "AsyncActr");
  auto r = load_text(text + "---\n" + actor_yaml("b"), "typo.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "typo.yaml:2: kind: \"AsyncActr\" is not a kind of asya.sh/v1alpha1; "
                             "use AsyncActor"});
}

TEST(Manifest, ResourceWithoutKindIsAnError) {
  auto r = load_text("metadata: {name: a}\nspec: {}\n", "nokind.yaml");
  EXPECT_EQ(messages(r), std::vector<std::string>{
                             "nokind.yaml:1: kind: missing; an Asya manifest document needs "
                             "kind: AsyncActor"});
}

TEST(Manifest, SidecarSettings) {
  auto r = load_text(actor_yaml("s", "  sidecar: {concurrency: 4, maxDeliveries: 3}\n"), "s.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.actors[0].sidecar.concurrency, 4);
  EXPECT_EQ(r.actors[0].sidecar.max_deliveries, 3);
  auto d = load_text(actor_yaml("d"), "d.yaml");
  EXPECT_FALSE(d.actors.at(0).sidecar.concurrency.has_value());
  EXPECT_FALSE(d.actors.at(0).sidecar.max_deliveries.has_value());
  auto bad = load_text(
      actor_yaml("b", "  sidecar: {concurrency: 0, maxDeliveries: x, threads: 2}\n"), "b.yaml");
  EXPECT_EQ(messages(bad),
            (std::vector<std::string>{
                "b.yaml:6: spec.sidecar.threads: unknown field; allowed here: concurrency, "
                "maxDeliveries",
                "b.yaml:6: spec.sidecar.concurrency: 0 is out of range; use an integer from 1 to "
                "1024",
                "b.yaml:6: spec.sidecar.maxDeliveries: expected an integer, got \"x\""}));
}

TEST(Manifest, BatchingIsReadWithItsDefaultWait) {
  auto r = load_text(actor_yaml("b", "  batching: {maxSize: 32, maxWait: 15ms}\n"), "b.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.actors[0].batching.has_value());
  EXPECT_EQ(r.actors[0].batching->max_size, 32);
  EXPECT_EQ(r.actors[0].batching->max_wait, 15ms);
  auto d = load_text(actor_yaml("d", "  batching: {maxSize: 4096}\n"), "d.yaml");
  ASSERT_TRUE(d.ok()) << d.error_text();
  EXPECT_EQ(d.actors[0].batching->max_wait, 10ms);
  EXPECT_FALSE(load_text(actor_yaml("u"), "u.yaml").actors.at(0).batching.has_value());
}

TEST(Manifest, BatchingMistakesNameFileLineFieldAndWhatIsAllowed) {
  auto big = load_text(actor_yaml("b", "  batching: {maxSize: 5000, size: 2}\n"), "b.yaml");
  EXPECT_EQ(messages(big),
            (std::vector<std::string>{
                "b.yaml:6: spec.batching.size: unknown field; allowed here: maxSize, maxWait",
                "b.yaml:6: spec.batching.maxSize: 5000 is out of range; use an integer from 1 to "
                "4096"}));
  auto missing = load_text(actor_yaml("m", "  batching: {maxWait: 5ms}\n"), "m.yaml");
  ASSERT_EQ(messages(missing).size(), 1u);
  EXPECT_EQ(messages(missing)[0],
            "m.yaml:6: spec.batching.maxSize: missing; give the largest batch the handler "
            "takes, 1 to 4096");
  auto zero = load_text(actor_yaml("z", "  batching: {maxSize: 0}\n"), "z.yaml");
  ASSERT_EQ(messages(zero).size(), 1u);
  EXPECT_NE(messages(zero)[0].find("spec.batching.maxSize: 0 is out of range"), std::string::npos);
  auto slow = load_text(actor_yaml("s",
                                   "  timeout: {processing: 2s}\n"
                                   "  batching:\n"
                                   "    maxSize: 8\n"
                                   "    maxWait: 3s\n"),
                        "s.yaml");
  EXPECT_EQ(messages(slow),
            (std::vector<std::string>{
                "s.yaml:9: spec.batching.maxWait: 3s is longer than spec.timeout.processing "
                "(2s); use a wait no longer than the processing timeout (typically a few "
                "milliseconds)"}));
  auto word = load_text(actor_yaml("w", "  batching: {maxSize: 8, maxWait: soon}\n"), "w.yaml");
  ASSERT_EQ(messages(word).size(), 1u);
  EXPECT_NE(messages(word)[0].find("w.yaml:6: spec.batching.maxWait"), std::string::npos);
}

TEST(Manifest, IsolationNetworkNoneOrDefault) {
  auto none = load_text(actor_yaml("n", "  isolation: {network: none}\n"), "n.yaml");
  ASSERT_TRUE(none.ok()) << none.error_text();
  EXPECT_EQ(none.actors[0].isolation.network, RuntimeNetwork::kNone);
  auto given = load_text(actor_yaml("g", "  isolation: {network: default}\n"), "g.yaml");
  ASSERT_TRUE(given.ok()) << given.error_text();
  EXPECT_EQ(given.actors[0].isolation.network, RuntimeNetwork::kDefault);
  auto unset = load_text(actor_yaml("u"), "u.yaml");
  EXPECT_EQ(unset.actors.at(0).isolation.network, RuntimeNetwork::kDefault);
}

TEST(Manifest, IsolationMistakesNameTheFieldAndTheAllowedValues) {
  auto bad = load_text(actor_yaml("b",
                                  "  isolation:\n"
                                  "    network: bridge\n"
                                  "    filesystem: none\n"),
                       "b.yaml");
  EXPECT_EQ(messages(bad), (std::vector<std::string>{
                               "b.yaml:8: spec.isolation.filesystem: unknown field; allowed here: "
                               "network",
                               "b.yaml:7: spec.isolation.network: \"bridge\" is not a network "
                               "isolation; use one of default, none (none: the runtime reaches "
                               "nothing but its socket)"}));
  auto scalar = load_text(actor_yaml("s", "  isolation: none\n"), "s.yaml");
  EXPECT_EQ(
      messages(scalar),
      (std::vector<std::string>{"s.yaml:6: spec.isolation: expected a mapping, got \"none\""}));
}

class ManifestFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("asya-manifest-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "sub");
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  std::filesystem::path dir;
};

TEST_F(ManifestFiles, DirectoryIsReadRecursivelyInSortedOrder) {
  write("b.yaml", actor_yaml("beta"));
  write("a.yml", actor_yaml("alpha"));
  write("sub/c.yaml", actor_yaml("gamma"));
  write("notes.txt", "not yaml: [");
  auto r = load_paths({dir.string()});
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.actors.size(), 3u);
  EXPECT_EQ(r.actors[0].name, "alpha");
  EXPECT_EQ(r.actors[1].name, "beta");
  EXPECT_EQ(r.actors[2].name, "gamma");
}

TEST_F(ManifestFiles, DuplicateAcrossFilesNamesBothPlaces) {
  write("a.yaml", actor_yaml("same"));
  write("b.yaml", actor_yaml("same"));
  auto r = load_paths({dir.string()});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(),
            (dir / "b.yaml").string() + ":1: metadata.name: actor \"same\" is already defined at " +
                (dir / "a.yaml").string() + ":1; each actor name must be unique");
}

TEST_F(ManifestFiles, MissingPathAndEmptyDirectory) {
  std::filesystem::create_directories(dir / "empty");
  auto r = load_paths({(dir / "nope").string(), (dir / "empty").string()});
  EXPECT_EQ(messages(r), (std::vector<std::string>{
                             (dir / "nope").string() +
                                 ": no such file or directory; give manifest files or directories",
                             (dir / "empty").string() +
                                 ": no AsyncActor resource found in any *.yaml or *.yml file"}));
}

TEST_F(ManifestFiles, RoutesFilesOfADirectoryAreSkipped) {
  write("hello.yaml", actor_yaml("hello"));
  write("routes.yaml", "tools:\n- name: hello\n  route: [hello]\n");
  write("sub/routes.yml", "tools: []\n");
  auto r = load_paths({dir.string()});
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.actors.size(), 1u);
  EXPECT_TRUE(is_routes_file((dir / "routes.yaml").string()));
  EXPECT_TRUE(is_routes_file("routes.yml"));
  EXPECT_FALSE(is_routes_file("my-routes.yaml"));
}

}  // namespace
}  // namespace asya::manifest
