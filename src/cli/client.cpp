#include "cli/client.hpp"

#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <system_error>

#include "common/env.hpp"
#include "common/http/client.hpp"
#include "local/status_document.hpp"
#include "sidecar/result_store.hpp"

namespace asya::cli {

namespace fs = std::filesystem;

[[noreturn]] void fail(int code, std::string message) {
  throw Exit{code, std::move(message)};
}

std::string resolve_gateway_url(const std::string& flag, const std::string& state_dir) {
  std::string url = flag;
  if (url.empty()) {
    if (const char* env = std::getenv("ASYA_GATEWAY_URL"); env && *env) url = env;
  }
  if (url.empty()) {
    local::StatePaths paths(local::resolve_state_dir(state_dir));
    std::string text;
    if (local::running_supervisor(paths) == 0 || !local::read_file(paths.status_file(), text))
      fail(kExitUsage,
           "no gateway: pass --gateway URL, set ASYA_GATEWAY_URL, or start one with "
           "`asya up` and a routes.yaml (no supervisor runs on " +
               paths.root.string() + ")");
    auto status = local::StatusDocument::parse(text);
    if (!status)
      fail(kExitUsage, paths.status_file().string() + " is unreadable (" + status.error().message +
                           "); pass --gateway URL");
    if (!status->gateway)
      fail(kExitUsage,
           "the supervisor on " + paths.root.string() +
               " runs no gateway (its manifests have no routes.yaml); pass --gateway URL");
    url = status->gateway->url;
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  // A sidecar's unix:PATH form (a gateway's Unix socket, docs/gateway.md) works here too.
  if (url.rfind("unix:", 0) == 0) return http::http_unix_url(url.substr(5));
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0 &&
      url.rfind(http::kHttpUnixScheme, 0) != 0)
    url = "http://" + url;
  return url;
}

void apply_gateway_defaults(const CLI::App& app, std::string& state_dir, std::string& token) {
  if (state_dir.empty())
    if (const CLI::Option* global = app.get_option_no_throw("--state-dir");
        global && global->count() > 0)
      state_dir = global->as<std::string>();
  if (token.empty())
    if (const char* t = std::getenv("ASYA_GATEWAY_TOKEN")) token = t;
}

Client::Client(const std::string& state_flag) : paths(local::resolve_state_dir(state_flag)) {
  transport_name = env_string("ASYA_TRANSPORT", "sqlite");
  if (auto p = env_get("ASYA_QUEUE_PREFIX")) prefix = *p;
  // A running supervisor knows better.
  if (auto status = local::read_status_document(paths.status_file())) {
    transport_name = status->transport;
    prefix = status->queue_prefix;
    for (const auto& a : status->actors) {
      supervised_actors.push_back(a.name);
      supervised_queues.push_back(a.queue.name);
    }
  }
}

transport::Transport& Client::queues() {
  if (!transport) {
    transport::Options options;
    if (transport_name == "sqlite") {
      std::error_code ec;
      fs::create_directories(paths.root, ec);
      options.sqlite_path = paths.queues_db().string();
    }
    try {
      options.max_message_bytes = max_message_bytes();
      transport = transport::make_transport(transport_name, options);
    } catch (const std::exception& e) {
      fail(kExitUsage, fmt::format("transport {}: {}", transport_name, e.what()));
    }
  }
  return *transport;
}

std::size_t Client::max_message_bytes() {
  return static_cast<std::size_t>(env_bytes("ASYA_MAX_MESSAGE_BYTES", 256u << 20));
}

std::optional<std::pair<std::string, fs::path>> find_result(const local::StatePaths& paths,
                                                            const std::string& id) {
  std::string name = sidecar::result_file_name(id);
  for (auto [status, dir] :
       {std::pair{"succeeded", paths.succeeded()}, std::pair{"failed", paths.failed()}}) {
    std::error_code ec;
    if (fs::exists(dir / name, ec)) return std::make_pair(std::string(status), dir / name);
  }
  return std::nullopt;
}

std::vector<StoredResult> list_results(const local::StatePaths& paths) {
  std::vector<StoredResult> out;
  for (auto [status, dir] :
       {std::pair{"succeeded", paths.succeeded()}, std::pair{"failed", paths.failed()}}) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      auto id = sidecar::result_id_from_file_name(it->path().filename().string());
      if (!id) continue;  // a put in progress, or not a result
      out.push_back({std::move(*id), status, it->path(), it->last_write_time(ec)});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.when < b.when; });
  return out;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string url_path_segment(const std::string& id) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string gateway_error_text(const std::string& body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (!ec && v.is_object())
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_string())
      return std::string(e->as_string());
  return body.substr(0, 300);
}

}  // namespace asya::cli
