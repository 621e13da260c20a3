#include "sidecar/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/aws/s3.hpp"
#include "common/env.hpp"
#include "common/http/client.hpp"

namespace asya::sidecar {
namespace {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  if (!std::all_of(name.begin(), name.end(), ok)) return false;
  return name.front() != '-' && name.back() != '-';
}

std::string actor_name_var(const Environment& environment, const char* var, std::string fallback) {
  std::string value = environment.string(var, std::move(fallback));
  if (!valid_name(value))
    throw ConfigError(
        fmt::format("{}=\"{}\" is not a valid actor name: use lowercase letters, digits and '-' "
                    "(starting and ending with a letter or digit), at most 63 characters",
                    var, value));
  return value;
}

void check_metrics_addr(const std::string& addr) {
  if (addr.empty()) return;
  auto colon = addr.rfind(':');
  bool ok = colon != std::string::npos;
  if (ok) {
    std::string_view port(addr.data() + colon + 1, addr.size() - colon - 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    ok = !port.empty() && ec == std::errc() && ptr == port.data() + port.size() && value <= 65535;
  }
  if (!ok)
    throw ConfigError(fmt::format(
        "ASYA_METRICS_ADDR=\"{}\" is not an address: use host:port or :port (e.g. :9090), or leave "
        "it empty to disable metrics",
        addr));
}

}  // namespace

Config load_config(const Environment& environment) {
  Config c;
  environment.required("ASYA_ACTOR_NAME");
  c.actor_name = actor_name_var(environment, "ASYA_ACTOR_NAME", "");
  c.transport = environment.string("ASYA_TRANSPORT", c.transport);
  c.queue_prefix = environment.string("ASYA_QUEUE_PREFIX", c.queue_prefix);
  if (auto prefix = environment.get("ASYA_QUEUE_PREFIX"); prefix && prefix->empty())
    c.queue_prefix = "";

  if (auto path = environment.get("ASYA_SOCKET_PATH"); path && !path->empty()) {
    c.socket_path = *path;
  } else {
    std::string dir = environment.string("ASYA_SOCKET_DIR", "/var/run/asya");
    std::string name = environment.string("ASYA_SOCKET_NAME", "asya-runtime.sock");
    c.socket_path = dir + (dir.ends_with('/') ? "" : "/") + name;
  }

  c.runtime_timeout = environment.duration("ASYA_RUNTIME_TIMEOUT", c.runtime_timeout);
  if (c.runtime_timeout.count() <= 0)
    throw ConfigError(fmt::format(
        "ASYA_RUNTIME_TIMEOUT=\"{}\" is not valid: use a positive duration (e.g. 30s, 5m)",
        environment.string("ASYA_RUNTIME_TIMEOUT", "")));
  c.runtime_ready_timeout =
      environment.duration("ASYA_RUNTIME_READY_TIMEOUT", c.runtime_ready_timeout);
  c.happy_end = actor_name_var(environment, "ASYA_ACTOR_HAPPY_END", c.happy_end);
  c.error_end = actor_name_var(environment, "ASYA_ACTOR_ERROR_END", c.error_end);
  c.is_end_actor = environment.boolean("ASYA_IS_END_ACTOR",
                                       c.actor_name == c.happy_end || c.actor_name == c.error_end);

  c.gateway_url = environment.string("ASYA_GATEWAY_URL", "");
  if (c.gateway_url.starts_with("unix:")) {
    // A gateway on this machine, reached over its Unix socket (asya-gateway's
    // ASYA_GATEWAY_SOCKET): the reports' HTTP requests then skip loopback TCP.
    const std::string path = c.gateway_url.substr(5);
    if (!path.starts_with('/') || path.size() >= 108 || path.find('\0') != std::string::npos)
      throw ConfigError(fmt::format(
          "ASYA_GATEWAY_URL=\"{}\": after unix: must come the absolute path of the gateway's "
          "Unix socket (ASYA_GATEWAY_SOCKET), at most 107 bytes, e.g. unix:/run/asya/gateway.sock",
          c.gateway_url));
    c.gateway_url = http::http_unix_url(path);
  }
  while (c.gateway_url.ends_with('/')) c.gateway_url.pop_back();
  if (!c.gateway_url.empty() && !c.gateway_url.starts_with("http://") &&
      !c.gateway_url.starts_with("https://") && !c.gateway_url.starts_with(http::kHttpUnixScheme))
    throw ConfigError(fmt::format(
        "ASYA_GATEWAY_URL=\"{}\" is not an HTTP URL: use http://host:port, https://host:port or "
        "unix:/path/of/the/gateway.sock",
        c.gateway_url));
  c.gateway_internal_token = environment.string("ASYA_GATEWAY_INTERNAL_TOKEN", "");
  // The token goes into an HTTP header: a line break or other control byte would split it.
  if (std::any_of(c.gateway_internal_token.begin(), c.gateway_internal_token.end(),
                  [](unsigned char ch) { return ch < 0x21 || ch == 0x7f; }))
    throw ConfigError(
        "ASYA_GATEWAY_INTERNAL_TOKEN contains a space or control character (a trailing newline "
        "from a file?); use printable characters only");

  c.gateway_carry_wait = environment.duration("ASYA_GATEWAY_CARRY_WAIT", c.gateway_carry_wait);
  c.log_level = environment.string("ASYA_LOG_LEVEL", c.log_level);
  std::transform(c.log_level.begin(), c.log_level.end(), c.log_level.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (c.log_level == "warning") c.log_level = "warn";
  if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" &&
      c.log_level != "warn" && c.log_level != "error")
    throw ConfigError(
        fmt::format("ASYA_LOG_LEVEL=\"{}\" is not valid: use one of debug, info, warn, error",
                    environment.string("ASYA_LOG_LEVEL", "")));
  c.metrics_addr = environment.string("ASYA_METRICS_ADDR", "");
  check_metrics_addr(c.metrics_addr);

  c.concurrency = static_cast<int>(environment.integer("ASYA_CONCURRENCY", c.concurrency, 1, 1024));
  c.max_deliveries =
      static_cast<int>(environment.integer("ASYA_MAX_DELIVERIES", c.max_deliveries, 1, 1000000));
  c.retry_max_attempts = static_cast<int>(
      environment.integer("ASYA_RETRY_MAX_ATTEMPTS", c.retry_max_attempts, 1, 1000));
  c.retry_backoff = environment.duration("ASYA_RETRY_BACKOFF", c.retry_backoff);
  c.retry_backoff_max = environment.duration("ASYA_RETRY_BACKOFF_MAX", c.retry_backoff_max);
  if (c.retry_backoff_max < c.retry_backoff)
    throw ConfigError(fmt::format(
        "ASYA_RETRY_BACKOFF_MAX=\"{}\" is smaller than ASYA_RETRY_BACKOFF=\"{}\": use a maximum at "
        "least as large as the initial backoff",
        format_duration(c.retry_backoff_max), format_duration(c.retry_backoff)));
  c.retry_on_processing_error = environment.boolean("ASYA_RETRY_ON_PROCESSING_ERROR", false);
  c.shutdown_grace = environment.duration("ASYA_SHUTDOWN_GRACE", c.shutdown_grace);

  std::uint64_t max_bytes = environment.bytes("ASYA_MAX_MESSAGE_BYTES", c.max_message_bytes);
  if (max_bytes < 1024 || max_bytes > 0xFFFFFFFFull)
    throw ConfigError(
        fmt::format("ASYA_MAX_MESSAGE_BYTES=\"{}\" is out of range: use a size from 1KiB to 4GiB-1 "
                    "(e.g. 256MiB)",
                    environment.string("ASYA_MAX_MESSAGE_BYTES", "")));
  c.max_message_bytes = static_cast<std::size_t>(max_bytes);
  c.payload_fd = environment.boolean("ASYA_PAYLOAD_FD", c.payload_fd);

  c.result_store = environment.string("ASYA_RESULT_STORE", c.result_store);
  if (!c.result_store.starts_with("file://") && !c.result_store.starts_with("s3://"))
    throw ConfigError(
        fmt::format("ASYA_RESULT_STORE=\"{}\" is not a result store URL: use file:///path/to/dir, "
                    "file://relative/dir or s3://bucket/prefix",
                    c.result_store));
  // Checked here too (not only when an end actor opens the store), so a typo stops every sidecar.
  if (c.result_store.starts_with("s3://"))
    if (auto parsed = aws::parse_s3_url(c.result_store); !parsed)
      throw ConfigError("ASYA_RESULT_STORE=" + parsed.error().message);

  c.payload = payload::load_settings(environment);

  // Short, and extended by the lease keeper while a message is in progress: a sidecar that is
  // killed loses its messages for seconds, not minutes. End actors run no user code (one store
  // write per message), so theirs is shorter still.
  auto default_visibility =
      c.is_end_actor ? std::chrono::milliseconds(kEndActorVisibility) : kActorVisibility;
  c.visibility_timeout = environment.duration("ASYA_VISIBILITY_TIMEOUT", default_visibility);
  if (c.visibility_timeout.count() <= 0)
    throw ConfigError(fmt::format(
        "ASYA_VISIBILITY_TIMEOUT=\"{}\" is not valid: use a positive duration (e.g. 10m)",
        environment.string("ASYA_VISIBILITY_TIMEOUT", "")));
  c.join = join::load_join_config(environment);
  if (c.join.enabled) c.batch_max_size = 1;  // a join stores its branches one by one
  c.trace_collector = otlp::read_export_settings(environment, "asya-sidecar");
  c.trace_process = otlp::read_process_settings(environment, "asya-sidecar");

  c.batch_max_size =
      static_cast<int>(environment.integer("ASYA_BATCH_MAX_SIZE", c.batch_max_size, 1, 4096));
  c.batch_max_wait = environment.duration("ASYA_BATCH_MAX_WAIT", c.batch_max_wait);
  if (c.batch_max_wait > c.runtime_timeout)
    throw ConfigError(fmt::format(
        "ASYA_BATCH_MAX_WAIT=\"{}\" is longer than ASYA_RUNTIME_TIMEOUT=\"{}\": use a wait no "
        "longer than the runtime timeout (typically a few milliseconds)",
        format_duration(c.batch_max_wait), format_duration(c.runtime_timeout)));
  return c;
}

std::string help_text() {
  return R"(asya-sidecar: consumes an actor's queue, calls its runtime over a Unix socket and routes
the results (see docs/sidecar.md). All configuration comes from environment variables:

  ASYA_ACTOR_NAME             (required) actor name; the sidecar consumes <prefix><name>
  ASYA_TRANSPORT              sqlite        queue transport (sqlite; rabbitmq, sqs when built)
  ASYA_QUEUE_PREFIX           asya-         prefix of every queue name
  ASYA_SOCKET_PATH            /var/run/asya/asya-runtime.sock   runtime socket
  ASYA_SOCKET_DIR             /var/run/asya used when ASYA_SOCKET_PATH is unset: <dir>/<ASYA_SOCKET_NAME>
  ASYA_SOCKET_NAME            asya-runtime.sock   socket file name inside ASYA_SOCKET_DIR
  ASYA_RUNTIME_TIMEOUT        5m            max time for one runtime call (300ms, 30s, 5m, 1h);
                                            exceeded: error-end runtime_timeout, then exit 3
  ASYA_RUNTIME_READY_TIMEOUT  5m            max wait for the runtime to become ready (start-up and
                                            after it died); exceeded: exit 4
  ASYA_ACTOR_HAPPY_END        happy-end     name of the happy-end actor
  ASYA_ACTOR_ERROR_END        error-end     name of the error-end actor
  ASYA_IS_END_ACTOR           (auto)        true: end mode (persist + report); default true when
                                            ASYA_ACTOR_NAME is the happy-end or error-end name
  ASYA_RESULT_STORE           file://.asya/results   end mode: where <id>.json is written
                                            (file:///dir, file://relative/dir, s3://bucket/prefix)
  ASYA_GATEWAY_URL            (empty)       gateway base URL for progress/final reports; empty: none;
                                            unix:/path: a local gateway's Unix socket (docs/gateway.md)
  ASYA_GATEWAY_INTERNAL_TOKEN (empty)       bearer token sent with every report (the gateway's
                                            ASYA_GATEWAY_INTERNAL_TOKEN); empty: no Authorization
  ASYA_GATEWAY_CARRY_WAIT     50ms          how long a "completed" report may wait for the next
                                            cancellation check to carry it; 0: sent at once
  ASYA_LOG_LEVEL              info          debug, info, warn, error
  ASYA_METRICS_ADDR           (empty)       host:port or :port for /metrics, /healthz, /readyz;
                                            empty: disabled
  ASYA_CONCURRENCY            1             messages in flight, each with its own runtime connection
                                            (the Python runtime needs ASYA_HANDLER_THREAD_SAFE=true)
  ASYA_MAX_DELIVERIES         5             deliveries beyond this go to error-end
                                            (max_deliveries_exceeded) without calling the runtime
  ASYA_RETRY_MAX_ATTEMPTS     1             attempts per hop for retryable failures (1 = no retry)
  ASYA_RETRY_BACKOFF          1s            first retry delay; doubles per attempt, with jitter
  ASYA_RETRY_BACKOFF_MAX      1m            cap of the retry delay
  ASYA_RETRY_ON_PROCESSING_ERROR  false     also retry when the handler raised
  ASYA_FAILPOINTS             (unset)       tests only: crash (SIGKILL) at these named points
  ASYA_SHUTDOWN_GRACE         30s           on SIGTERM/SIGINT: time to finish in-flight messages
  ASYA_MAX_MESSAGE_BYTES      256MiB        largest frame/message accepted (1048576, 64KiB, 1GiB)
  ASYA_VISIBILITY_TIMEOUT     30s (end actors 10s)   lease of a received message; extended every
                                            third of it while the message is in progress, so
                                            a killed sidecar's messages come back after it
  ASYA_JOIN                   false         true: this actor joins fan-out branches (spec.join)
  ASYA_JOIN_TIMEOUT           10m           a group not complete this long after its first branch
                                            arrived is decided as timed out
  ASYA_JOIN_ON_TIMEOUT        error         error: join_timeout to error-end; partial: the handler
                                            gets what arrived (null for missing slots)
  ASYA_JOIN_STORE             sqlite://<dir of ASYA_SQLITE_PATH>/joins.db   where branches wait
                                            (postgresql://user@host/db: replicas on several hosts)
  ASYA_OTLP_ENDPOINT          (empty)       OTLP/HTTP receiver for trace spans (http://host:4318);
                                            also OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS,
                                            _TIMEOUT, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
                                            OTEL_BSP_* (docs/tracing.md). With ASYA_GATEWAY_URL the
                                            spans of gateway jobs also go to the gateway
  ASYA_BATCH_MAX_SIZE         1             envelopes per runtime call (1-4096; 1 = no batching);
                                            above 1 the runtime must accept batches
                                            (Python runtime: ASYA_HANDLER_BATCH=true)
  ASYA_BATCH_MAX_WAIT         10ms          longest wait for more envelopes after the first (only
                                            while more are ready; <= ASYA_RUNTIME_TIMEOUT)

Each transport reads its own variables (details in docs/configuration.md):
  sqlite    ASYA_SQLITE_PATH (.asya/queues.db), ASYA_SQLITE_SYNCHRONOUS (normal|full),
            ASYA_SQLITE_BUSY_TIMEOUT (5s), ASYA_SQLITE_POLL_INTERVAL (100ms),
            ASYA_SQLITE_FILE_BODY_BYTES (1MiB: larger bodies are files in <path>.bodies/; 0: none),
            ASYA_SQLITE_HAND_OFF (true: sends hand messages to waiting receivers)
  rabbitmq  ASYA_RABBITMQ_URL (amqp://user:pass@host:port/vhost), or ASYA_RABBITMQ_HOST,
            ASYA_RABBITMQ_PORT, ASYA_RABBITMQ_USERNAME, ASYA_RABBITMQ_PASSWORD, ASYA_RABBITMQ_VHOST;
            ASYA_RABBITMQ_CA_FILE, ASYA_RABBITMQ_EXCHANGE (asya), ASYA_RABBITMQ_PREFETCH (10),
            ASYA_RABBITMQ_QUEUE_TYPE (quorum|classic), ASYA_RABBITMQ_CONFIRM_TIMEOUT (30s),
            ASYA_RABBITMQ_CONNECT_TIMEOUT (10s), ASYA_RABBITMQ_CONFIRM_WINDOW (256), ASYA_RABBITMQ_HEARTBEAT (30s),
            ASYA_RABBITMQ_RPC_TIMEOUT (2 x heartbeat, 5s..10s), ASYA_RABBITMQ_MAX_MESSAGE_BYTES (128MiB)
  sqs       ASYA_SQS_ENDPOINT, AWS_REGION (AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL,
            ASYA_SQS_CREATE_QUEUES (true), ASYA_SQS_WAIT_TIME_SECONDS (20),
            ASYA_SQS_REQUEST_TIMEOUT (30s)
Large payloads by reference (docs/configuration.md "Payload store"):
  ASYA_PAYLOAD_STORE (empty: off; file:///dir or s3://bucket/prefix), ASYA_PAYLOAD_THRESHOLD
  (256KiB: larger payloads are stored and referenced), ASYA_PAYLOAD_GRACE (15m),
  ASYA_PAYLOAD_ORPHAN_AGE (24h), ASYA_PAYLOAD_SWEEP_INTERVAL (1m; end actors sweep)
  ASYA_PAYLOAD_FD (true: a payload in a file goes to a runtime that declared payload-fd as a
  read-only file descriptor; false: always its bytes)
The s3:// result store and payload store read ASYA_S3_ENDPOINT (or AWS_ENDPOINT_URL_S3) and the AWS_* variables.
Options: -h, --help prints this text; --version prints the version; both exit 0.
Exit codes: 0 after a clean shutdown, 1 fatal error, 2 invalid configuration, 3 runtime timeout,
4 runtime not ready in time.
)";
}

}  // namespace asya::sidecar
