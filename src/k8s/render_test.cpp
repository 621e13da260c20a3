#include "k8s/render.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "k8s/yaml_json.hpp"

namespace asya::k8s {
namespace {
namespace json = boost::json;

constexpr const char* kActor = R"(
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: classifier}
spec:
  transport: sqlite
  scaling: {enabled: true, minReplicas: 0, maxReplicas: 8, queueLength: 5,
            activationQueueLength: 2, pollingInterval: 15s, cooldownPeriod: 2m}
  timeout: {processing: 90, gracefulShutdown: 45}
  retry: {maxAttempts: 3, backoff: 2s, backoffMax: 30s, retryOn: [processing_error]}
  workload:
    template:
      spec:
        nodeSelector: {pool: cpu}
        containers:
        - name: asya-runtime
          image: my-classifier:1.2
          env:
          - {name: ASYA_HANDLER, value: classifier.TextClassifier.process}
          resources: {limits: {memory: 512Mi, cpu: 500m}}
)";

std::vector<manifest::Actor> load(const std::string& text) {
  auto loaded = manifest::load_text(text, "test.yaml");
  EXPECT_TRUE(loaded.ok()) << loaded.error_text();
  return loaded.actors;
}

RenderOptions cluster(std::string transport) {
  RenderOptions o;
  o.transport = std::move(transport);
  o.namespace_name = "ml";
  return o;
}

const json::object& find(const std::vector<json::object>& objects, std::string_view kind,
                         std::string_view name) {
  for (const auto& o : objects) {
    if (o.at("kind").as_string() == kind && o.at("metadata").at("name").as_string() == name) {
      return o;
    }
  }
  static const json::object none;
  ADD_FAILURE() << "no " << kind << "/" << name;
  return none;
}

json::object env_map(const json::value& container) {
  json::object out;
  for (const auto& e : container.at("env").as_array()) {
    const auto& var = e.as_object();
    out[var.at("name").as_string()] = var.contains("value") ? var.at("value") : var.at("valueFrom");
  }
  return out;
}

TEST(Render, DeploymentRunsTheRuntimeAndTheInjectedSidecarSharingTheSocket) {
  auto rendered = render(load(kActor), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& d = find(all, "Deployment", "classifier");
  EXPECT_EQ(d.at("metadata").at("namespace"), "ml");
  EXPECT_FALSE(d.at("spec").as_object().contains("replicas")) << "KEDA owns replicas";
  const auto& pod = d.at("spec").at("template").at("spec");
  // max(processing 90 s, gracefulShutdown 45 s) + 10 s: a replica stopped in the middle of a
  // message may finish it, then nack and exit, before the kubelet kills it.
  EXPECT_EQ(pod.at("terminationGracePeriodSeconds"), 100);
  EXPECT_EQ(pod.at("serviceAccountName"), "classifier");
  EXPECT_EQ(pod.at("nodeSelector"), json::parse(R"({"pool": "cpu"})"));
  const auto& containers = pod.at("containers").as_array();
  ASSERT_EQ(containers.size(), 2u);
  const auto& runtime = containers[0];
  EXPECT_EQ(runtime.at("name"), "asya-runtime");
  EXPECT_EQ(runtime.at("image"), "my-classifier:1.2");
  EXPECT_EQ(runtime.at("command"), json::parse(R"(["python3", "/opt/asya/asya_runtime.py"])"));
  EXPECT_EQ(runtime.at("resources"),
            json::parse(R"({"limits": {"memory": "512Mi", "cpu": "500m"}})"));
  EXPECT_EQ(env_map(runtime).at("ASYA_SOCKET_DIR"), "/var/run/asya");
  EXPECT_TRUE(runtime.as_object().contains("readinessProbe"));
  const auto& sidecar = containers[1];
  EXPECT_EQ(sidecar.at("name"), "asya-sidecar");
  EXPECT_EQ(sidecar.at("image"), "asya/asya-sidecar:0.1.0");
  const auto env = env_map(sidecar);
  EXPECT_EQ(env.at("ASYA_ACTOR_NAME"), "classifier");
  EXPECT_EQ(env.at("ASYA_TRANSPORT"), "rabbitmq");
  EXPECT_EQ(env.at("ASYA_RABBITMQ_URL"),
            json::parse(R"({"secretKeyRef": {"name": "asya-rabbitmq", "key": "url"}})"));
  EXPECT_EQ(env.at("ASYA_RUNTIME_TIMEOUT"), "1m30s");  // 90s, as asya::format_duration writes it
  EXPECT_EQ(env.at("ASYA_SHUTDOWN_GRACE"), "45s");
  EXPECT_EQ(env.at("ASYA_RETRY_MAX_ATTEMPTS"), "3");
  EXPECT_EQ(env.at("ASYA_RETRY_BACKOFF"), "2s");
  EXPECT_EQ(env.at("ASYA_RETRY_ON_PROCESSING_ERROR"), "true");
  EXPECT_EQ(sidecar.at("livenessProbe").at("httpGet").at("path"), "/healthz");
  EXPECT_EQ(sidecar.at("readinessProbe").at("httpGet").at("path"), "/readyz");
  // The Python runtime's source travels in the shared ConfigMap, mounted read-only.
  const auto& cm = find(all, "ConfigMap", "asya-runtime");
  EXPECT_EQ(cm.at("data").at("asya_runtime.py").as_string(), python_runtime_source());
  EXPECT_NE(python_runtime_source().find("ASYA_HANDLER"), std::string_view::npos);
}

TEST(Render, PayloadStoreReachesEverySidecarAndOnlyS3IsAccepted) {
  RenderOptions o = cluster("sqs");
  o.payload_store = "s3://asya-payloads/prod";
  auto rendered = render(load(kActor), o);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  for (std::string_view name : {"classifier", "happy-end", "error-end"}) {
    const auto& containers =
        find(all, "Deployment", name).at("spec").at("template").at("spec").at("containers");
    const auto& sidecar = containers.as_array().back();
    EXPECT_EQ(env_map(sidecar).at("ASYA_PAYLOAD_STORE"), "s3://asya-payloads/prod") << name;
  }
  o.payload_store = "file:///var/lib/asya/payloads";
  auto refused = render(load(kActor), o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("--payload-store \"file:///var/lib/asya/payloads\""),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("s3://bucket/prefix"), std::string::npos);
}

TEST(Render, BatchingSetsTheSidecarsBatchVariablesAndTheRuntimesBatchFlag) {
  std::string text = kActor;
  text.replace(text.find("  workload:"), 0, "  batching: {maxSize: 32, maxWait: 20ms}\n");
  // The container's own value is replaced by what the manifest decides.
  const std::string handler_line =
      "          - {name: ASYA_HANDLER, value: classifier.TextClassifier.process}\n";
  text.replace(text.find(handler_line) + handler_line.size(), 0,
               "          - {name: ASYA_HANDLER_BATCH, value: \"false\"}\n");
  auto rendered = render(load(text), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& pod = find(all, "Deployment", "classifier").at("spec").at("template");
  const auto& containers = pod.at("spec").at("containers").as_array();
  ASSERT_EQ(containers.size(), 2u);
  EXPECT_EQ(env_map(containers[0]).at("ASYA_HANDLER_BATCH"), "true");
  std::size_t batch_flags = 0;
  for (const auto& e : containers[0].at("env").as_array())
    batch_flags += e.at("name") == "ASYA_HANDLER_BATCH";
  EXPECT_EQ(batch_flags, 1u);
  const auto sidecar = env_map(containers[1]);
  EXPECT_EQ(sidecar.at("ASYA_BATCH_MAX_SIZE"), "32");
  EXPECT_EQ(sidecar.at("ASYA_BATCH_MAX_WAIT"), "20ms");
}

TEST(Render, ScaledObjectUsesTheRabbitmqQueueAndKedaRules) {
  auto rendered = render(load(kActor), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& so = find(all, "ScaledObject", "classifier").at("spec");
  EXPECT_EQ(so.at("scaleTargetRef").at("name"), "classifier");
  EXPECT_EQ(so.at("minReplicaCount"), 0);
  EXPECT_EQ(so.at("maxReplicaCount"), 8);
  EXPECT_EQ(so.at("pollingInterval"), 15);
  EXPECT_EQ(so.at("cooldownPeriod"), 120);
  const auto& trigger = so.at("triggers").at(0);
  EXPECT_EQ(trigger.at("type"), "rabbitmq");
  EXPECT_EQ(trigger.at("metadata"),
            json::parse(R"({"protocol": "http", "queueName": "asya-classifier",
                            "mode": "QueueLength", "value": "5", "activationValue": "2"})"))
      << "the management API (http) counts unacknowledged messages, AMQP only ready ones";
  EXPECT_EQ(trigger.at("authenticationRef").at("name"), "classifier-broker");
  const auto& auth = find(all, "TriggerAuthentication", "classifier-broker");
  EXPECT_EQ(auth.at("spec"), json::parse(R"({"secretTargetRef": [{"parameter": "host",
                "name": "asya-rabbitmq", "key": "management-url"}]})"));
  // Up: +100 % or +4 pods per 15 s, whichever is more; down: -50 % per minute after a window of
  // the cooldown (common/scaling_policy.hpp; the local autoscaler applies the same).
  EXPECT_EQ(so.at("advanced").at("horizontalPodAutoscalerConfig").at("behavior"), json::parse(R"({
      "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
          {"type": "Percent", "value": 100, "periodSeconds": 15},
          {"type": "Pods", "value": 4, "periodSeconds": 15}]},
      "scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Max", "policies": [
          {"type": "Percent", "value": 50, "periodSeconds": 60}]}})"));
}

TEST(Render, ScaleDownWindowIsTheCooldownCappedAtTheHpaLimit) {
  std::string text = kActor;
  text.replace(text.find("cooldownPeriod: 2m"), 18, "cooldownPeriod: 2h");
  auto rendered = render(load(text), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& so = find(all, "ScaledObject", "classifier").at("spec");
  EXPECT_EQ(so.at("cooldownPeriod"), 7200);
  EXPECT_EQ(so.at("advanced")
                .at("horizontalPodAutoscalerConfig")
                .at("behavior")
                .at("scaleDown")
                .at("stabilizationWindowSeconds"),
            3600);
}

TEST(Render, RabbitmqManagementUrlComesFromTheConfiguredSecretKey) {
  auto o = cluster("rabbitmq");
  o.rabbitmq_secret = "broker";
  o.rabbitmq_management_secret_key = "api";
  auto rendered = render(load(kActor), o);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  EXPECT_EQ(find(all, "TriggerAuthentication", "classifier-broker").at("spec"),
            json::parse(R"({"secretTargetRef": [{"parameter": "host", "name": "broker",
                            "key": "api"}]})"));
  // The sidecars keep the AMQP URL.
  const auto env = env_map(find(all, "Deployment", "classifier")
                               .at("spec")
                               .at("template")
                               .at("spec")
                               .at("containers")
                               .at(1));
  EXPECT_EQ(env.at("ASYA_RABBITMQ_URL"),
            json::parse(R"({"secretKeyRef": {"name": "broker", "key": "url"}})"));
}

TEST(Render, SqsTriggerCountsMessagesInFlight) {
  auto rendered = render(load(kActor), cluster("sqs"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& trigger = find(all, "ScaledObject", "classifier").at("spec").at("triggers").at(0);
  EXPECT_EQ(trigger.at("metadata").at("scaleOnInFlight"), "true");
}

std::string with_grace(std::string_view grace) {
  std::string text = kActor;
  const std::string anchor = "        nodeSelector: {pool: cpu}\n";
  text.insert(text.find(anchor) + anchor.size(),
              "        terminationGracePeriodSeconds: " + std::string(grace) + "\n");
  return text;
}

TEST(Render, AGracePeriodThatCoversProcessingAndTheMarginIsKept) {
  for (int grace : {100, 600}) {
    auto rendered = render(load(with_grace(std::to_string(grace))), cluster("rabbitmq"));
    ASSERT_TRUE(rendered.ok()) << rendered.error().message;
    const auto all = rendered->all();
    EXPECT_EQ(find(all, "Deployment", "classifier")
                  .at("spec")
                  .at("template")
                  .at("spec")
                  .at("terminationGracePeriodSeconds"),
              grace);
  }
}

TEST(Render, AGracePeriodShorterThanProcessingPlusTheMarginIsAClearError) {
  auto rendered = render(load(with_grace("99")), cluster("rabbitmq"));
  ASSERT_FALSE(rendered.ok());
  const std::string& message = rendered.error().message;
  EXPECT_NE(message.find("test.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("spec.workload.template.spec.terminationGracePeriodSeconds: 99"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("spec.timeout.processing 1m30s"), std::string::npos) << message;
  EXPECT_NE(message.find("at least 100"), std::string::npos) << message;

  rendered = render(load(with_grace("\"2m\"")), cluster("rabbitmq"));
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.error().message.find("not a whole number of seconds"), std::string::npos)
      << rendered.error().message;
}

TEST(Render, SqsTriggerAndPodIdentity) {
  auto o = cluster("sqs");
  o.sqs_pod_identity = true;
  o.sqs_region = "eu-west-1";
  o.sqs_queue_url_base = "https://sqs.eu-west-1.amazonaws.com/123456789012";
  auto rendered = render(load(kActor), o);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& trigger = find(all, "ScaledObject", "classifier").at("spec").at("triggers").at(0);
  EXPECT_EQ(trigger.at("type"), "aws-sqs-queue");
  EXPECT_EQ(trigger.at("metadata").at("queueURL"),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/asya-classifier");
  EXPECT_EQ(trigger.at("metadata").at("awsRegion"), "eu-west-1");
  EXPECT_EQ(find(all, "TriggerAuthentication", "classifier-broker").at("spec"),
            json::parse(R"({"podIdentity": {"provider": "aws"}})"));
  const auto env = env_map(find(all, "Deployment", "classifier")
                               .at("spec")
                               .at("template")
                               .at("spec")
                               .at("containers")
                               .at(1));
  EXPECT_EQ(env.at("AWS_REGION"), "eu-west-1");
  EXPECT_FALSE(env.contains("AWS_ACCESS_KEY_ID"));
}

TEST(Render, SqliteWithoutAClusterTransportIsAClearError) {
  auto rendered = render(load(kActor), RenderOptions{});
  ASSERT_FALSE(rendered.ok());
  EXPECT_EQ(rendered.error().message.rfind("test.yaml:", 0), 0u) << rendered.error().message;
  EXPECT_NE(rendered.error().message.find("spec.transport \"sqlite\" only works on one machine"),
            std::string::npos)
      << rendered.error().message;
}

TEST(Render, FixedReplicasWithoutScalingAndAnExplicitCommandNeedsNoRuntimeConfigMap) {
  std::string text = kActor;
  text.replace(text.find("enabled: true"), 13, "enabled: false");
  text.replace(text.find("transport: sqlite"), 17, "transport: sqs\n  replicas: 3");
  text.replace(text.find("image: my-classifier:1.2"), 24,
               "image: my-classifier:1.2\n          command: [/app/run]");
  auto rendered = render(load(text), RenderOptions{});
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  EXPECT_EQ(find(all, "Deployment", "classifier").at("spec").at("replicas"), 3);
  for (const auto& o : all) {
    EXPECT_NE(o.at("kind"), "ScaledObject");
    EXPECT_FALSE(o.at("kind") == "ConfigMap" && o.at("metadata").at("name") == "asya-runtime");
  }
  const auto& runtime = find(all, "Deployment", "classifier")
                            .at("spec")
                            .at("template")
                            .at("spec")
                            .at("containers")
                            .at(0);
  EXPECT_EQ(runtime.at("command"), json::parse(R"(["/app/run"])"));
  // End actors follow the actors' transport.
  EXPECT_EQ(env_map(find(all, "Deployment", "happy-end")
                        .at("spec")
                        .at("template")
                        .at("spec")
                        .at("containers")
                        .at(0))
                .at("ASYA_TRANSPORT"),
            "sqs");
}

TEST(Render, GatewayObjectsWhenRoutesAreGivenAndSidecarsReportToIt) {
  GatewayRoutes routes{"routes.yaml", "tools:\n- name: classify\n  route: [classifier]\n"};
  auto rendered = render(load(kActor), cluster("rabbitmq"), routes);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  EXPECT_EQ(find(all, "ConfigMap", "asya-gateway-routes").at("data").at("routes.yaml"),
            json::value(routes.text));
  EXPECT_EQ(find(all, "Service", "asya-gateway").at("spec").at("ports").at(0).at("port"), 8080);
  const auto env = env_map(find(all, "Deployment", "classifier")
                               .at("spec")
                               .at("template")
                               .at("spec")
                               .at("containers")
                               .at(1));
  EXPECT_EQ(env.at("ASYA_GATEWAY_URL"), "http://asya-gateway:8080");

  GatewayRoutes broken{"routes.yaml", "tools: [\n"};
  auto failed = render(load(kActor), cluster("rabbitmq"), broken);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("routes.yaml:2: invalid YAML"), std::string::npos)
      << failed.error().message;
}

TEST(Render, OutputParsesBackToTheSameObjects) {
  auto rendered = render(load(kActor), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok());
  for (const auto& o : rendered->all()) {
    auto back = from_yaml(to_yaml(json::value(o)), "rendered");
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, json::value(o));
  }
}

constexpr const char* kStateful = R"(
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: indexer}
spec:
  sidecar: {concurrency: 4, maxDeliveries: 3}
  workload:
    kind: StatefulSet
    template:
      metadata:
        labels: {team: search, tier: 1}
        annotations: {prometheus.io/scrape: "true"}
      spec:
        containers:
        - name: asya-runtime
          image: indexer:3
          env: [{name: ASYA_HANDLER, value: indexer.add}]
)";

TEST(Render, StatefulSetWithHeadlessServiceKeepsTheTemplateMetadataAndInjectsTheSidecar) {
  auto rendered = render(load(kStateful), cluster("rabbitmq"));
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  for (const auto& o : all) {
    EXPECT_FALSE(o.at("kind") == "Deployment" && o.at("metadata").at("name") == "indexer");
  }
  const auto& sts = find(all, "StatefulSet", "indexer");
  EXPECT_EQ(sts.at("spec").at("serviceName"), "indexer");
  EXPECT_EQ(sts.at("spec").at("selector").at("matchLabels"),
            json::parse(R"({"asya.sh/actor": "indexer"})"));
  const auto& meta = sts.at("spec").at("template").at("metadata");
  EXPECT_EQ(meta.at("labels").at("asya.sh/actor"), "indexer");
  EXPECT_EQ(meta.at("labels").at("app.kubernetes.io/part-of"), "asya");
  EXPECT_EQ(meta.at("labels").at("team"), "search");
  EXPECT_EQ(meta.at("labels").at("tier"), "1") << "label values are strings";
  EXPECT_EQ(meta.at("annotations"), json::parse(R"({"prometheus.io/scrape": "true"})"));
  const auto& pod = sts.at("spec").at("template").at("spec");
  const auto& containers = pod.at("containers").as_array();
  ASSERT_EQ(containers.size(), 2u);
  EXPECT_EQ(containers[1].at("name"), "asya-sidecar");
  const auto env = env_map(containers[1]);
  EXPECT_EQ(env.at("ASYA_CONCURRENCY"), "4");
  EXPECT_EQ(env.at("ASYA_MAX_DELIVERIES"), "3");
  EXPECT_EQ(pod.at("volumes").at(0), json::parse(R"({"name": "asya-socket", "emptyDir": {}})"));
  const auto& service = find(all, "Service", "indexer").at("spec");
  EXPECT_EQ(service.at("clusterIP"), "None");
  EXPECT_EQ(service.at("selector"), json::parse(R"({"asya.sh/actor": "indexer"})"));
  EXPECT_EQ(find(all, "ScaledObject", "indexer").at("spec").at("scaleTargetRef").at("kind"),
            "StatefulSet");
}

TEST(Render, TemplateMetadataMistakesAreClearErrors) {
  std::string text = kStateful;
  text.replace(text.find("tier: 1"), 7, "asya.sh/actor: other");
  auto rendered = render(load(text), cluster("rabbitmq"));
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.error().message.find(
                "spec.workload.template.metadata.labels.asya.sh/actor: \"other\" differs from the "
                "actor's name \"indexer\""),
            std::string::npos)
      << rendered.error().message;

  text = kStateful;
  text.replace(text.find("tier: 1"), 7, "tier: 1.5");
  rendered = render(load(text), cluster("rabbitmq"));
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.error().message.find("labels.tier: 1.5"), std::string::npos)
      << rendered.error().message;
  EXPECT_NE(rendered.error().message.find("quote the value"), std::string::npos);
}

TEST(Render, AnActorOnAnotherTransportThanTheEndActorsIsRefused) {
  std::string text = kActor;
  text.replace(text.find("transport: sqlite"), 17, "transport: rabbitmq");
  auto rendered = render(load(text), cluster("sqs"));
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.error().message.find(
                "actor classifier: spec.transport \"rabbitmq\" differs from --transport sqs"),
            std::string::npos)
      << rendered.error().message;
  // Without end actors or gateway nothing consumes the shared transport: allowed.
  auto o = cluster("sqs");
  o.end_actors = false;
  EXPECT_TRUE(render(load(text), o).ok());
}

TEST(Render, RenderActorGivesTheSameObjectsAsRender) {
  auto actors = load(kStateful);
  auto all = render(actors, cluster("rabbitmq"));
  auto one = render_actor(actors[0], cluster("rabbitmq"));
  ASSERT_TRUE(all.ok() && one.ok());
  ASSERT_EQ(all->actors.size(), 1u);
  EXPECT_EQ(one->objects, all->actors[0].objects);
  EXPECT_EQ(one->queue, "asya-indexer");
  EXPECT_EQ(one->transport, "rabbitmq");
}

TEST(Render, ImagesAreReplacedAndCommandVariablesMustBeSetInTheContainerEnv) {
  std::string text = kActor;
  text.replace(text.find("image: my-classifier:1.2"), 24,
               "image: my-classifier:1.2\n          command: [\"$(ASYA_BUILD_DIR)/bin/run\", "
               "\"$$(LITERAL)\", \"$(MODEL)\"]\n"
               "          workingDir: /w");
  auto o = cluster("rabbitmq");
  o.images["my-classifier:1.2"] = "reg.example/classifier:2";
  o.build_dir = "/srv/build";
  auto failed = render(load(text), o);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("containers[0].command: $(MODEL) is not set in the "
                                        "container's env"),
            std::string::npos)
      << failed.error().message;

  text.replace(text.find("- {name: ASYA_HANDLER,"), 0, "- {name: MODEL, value: m}\n          ");
  auto rendered = render(load(text), o);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const auto all = rendered->all();
  const auto& runtime = find(all, "Deployment", "classifier")
                            .at("spec")
                            .at("template")
                            .at("spec")
                            .at("containers")
                            .at(0);
  EXPECT_EQ(runtime.at("image"), "reg.example/classifier:2");
  const auto env = env_map(runtime);
  EXPECT_EQ(env.at("ASYA_BUILD_DIR"), "/srv/build");
  EXPECT_EQ(env.at("MODEL"), "m");
  EXPECT_FALSE(env.contains("LITERAL"));
}

TEST(Render, AJoinActorGetsItsStoreFromTheSecretTheManifestOrNothing) {
  const std::string join_actor = R"(
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: combine}
spec:
  join: {timeout: 5m}
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          image: app:1
          env:
          - {name: ASYA_HANDLER, value: mod.combine}
)";
  auto sidecar_env = [](const Rendered& r) {
    const auto all = r.all();
    const auto& d = find(all, "Deployment", "combine");
    for (const auto& c : d.at("spec").at("template").at("spec").at("containers").as_array())
      if (c.at("name").as_string() == "asya-sidecar") return env_map(c);
    ADD_FAILURE() << "no asya-sidecar";
    return json::object();
  };
  RenderOptions o = cluster("rabbitmq");
  o.join_store = "postgresql://asya@db/plain";
  o.join_store_secret = "asya-join-store";
  auto rendered = render(load(join_actor), o);
  ASSERT_TRUE(rendered) << rendered.error().message;
  auto env = sidecar_env(*rendered);
  EXPECT_EQ(env.at("ASYA_JOIN").as_string(), "true");
  EXPECT_EQ(env.at("ASYA_JOIN_STORE"),
            json::parse(R"({"secretKeyRef": {"name": "asya-join-store", "key": "url"}})"));

  o.join_store_secret.clear();
  rendered = render(load(join_actor), o);
  ASSERT_TRUE(rendered);
  EXPECT_EQ(sidecar_env(*rendered).at("ASYA_JOIN_STORE").as_string(), "postgresql://asya@db/plain");

  std::string with_store = join_actor;
  with_store.replace(with_store.find("{timeout: 5m}"), 13,
                     "{timeout: 5m, store: \"postgresql://asya@own/db\"}");
  rendered = render(load(with_store), o);
  ASSERT_TRUE(rendered);
  EXPECT_EQ(sidecar_env(*rendered).at("ASYA_JOIN_STORE").as_string(), "postgresql://asya@own/db");

  rendered = render(load(join_actor), cluster("rabbitmq"));
  ASSERT_TRUE(rendered);
  EXPECT_FALSE(sidecar_env(*rendered).contains("ASYA_JOIN_STORE"));
}

}  // namespace
}  // namespace asya::k8s
