#include "cli/target_check.hpp"

#include <chrono>

#include "gateway/config/tools_config.hpp"
#include "local/status_document.hpp"

namespace asya::cli {
namespace {

std::optional<local::StatusDocument> running_status(const local::StatePaths& paths) {
  if (local::running_supervisor(paths) == 0) return std::nullopt;
  auto status = local::read_status_document(paths.status_file());
  if (!status) return std::nullopt;
  return std::move(*status);
}

std::string without_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

std::optional<local::UnavailableActor> unavailable_actor(const local::StatePaths& paths,
                                                         const std::vector<std::string>& actors,
                                                         bool allow_unknown) {
  if (actors.empty()) return std::nullopt;
  auto status = running_status(paths);
  if (!status) return std::nullopt;
  return local::find_unavailable_actor(*status, actors, allow_unknown);
}

std::vector<std::string> tool_actors(const local::StatePaths& paths, const std::string& gateway_url,
                                     const std::string& tool) {
  auto status = running_status(paths);
  if (!status || !status->gateway ||
      without_trailing_slashes(status->gateway->url) != without_trailing_slashes(gateway_url))
    return {};
  try {
    for (const auto& t : gateway::load_tools(status->gateway->routes).tools)
      if (t.name == tool) return t.actors;
  } catch (const std::exception&) {
    // The gateway loaded it at start; a file edited since is the gateway's business.
  }
  return {};
}

AvailabilityWatch::AvailabilityWatch(local::StatePaths paths, std::vector<std::string> actors,
                                     bool allow_unknown)
    : paths_(std::move(paths)), actors_(std::move(actors)), allow_unknown_(allow_unknown) {
  if (actors_.empty()) return;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      if (auto why = unavailable_actor(paths_, actors_, allow_unknown_)) {
        std::lock_guard lock(mutex_);
        why_ = std::move(why);
        unavailable_.store(true);
        return;
      }
      for (int i = 0; i < 5 && !stop_.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

AvailabilityWatch::~AvailabilityWatch() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::optional<local::UnavailableActor> AvailabilityWatch::unavailable() const {
  std::lock_guard lock(mutex_);
  return why_;
}

}  // namespace asya::cli
