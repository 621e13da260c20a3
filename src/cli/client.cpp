#include "cli/client.hpp"

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <exception>
#include <system_error>

#include "common/env.hpp"
#include "local/status_document.hpp"
#include "sidecar/result_store.hpp"

namespace asya::cli {

namespace fs = std::filesystem;

[[noreturn]] void fail(int code, std::string message) {
  throw Exit{code, std::move(message)};
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

}  // namespace asya::cli
