// Kubernetes objects for AsyncActors: what `asya render` prints and what asya-operator applies.
//
// render() is a pure function of the loaded manifests (src/manifest) and RenderOptions: it
// starts no process and talks to no server, so `asya render` and the operator produce the same
// objects byte for byte. For each actor it builds
//   - a ServiceAccount <name>;
//   - a Deployment <name> (a StatefulSet plus its headless Service when the manifest asks for
//     one) whose pod runs the user's runtime container and the injected `asya-sidecar`
//     container, sharing an emptyDir at /var/run/asya for the socket; a runtime container
//     without a command runs the bundled Python runtime from ConfigMap `asya-runtime`;
//   - when scaling is enabled, a KEDA ScaledObject <name> (rabbitmq trigger over the management
//     API, or aws-sqs-queue trigger, on queue <prefix><name>; both count messages in flight, not
//     only waiting ones) and a TriggerAuthentication <name>-broker reading the broker URL and
//     credentials from a Secret;
//   - for an actor with spec.isolation.network none, a NetworkPolicy <name>-egress limiting its
//     pods' egress to the broker, the gateway and DNS;
// plus, once per stream, ConfigMap `asya-runtime`, the end actors (happy-end, error-end) and,
// when routes.yaml text is given, the gateway (ConfigMap, Deployment, Service, ServiceAccount).
// Every sidecar that reports to a gateway and the gateway itself read their bearer tokens from
// Secret `asya-gateway-token` (optional references: without the Secret, no token), which is
// rendered when RenderOptions carries the internal token.
// The pod's terminationGracePeriodSeconds is at least max(processing timeout, gracefulShutdown)
// + 10 s (a shorter one in the manifest is an error), so a replica stopped while it processes a
// message is never killed before the message finished or went back to the queue.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "common/result.hpp"
#include "manifest/manifest.hpp"

namespace asya::k8s {

struct RenderOptions {
  std::string namespace_name;  // metadata.namespace of every object; empty: none (kubectl's)
  // The cluster's transport (rabbitmq or sqs). It replaces `sqlite`, the single-machine default,
  // so the manifests `asya up` runs deploy unchanged; an actor that names rabbitmq or sqs keeps
  // it. Empty: manifests must name a network transport themselves.
  std::string transport;
  std::string sidecar_image = "asya/asya-sidecar:0.1.0";
  std::string gateway_image = "asya/asya-gateway:0.1.0";
  std::string queue_prefix = "asya-";
  // ASYA_GATEWAY_URL of every sidecar. Empty: http://asya-gateway:8080 when the gateway is
  // rendered, else no progress reports.
  std::string gateway_url;
  // Secret holding the gateway's bearer tokens: key `internal-token` (ASYA_GATEWAY_INTERNAL_TOKEN
  // of the gateway and every reporting sidecar) and key `token` (ASYA_GATEWAY_TOKEN, clients).
  std::string gateway_token_secret = "asya-gateway-token";
  // When gateway_internal_token is not empty, the Secret is rendered (stringData) with it and,
  // when not empty, gateway_client_token. Empty: the Secret is expected to exist already (or
  // the gateway runs without tokens).
  std::string gateway_internal_token;
  std::string gateway_client_token;
  // spec.isolation.network none: the NetworkPolicy lets the pods reach the broker at these CIDRs
  // (empty: any address) on its ports (rabbitmq 5672/5671; sqs 443, or the port of
  // sqs_endpoint), and, when broker_pod_labels is not empty, only pods with these labels in any
  // namespace (an in-cluster broker).
  std::vector<std::string> broker_cidrs;
  std::map<std::string, std::string> broker_pod_labels;
  std::string log_level = "info";  // ASYA_LOG_LEVEL of sidecars and the gateway
  int metrics_port = 9090;         // sidecar /metrics, /healthz, /readyz

  // RabbitMQ: Secret with the AMQP URL (key rabbitmq_secret_key, used by sidecars and the
  // gateway) and the management API URL for KEDA (key rabbitmq_management_secret_key,
  // http://user:password@host:15672/vhost: KEDA's http protocol counts unacknowledged messages
  // too, so a replica busy with the last message is not scaled down under it).
  std::string rabbitmq_secret = "asya-rabbitmq";
  std::string rabbitmq_secret_key = "url";
  std::string rabbitmq_management_secret_key = "management-url";
  std::string rabbitmq_exchange;  // ASYA_RABBITMQ_EXCHANGE when not empty

  // SQS: region, optional endpoint (e.g. LocalStack), queue URL base for KEDA
  // (https://sqs.<region>.amazonaws.com/<account>; empty: KEDA resolves the queue name), and the
  // Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. With sqs_pod_identity the Secret is
  // not used: pods and KEDA authenticate with IAM roles for service accounts.
  std::string sqs_region = "us-east-1";
  std::string sqs_endpoint;
  std::string sqs_queue_url_base;
  std::string sqs_secret = "asya-sqs";
  bool sqs_pod_identity = false;

  // Images of the manifests' containers to replace, exactly as written -> new image (e.g. the
  // examples' python:3.11-slim -> an image holding their handler modules).
  std::map<std::string, std::string> images;
  // ASYA_BUILD_DIR of a container whose command or args refer to $(ASYA_BUILD_DIR) without setting
  // it (`asya up` defaults it to its build tree; in an image the build lives here).
  std::string build_dir = "/opt/asya/build";

  // ASYA_JOIN_STORE of join actors whose manifest names no spec.join.store: a URL
  // (postgresql://user@host/db), or, when join_store_secret is set, the key `url` of that Secret
  // (a URL with a password). Neither: the SQLite default inside the pod (`asya render` warns).
  std::string join_store;
  std::string join_store_secret;

  bool end_actors = true;                                     // render happy-end and error-end
  std::string result_store = "file:///var/lib/asya/results";  // ASYA_RESULT_STORE of end actors
  // ASYA_PAYLOAD_STORE of every sidecar and the gateway: s3://bucket/prefix (pods share no
  // directory, so file:// is refused); empty: payloads travel inside envelopes.
  std::string payload_store;
  std::string managed_by = "asya-render";  // app.kubernetes.io/managed-by
};

// The gateway's tools file, when the manifests come with one.
struct GatewayRoutes {
  std::string file;  // for messages
  std::string text;  // routes.yaml as written
};

// Objects of one actor (as the operator applies them) and the shared ones.
struct ActorObjects {
  std::string actor;
  std::string transport;  // effective transport
  std::string queue;      // <prefix><name>
  std::vector<boost::json::object> objects;
};

struct Rendered {
  std::vector<boost::json::object> shared;  // asya-runtime ConfigMap, end actors, gateway
  std::vector<ActorObjects> actors;
  // Everything in apply order (shared ConfigMap first), for printing.
  std::vector<boost::json::object> all() const;
};

// Renders `actors`. Fails, naming the actor and the field, when an actor cannot run on
// Kubernetes: transport sqlite with no cluster transport, a runtime container without an image,
// an object name clash, extra Kubernetes fields that are not valid YAML.
Result<Rendered> render(const std::vector<manifest::Actor>& actors, const RenderOptions& options,
                        const std::optional<GatewayRoutes>& routes = std::nullopt);

// Only the objects of one actor (the operator's per-resource view); no shared objects.
Result<ActorObjects> render_actor(const manifest::Actor& actor, const RenderOptions& options);

// The shared ConfigMap holding runtimes/python/asya_runtime.py (embedded at build time).
boost::json::object runtime_config_map(const RenderOptions& options);

// The bundled Python runtime's source.
std::string_view python_runtime_source();

}  // namespace asya::k8s
