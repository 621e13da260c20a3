#include "cli/render_command.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>

#include "gateway/config/tools_config.hpp"
#include "k8s/render.hpp"
#include "k8s/yaml_json.hpp"
#include "manifest/manifest.hpp"

namespace asya::cli {
namespace {

struct RenderArgs {
  std::vector<std::string> paths;
  std::string routes;
  bool no_gateway = false;
  k8s::RenderOptions options;
};

int run(const RenderArgs& args) {
  // A routes.yaml given as a path is the gateway's tools file, not a manifest (the loader skips
  // routes files inside directories itself).
  std::vector<std::string> paths;
  std::string routes_file = args.routes;
  for (const auto& p : args.paths) {
    if (manifest::is_routes_file(p) && !std::filesystem::is_directory(p)) {
      if (routes_file.empty()) routes_file = p;
    } else {
      paths.push_back(p);
    }
  }
  if (paths.empty()) paths.push_back(".");
  auto loaded = manifest::load_paths(paths);
  if (!loaded.ok()) {
    std::cerr << loaded.error_text();
    if (!loaded.error_text().empty() && loaded.error_text().back() != '\n') std::cerr << '\n';
    std::cerr << "asya render: no objects printed; fix the manifests above\n";
    return 2;
  }
  // The gateway's tools: --routes, else a routes.yaml beside the manifests of a directory.
  std::optional<k8s::GatewayRoutes> routes;
  if (args.no_gateway) routes_file.clear();
  if (routes_file.empty() && !args.no_gateway) {
    for (const auto& p : paths) {
      auto candidate = std::filesystem::path(p) / "routes.yaml";
      std::error_code ec;
      if (std::filesystem::is_directory(p, ec) && std::filesystem::is_regular_file(candidate, ec)) {
        routes_file = candidate.string();
        break;
      }
    }
  }
  if (!routes_file.empty()) {
    std::ifstream in(routes_file, std::ios::binary);
    if (!in) {
      std::cerr << "asya render: cannot read routes file " << routes_file
                << "; give an existing file with --routes\n";
      return 2;
    }
    std::ostringstream text;
    text << in.rdbuf();
    routes = k8s::GatewayRoutes{routes_file, text.str()};
    // The gateway would refuse to start on a mistake in its tools: report it now, as `asya up`
    // does, instead of printing a gateway that crash-loops.
    gateway::ToolsConfig tools;
    try {
      tools = gateway::parse_tools(routes->text, routes_file);
    } catch (const gateway::LoadError& e) {
      std::cerr << e.what()
                << "\nasya render: the gateway's routes file has a mistake; no objects printed\n";
      return 2;
    }
    std::set<std::string> known;
    for (const auto& a : loaded.actors) known.insert(a.name);
    for (const auto& tool : tools.tools) {
      for (const auto& actor : tool.actors) {
        if (!known.count(actor)) {
          std::cerr << "asya render: warning: tool \"" << tool.name << "\" (" << tool.source
                    << ") routes to actor \"" << actor
                    << "\", which none of these manifests defines; its calls wait in queue "
                    << args.options.queue_prefix << actor << " until something consumes it\n";
        }
      }
    }
  }
  // The gateway's tokens come from the environment, as for `asya up` and the gateway itself;
  // given, they are printed in Secret asya-gateway-token.
  k8s::RenderOptions options = args.options;
  if (const char* token = std::getenv("ASYA_GATEWAY_INTERNAL_TOKEN")) {
    options.gateway_internal_token = token;
  }
  if (const char* token = std::getenv("ASYA_GATEWAY_TOKEN")) options.gateway_client_token = token;
  if (!options.gateway_client_token.empty() && options.gateway_internal_token.empty()) {
    std::cerr << "asya render: warning: ASYA_GATEWAY_TOKEN is set but ASYA_GATEWAY_INTERNAL_TOKEN "
                 "is not, so no Secret "
              << options.gateway_token_secret
              << " is printed and the gateway's sidecar endpoints stay open inside the cluster; "
                 "set both (e.g. ASYA_GATEWAY_INTERNAL_TOKEN=$(openssl rand -hex 32)) or create "
                 "the Secret yourself (keys token, internal-token)\n";
  }
  // A join actor's branches must outlive its pods and be shared by its replicas.
  if (options.join_store.empty() && options.join_store_secret.empty()) {
    for (const auto& actor : loaded.actors) {
      if (actor.join && actor.join->store.empty())
        std::cerr << "asya render: warning: join actor \"" << actor.name
                  << "\" keeps its waiting branches in SQLite inside its pod: they are lost when "
                     "the pod is replaced and its replicas do not share them; give "
                     "--join-store-secret (a Secret with key url = postgresql://...), "
                     "--join-store or spec.join.store\n";
    }
  }
  auto rendered = k8s::render(loaded.actors, options, routes);
  if (!rendered) {
    std::cerr << rendered.error().message << "\nasya render: no objects printed\n";
    return 2;
  }
  std::cout << k8s::to_yaml_stream(rendered->all());
  return 0;
}

}  // namespace

void add_render_command(CLI::App& app) {
  auto args = std::make_shared<RenderArgs>();
  auto& o = args->options;
  CLI::App* cmd = app.add_subcommand(
      "render",
      "Print the Kubernetes objects of AsyncActor manifests (Deployments with the asya-sidecar "
      "injected, KEDA ScaledObjects, end actors, the gateway when a routes.yaml is present) for "
      "`kubectl apply -f -`");
  cmd->add_option("paths", args->paths,
                  "Manifest files or directories (default: the current directory)");
  cmd->add_option("-n,--namespace", o.namespace_name, "metadata.namespace of every object");
  cmd->add_option("--transport", o.transport,
                  "Cluster transport used for actors whose manifest says sqlite (the local "
                  "default); also used by the end actors and the gateway")
      ->check(CLI::IsMember({"rabbitmq", "sqs"}));
  cmd->add_option("--sidecar-image", o.sidecar_image, "Image of asya-sidecar")
      ->capture_default_str();
  cmd->add_option("--gateway-image", o.gateway_image, "Image of asya-gateway")
      ->capture_default_str();
  cmd->add_option_function<std::vector<std::string>>(
         "--image",
         [&o](const std::vector<std::string>& items) {
           for (const auto& item : items) {
             auto eq = item.find('=');
             if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
               throw CLI::ValidationError(
                   "--image", "\"" + item +
                                  "\" is not FROM=TO; give the image as written in the manifests, "
                                  "'=', and the image to use, e.g. python:3.11-slim=reg/app:1");
             }
             o.images[item.substr(0, eq)] = item.substr(eq + 1);
           }
         },
         "Replace a container image of the manifests: FROM=TO, FROM exactly as written "
         "(repeatable)")
      ->type_name("FROM=TO");
  cmd->add_option("--build-dir", o.build_dir,
                  "ASYA_BUILD_DIR for commands that refer to $(ASYA_BUILD_DIR) without setting it "
                  "(where the build tree lives in the image)")
      ->capture_default_str();
  cmd->add_option("--queue-prefix", o.queue_prefix, "Queue name prefix")->capture_default_str();
  cmd->add_option("--gateway-url", o.gateway_url,
                  "ASYA_GATEWAY_URL of the sidecars (default: the rendered gateway's Service)");
  cmd->add_option("--log-level", o.log_level, "ASYA_LOG_LEVEL of sidecars and gateway")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  cmd->add_option("--metrics-port", o.metrics_port, "Sidecar metrics/health port")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd->add_option("--routes", args->routes,
                  "Gateway tools file (default: routes.yaml in a manifest directory)");
  cmd->add_flag("--no-gateway", args->no_gateway, "Do not render the gateway");
  cmd->add_flag(
      "--no-end-actors", [&o](std::int64_t) { o.end_actors = false; },
      "Do not render happy-end and error-end");
  cmd->add_option("--result-store", o.result_store, "ASYA_RESULT_STORE of the end actors")
      ->capture_default_str();
  cmd->add_option("--join-store", o.join_store,
                  "ASYA_JOIN_STORE of join actors whose manifest sets no spec.join.store "
                  "(postgresql://user@host:5432/db)");
  cmd->add_option("--join-store-secret", o.join_store_secret,
                  "Secret whose key url holds ASYA_JOIN_STORE (a PostgreSQL URL with a password); "
                  "overrides --join-store");
  cmd->add_option("--payload-store", o.payload_store,
                  "ASYA_PAYLOAD_STORE of every sidecar and the gateway (s3://bucket/prefix): large "
                  "payloads travel by reference")
      ->capture_default_str();
  cmd->add_option("--rabbitmq-secret", o.rabbitmq_secret, "Secret holding the AMQP URL")
      ->capture_default_str();
  cmd->add_option("--rabbitmq-secret-key", o.rabbitmq_secret_key, "Key of the AMQP URL in it")
      ->capture_default_str();
  cmd->add_option("--rabbitmq-management-secret-key", o.rabbitmq_management_secret_key,
                  "Key of the management API URL in it (for KEDA: "
                  "http://user:password@host:15672/vhost)")
      ->capture_default_str();
  cmd->add_option("--rabbitmq-exchange", o.rabbitmq_exchange, "ASYA_RABBITMQ_EXCHANGE");
  cmd->add_option("--sqs-region", o.sqs_region, "AWS region")->capture_default_str();
  cmd->add_option("--sqs-endpoint", o.sqs_endpoint, "SQS endpoint URL (e.g. LocalStack)");
  cmd->add_option("--sqs-queue-url-base", o.sqs_queue_url_base,
                  "https://sqs.<region>.amazonaws.com/<account> for KEDA's queueURL");
  cmd->add_option("--sqs-secret", o.sqs_secret,
                  "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
      ->capture_default_str();
  cmd->add_option("--gateway-token-secret", o.gateway_token_secret,
                  "Secret with the gateway's tokens (keys internal-token, token); printed when "
                  "ASYA_GATEWAY_INTERNAL_TOKEN is set")
      ->capture_default_str();
  cmd->add_option("--broker-cidr", o.broker_cidrs,
                  "spec.isolation.network none: the broker's address range, the only one the "
                  "actor's pods may reach on the broker's ports (repeatable; default: any)")
      ->type_name("CIDR");
  cmd->add_option_function<std::vector<std::string>>(
         "--broker-pod-label",
         [&o](const std::vector<std::string>& items) {
           for (const auto& item : items) {
             auto eq = item.find('=');
             if (eq == std::string::npos || eq == 0) {
               throw CLI::ValidationError(
                   "--broker-pod-label",
                   "\"" + item +
                       "\" is not KEY=VALUE; give a label of the broker's pods, e.g. "
                       "app.kubernetes.io/name=rabbitmq");
             }
             o.broker_pod_labels[item.substr(0, eq)] = item.substr(eq + 1);
           }
         },
         "spec.isolation.network none: a label of the broker's pods (in any namespace), the only "
         "pods the actor's pods may reach on the broker's ports (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_flag("--sqs-pod-identity", o.sqs_pod_identity,
                "Authenticate with IAM roles for service accounts instead of the Secret");
  cmd->callback([args] {
    const int code = run(*args);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace asya::cli
