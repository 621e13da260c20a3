// RabbitMQ settings from the environment, URL parsing and delay buckets.
#include <amqp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/env.hpp"
#include "transport/rabbitmq/rabbitmq_transport.hpp"

namespace asya::transport {

void RabbitmqSettings::apply_url(std::string_view url) {
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK || info.host == nullptr ||
      *info.host == '\0') {
    // The password must not appear in a message: show the URL only up to the scheme.
    throw ConfigError("ASYA_RABBITMQ_URL is not a valid AMQP URL (scheme \"" +
                      std::string(url.substr(0, url.find(':'))) +
                      "\"): use amqp://user:password@host:5672/vhost (or amqps:// for TLS; "
                      "encode a vhost \"/\" as %2F)");
  }
  host = info.host;
  port = info.port;
  username = info.user ? info.user : "guest";
  password = info.password ? info.password : "guest";
  vhost = info.vhost && *info.vhost ? info.vhost : "/";
  tls = info.ssl != 0;
}

RabbitmqSettings RabbitmqSettings::from_env(const Environment& environment) {
  RabbitmqSettings s;
  if (auto url = environment.get("ASYA_RABBITMQ_URL"); url && !url->empty()) {
    s.apply_url(*url);
  } else {
    s.host = environment.string("ASYA_RABBITMQ_HOST", s.host);
    s.port = static_cast<int>(environment.integer("ASYA_RABBITMQ_PORT", s.port, 1, 65535));
    s.username = environment.string("ASYA_RABBITMQ_USERNAME", s.username);
    s.password = environment.string("ASYA_RABBITMQ_PASSWORD", s.password);
    s.vhost = environment.string("ASYA_RABBITMQ_VHOST", s.vhost);
  }
  s.ca_file = environment.string("ASYA_RABBITMQ_CA_FILE", s.ca_file);
  s.exchange = environment.string("ASYA_RABBITMQ_EXCHANGE", s.exchange);
  s.prefetch =
      static_cast<int>(environment.integer("ASYA_RABBITMQ_PREFETCH", s.prefetch, 1, 65535));
  s.quorum =
      environment.choice("ASYA_RABBITMQ_QUEUE_TYPE", "quorum", {"quorum", "classic"}) == "quorum";
  s.confirm_timeout = environment.duration("ASYA_RABBITMQ_CONFIRM_TIMEOUT", s.confirm_timeout);
  if (s.confirm_timeout < std::chrono::milliseconds(100)) {
    throw ConfigError("ASYA_RABBITMQ_CONFIRM_TIMEOUT=\"" + format_duration(s.confirm_timeout) +
                      "\" is too short: use at least 100ms (default 30s)");
  }
  s.connect_timeout = environment.duration("ASYA_RABBITMQ_CONNECT_TIMEOUT", s.connect_timeout);
  if (s.connect_timeout < std::chrono::milliseconds(100)) {
    throw ConfigError("ASYA_RABBITMQ_CONNECT_TIMEOUT=\"" + format_duration(s.connect_timeout) +
                      "\" is too short: use at least 100ms (default 10s)");
  }
  s.rpc_timeout = environment.duration("ASYA_RABBITMQ_RPC_TIMEOUT", s.rpc_timeout);
  if (s.rpc_timeout.count() != 0 && s.rpc_timeout < std::chrono::milliseconds(100)) {
    throw ConfigError(
        "ASYA_RABBITMQ_RPC_TIMEOUT=\"" + format_duration(s.rpc_timeout) +
        "\" is too short: use at least 100ms (default: twice the heartbeat, 5s..10s)");
  }
  s.confirm_window = static_cast<int>(
      environment.integer("ASYA_RABBITMQ_CONFIRM_WINDOW", s.confirm_window, 1, 65535));
  auto heartbeat = environment.duration("ASYA_RABBITMQ_HEARTBEAT", s.heartbeat);
  s.heartbeat = std::chrono::duration_cast<std::chrono::seconds>(heartbeat);
  if (heartbeat.count() != 0 && (s.heartbeat.count() < 1 || s.heartbeat.count() > 65535)) {
    throw ConfigError("ASYA_RABBITMQ_HEARTBEAT=\"" + format_duration(heartbeat) +
                      "\" is out of range: use 0 (off) or 1s..18h (default 30s)");
  }
  s.max_message_bytes = static_cast<std::size_t>(
      environment.bytes("ASYA_RABBITMQ_MAX_MESSAGE_BYTES", s.max_message_bytes));
  if (s.max_message_bytes < 1024 || s.max_message_bytes > (512u << 20)) {
    throw ConfigError("ASYA_RABBITMQ_MAX_MESSAGE_BYTES=" + std::to_string(s.max_message_bytes) +
                      " is out of range: use 1KiB..512MiB, at most the broker's max_message_size "
                      "(default 128MiB)");
  }
  return s;
}

std::string RabbitmqSettings::describe() const {
  return std::string(tls ? "amqps://" : "amqp://") + username + "@" + host + ":" +
         std::to_string(port) + "/" + (vhost == "/" ? "%2F" : vhost);
}

std::chrono::milliseconds RabbitmqSettings::step_timeout() const {
  using std::chrono::milliseconds;
  if (rpc_timeout.count() > 0) return rpc_timeout;
  if (heartbeat.count() == 0) return milliseconds(10'000);
  return std::clamp<milliseconds>(2 * heartbeat, milliseconds(5'000), milliseconds(10'000));
}

std::chrono::milliseconds rabbitmq_delay_bucket(std::chrono::milliseconds delay) {
  std::int64_t ms = delay.count();
  if (ms <= 0) return std::chrono::milliseconds(0);
  std::int64_t scale = 1;
  while (ms > 99 * scale) scale *= 10;
  // ms <= 99 * scale: round up to a multiple of scale (two significant digits).
  return std::chrono::milliseconds((ms + scale - 1) / scale * scale);
}

std::string rabbitmq_delay_queue_name(std::string_view queue, std::chrono::milliseconds bucket) {
  return std::string(queue) + ".delay." + std::to_string(bucket.count());
}

}  // namespace asya::transport
