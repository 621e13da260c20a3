// asya-gateway: pipelines as MCP tools and a REST API (see docs/gateway.md for every variable).
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "common/env.hpp"
#include "common/log.hpp"
#include "common/shutdown_signals.hpp"
#include "common/version.hpp"
#include "gateway/api.hpp"
#include "gateway/help.hpp"
#include "gateway/http/http.hpp"
#include "gateway/service.hpp"

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto begin = item.find_first_not_of(' ');
    auto end = item.find_last_not_of(' ');
    if (begin != std::string::npos) out.push_back(item.substr(begin, end - begin + 1));
  }
  return out;
}

// 1024, or fewer when `ulimit -n` is lower: 64 descriptors stay for the job store, the transport
// and the logs, so the cap is reached (503) before accept runs out of descriptors.
int default_max_connections() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1024;
  auto spare = static_cast<long long>(limit.rlim_cur) - 64;
  return static_cast<int>(std::clamp<long long>(spare, 8, 1024));
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, so that every thread inherits the mask (shutdown_signals.hpp).
  asya::SignalSet().block();
  using namespace asya;
  using namespace asya::gateway;
  if (auto exit_code = answer_informational_arguments(
          std::span(argv + 1, argv + argc), "asya-gateway", help_text(), std::cout, std::cerr, 2)) {
    return *exit_code;
  }
  try {
    log::init("gateway", env_string("ASYA_LOG_LEVEL", "info"));
  } catch (const ConfigError& e) {
    spdlog::error("{}", e.what());  // the JSON line of the default logger
    return 2;
  }
  try {
    std::string config_path = env_string("ASYA_CONFIG_PATH", "routes.yaml");
    ToolsConfig tools = load_tools(config_path);
    std::string host = env_string("ASYA_GATEWAY_HOST", "0.0.0.0");
    auto port = static_cast<std::uint16_t>(env_int("ASYA_GATEWAY_PORT", 8080, 0, 65535));
    http::ServerOptions server_options;
    server_options.unix_socket = env_string("ASYA_GATEWAY_SOCKET", "");
    server_options.max_body_bytes = env_bytes("ASYA_GATEWAY_MAX_BODY_BYTES", 16u << 20);
    server_options.max_connections = static_cast<std::size_t>(
        env_int("ASYA_GATEWAY_MAX_CONNECTIONS", default_max_connections(), 1, 1000000));
    server_options.header_timeout =
        env_duration("ASYA_GATEWAY_HEADER_TIMEOUT", std::chrono::seconds(10));
    if (server_options.header_timeout.count() <= 0)
      throw ConfigError("ASYA_GATEWAY_HEADER_TIMEOUT must be positive (e.g. 10s)");

    ServiceOptions service_options;
    service_options.queue_prefix = env_string("ASYA_QUEUE_PREFIX", "asya-");
    service_options.trace_collector = otlp::read_export_settings(Environment(), "asya-gateway");
    service_options.trace_process = otlp::read_process_settings(Environment(), "asya-gateway");
    service_options.payload = payload::load_settings();
    service_options.poll_interval =
        env_duration("ASYA_GATEWAY_POLL_INTERVAL", std::chrono::seconds(2));
    service_options.blocking_threads =
        static_cast<std::size_t>(env_int("ASYA_GATEWAY_THREADS", 4, 1, 256));
    ApiOptions api_options;
    api_options.token = env_string("ASYA_GATEWAY_TOKEN", "");
    api_options.internal_token = env_string("ASYA_GATEWAY_INTERNAL_TOKEN", "");
    api_options.allowed_origins = split_list(env_string("ASYA_GATEWAY_ALLOWED_ORIGINS", ""));
    api_options.allowed_hosts = split_list(env_string("ASYA_GATEWAY_ALLOWED_HOSTS", ""));
    // On a wildcard address the names clients use cannot be known: any Host is accepted until
    // ASYA_GATEWAY_ALLOWED_HOSTS lists them. On a specific address only that address, IP
    // literals and localhost (plus the list) pass.
    if (api_options.allowed_hosts.empty() && (host == "0.0.0.0" || host == "::"))
      api_options.allowed_hosts.push_back("*");
    api_options.instance_id = env_string("ASYA_GATEWAY_INSTANCE_ID", "");
    api_options.span_limits.max_spans_per_job =
        static_cast<std::size_t>(env_int("ASYA_GATEWAY_TRACE_MAX_SPANS", 1000, 0, 1000000));
    api_options.span_limits.max_span_bytes = static_cast<std::size_t>(
        env_int("ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES", 64 << 10, 1024, 16 << 20));
    api_options.span_limits.retention =
        env_duration("ASYA_GATEWAY_TRACE_RETENTION", std::chrono::hours(24));
    api_options.actor_monitor.status_file = env_string("ASYA_GATEWAY_STATUS_FILE", "");
    if (api_options.span_limits.retention.count() <= 0)
      throw ConfigError("ASYA_GATEWAY_TRACE_RETENTION must be positive (e.g. 24h)");
    api_options.keepalive = env_duration("ASYA_GATEWAY_KEEPALIVE", std::chrono::seconds(15));
    if (api_options.keepalive.count() <= 0)
      throw ConfigError("ASYA_GATEWAY_KEEPALIVE must be positive (e.g. 15s)");
    api_options.mcp_session_timeout =
        env_duration("ASYA_GATEWAY_MCP_SESSION_TIMEOUT", std::chrono::hours(1));
    if (api_options.mcp_session_timeout.count() <= 0)
      throw ConfigError("ASYA_GATEWAY_MCP_SESSION_TIMEOUT must be positive (e.g. 1h)");
    api_options.mcp_poll_after =
        env_duration("ASYA_GATEWAY_MCP_POLL_AFTER", std::chrono::milliseconds(0));
    if (api_options.mcp_poll_after.count() < 0)
      throw ConfigError("ASYA_GATEWAY_MCP_POLL_AFTER must be 0 (off) or positive (e.g. 30s)");

    auto store = open_job_store_from_env();
    transport::Options transport_options;
    transport_options.max_message_bytes = env_bytes("ASYA_MAX_MESSAGE_BYTES", 256u << 20);
    auto transport =
        transport::make_transport(env_string("ASYA_TRANSPORT", "sqlite"), transport_options);

    boost::asio::io_context io(1);
    Metrics metrics;
    Service service(io, service_options, std::move(tools), std::move(store), std::move(transport),
                    metrics);
    Api api(service, api_options);
    service.call_tracer().set_local_sink(job_store_sink(service.store(), api_options.span_limits,
                                                        service_options.trace_process.resource));
    http::Server server(
        io, host, port, [&api](http::Request request) { return api.handle(std::move(request)); },
        server_options);
    service.start();
    server.start();
    spdlog::info("gateway: listening on {}:{}{} with {} tools, job store {}, transport {}", host,
                 server.port(),
                 server_options.unix_socket.empty() ? std::string()
                                                    : " and on " + server_options.unix_socket,
                 service.tools().tools.size(), service.store().name(),
                 env_string("ASYA_TRANSPORT", "sqlite"));

    // The first SIGTERM/SIGINT stops the server on the io thread; later ones change nothing.
    std::atomic<bool> signalled{false};
    SignalWatcher signal_watcher(SignalSet(), [&](int signal) {
      if (signalled.exchange(true)) return;
      boost::asio::post(io, [&, signal] {
        spdlog::info("gateway: {}, shutting down", signal_name(signal));
        server.stop();
        io.stop();
      });
    });
    io.run();
    service.stop();
    return 0;
  } catch (const LoadError& e) {
    spdlog::error("gateway: routes config: {}", e.what());
    return 2;
  } catch (const ConfigError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
