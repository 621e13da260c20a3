// asya-operator: watches AsyncActor resources and applies what `asya render` would print for
// each, creates their queues and reports status. Behaviour and flags: docs/kubernetes.md
// ("Operator").

#include <atomic>
#include <cstdlib>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/env.hpp"
#include "common/log.hpp"
#include "common/shutdown_signals.hpp"
#include "common/version.hpp"
#include "k8s/operator/controller.hpp"
#include "k8s/operator/kube_client.hpp"
#include "k8s/operator/reconciler.hpp"

namespace {

std::atomic<bool> g_stop{false};

}  // namespace

int main(int argc, char** argv) {
  using namespace asya;
  // Before any thread starts, so that every thread inherits the mask (shutdown_signals.hpp).
  SignalSet().block();
  using namespace asya::k8s::op;
  CLI::App app{
      "asya-operator: watches AsyncActors (" + std::string(manifest::kApiVersion) +
      ") and server-side applies their Deployments, KEDA ScaledObjects and ServiceAccounts, "
      "creates their queues and writes their status"};
  std::string kubeconfig, context, namespace_name, log_level = "info";
  int watch_timeout = 300, resync_period = 300;
  OperatorOptions options;
  auto& o = options.render;
  app.add_option("--kubeconfig", kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, else the in-cluster service account, "
                 "else ~/.kube/config)");
  app.add_option("--context", context, "kubeconfig context (default: current-context)");
  app.add_option("-n,--namespace", namespace_name,
                 "Watch AsyncActors in this namespace only (env ASYA_OPERATOR_NAMESPACE or "
                 "ASYA_NAMESPACE; default: all namespaces)");
  app.add_option("--transport", o.transport,
                 "Cluster transport for actors whose spec says sqlite (the local default)")
      ->envname("ASYA_TRANSPORT")
      ->check(CLI::IsMember({"rabbitmq", "sqs"}));
  app.add_option("--queue-transport", options.queue_transport,
                 "Create queues through this transport instead of the actor's (\"none\": do not "
                 "create queues; sqlite: tests)")
      ->envname("ASYA_OPERATOR_QUEUE_TRANSPORT");
  app.add_option("--sidecar-image", o.sidecar_image, "Image of the injected asya-sidecar")
      ->envname("ASYA_SIDECAR_IMAGE")
      ->capture_default_str();
  app.add_option("--queue-prefix", o.queue_prefix, "Queue name prefix")
      ->envname("ASYA_QUEUE_PREFIX")
      ->capture_default_str();
  app.add_option("--gateway-url", o.gateway_url, "ASYA_GATEWAY_URL of the sidecars")
      ->envname("ASYA_GATEWAY_URL");
  app.add_option("--log-level", log_level,
                 "Log level of the operator and ASYA_LOG_LEVEL of the sidecars")
      ->envname("ASYA_LOG_LEVEL")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--metrics-port", o.metrics_port, "Sidecar metrics/health port")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--rabbitmq-secret", o.rabbitmq_secret, "Secret holding the AMQP URL")
      ->envname("ASYA_RABBITMQ_SECRET")
      ->capture_default_str();
  app.add_option("--rabbitmq-secret-key", o.rabbitmq_secret_key, "Key of the AMQP URL in it")
      ->envname("ASYA_RABBITMQ_SECRET_KEY")
      ->capture_default_str();
  app.add_option("--rabbitmq-management-secret-key", o.rabbitmq_management_secret_key,
                 "Key of the management API URL in it (for KEDA: "
                 "http://user:password@host:15672/vhost)")
      ->envname("ASYA_RABBITMQ_MANAGEMENT_SECRET_KEY")
      ->capture_default_str();
  app.add_option("--rabbitmq-exchange", o.rabbitmq_exchange, "ASYA_RABBITMQ_EXCHANGE")
      ->envname("ASYA_RABBITMQ_EXCHANGE");
  app.add_option("--join-store", o.join_store,
                 "ASYA_JOIN_STORE of join actors whose spec.join.store is empty")
      ->envname("ASYA_JOIN_STORE");
  app.add_option("--join-store-secret", o.join_store_secret,
                 "Secret whose key url holds ASYA_JOIN_STORE; overrides --join-store")
      ->envname("ASYA_JOIN_STORE_SECRET");
  app.add_option("--sqs-region", o.sqs_region, "AWS region")
      ->envname("AWS_REGION")
      ->capture_default_str();
  app.add_option("--sqs-endpoint", o.sqs_endpoint, "SQS endpoint URL (e.g. LocalStack)")
      ->envname("ASYA_SQS_ENDPOINT");
  app.add_option("--sqs-queue-url-base", o.sqs_queue_url_base,
                 "https://sqs.<region>.amazonaws.com/<account> for KEDA's queueURL")
      ->envname("ASYA_SQS_QUEUE_URL_BASE");
  app.add_option("--sqs-secret", o.sqs_secret,
                 "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
      ->envname("ASYA_SQS_SECRET")
      ->capture_default_str();
  app.add_flag("--sqs-pod-identity", o.sqs_pod_identity,
               "Authenticate with IAM roles for service accounts instead of the Secret")
      ->envname("ASYA_SQS_POD_IDENTITY");
  app.add_option("--watch-timeout", watch_timeout,
                 "Seconds each watch request lasts before the operator reconnects")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--resync-period", resync_period,
                 "Seconds between reconciles of every actor (0: only on changes)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.set_version_flag("--version", "asya-operator " + std::string(asya::version()),
                       "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  try {
    log::init("operator", log_level);
  } catch (const ConfigError& e) {
    std::cerr << "asya-operator: " << e.what() << "\n";
    return 2;
  }
  o.log_level = log_level;
  if (namespace_name.empty()) {
    namespace_name = env_string("ASYA_OPERATOR_NAMESPACE", env_string("ASYA_NAMESPACE", ""));
  }

  auto config = load_config(kubeconfig, context);
  if (!config) {
    spdlog::error("cannot reach the Kubernetes API: {}", config.error().message);
    return 2;
  }
  spdlog::info(
      "asya-operator: API server {} ({}); watching AsyncActors in {}; transport {}; "
      "queues created through {}",
      config->server, config->source,
      namespace_name.empty() ? std::string("all namespaces") : namespace_name,
      o.transport.empty() ? std::string("from each spec") : o.transport,
      options.queue_transport.empty() ? std::string("the actor's transport")
                                      : options.queue_transport);

  SignalWatcher signal_watcher(SignalSet(), [](int) { g_stop.store(true); });
  KubeClient kube(*config);
  Reconciler reconciler(kube, std::move(options));
  ControllerOptions controller_options;
  controller_options.namespace_name = namespace_name;
  controller_options.watch_timeout = std::chrono::seconds(watch_timeout);
  controller_options.resync_period = std::chrono::seconds(resync_period);
  Controller controller(kube, reconciler, controller_options);
  controller.run(g_stop);
  spdlog::info("asya-operator: stopped");
  return 0;
}
