#include "cli/status_command.hpp"

#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <iostream>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "common/json_text.hpp"
#include "local/process.hpp"
#include "local/state.hpp"
#include "local/status_document.hpp"

namespace asya::cli {
namespace {

namespace json = boost::json;

// `asya status` warns about a status.json older than this (it is rewritten every second).
constexpr double kStaleStatusSeconds = 5;
// How long `asya status` waits for the fresh status it asked for (the supervisor waits up to 2 s
// for queue counts read after the request); after it, the last written status is shown.
constexpr auto kFreshStatusWait = std::chrono::seconds(4);

// A JSON log line (the sidecar's and the Python runtime's format) as "level: msg"; any other
// line as it is.
std::string readable_log_line(std::string_view line) {
  boost::system::error_code ec;
  auto value = json::parse(line, ec);
  if (ec || !value.is_object()) return std::string(line);
  const auto& o = value.as_object();
  const auto* msg = o.if_contains("msg");
  if (!msg || !msg->is_string()) return std::string(line);
  const auto* level = o.if_contains("level");
  std::string prefix = level && level->is_string() ? std::string(level->as_string()) + ": " : "";
  return prefix + std::string(msg->as_string());
}

}  // namespace

int run_status(const std::string& state_dir, bool as_json) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  int pid = local::running_supervisor(paths);
  std::string text;
  if (pid == 0 || !local::read_file(paths.status_file(), text)) {
    if (as_json) std::cout << "{\"running\":false}\n";
    std::cerr << fmt::format("asya: not running on {}; start it with `asya up`\n",
                             paths.root.string());
    return kExitNotFound;
  }
  // A fresh status: the supervisor rewrites status.json about once a second, so right after
  // `asya send --wait` returned the file may still show the message queued. SIGUSR1 asks it to
  // read every queue and sidecar now and write the file; wait (a little) for that write.
  {
    auto asked_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    if (::kill(pid, SIGUSR1) == 0) {
      const auto give_up = std::chrono::steady_clock::now() + kFreshStatusWait;
      while (std::chrono::steady_clock::now() < give_up) {
        std::string fresh;
        if (local::read_file(paths.status_file(), fresh)) {
          auto parsed = local::StatusDocument::parse(fresh);
          if (parsed && parsed->updated >= asked_ms) {
            text = std::move(fresh);
            break;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  auto status = local::StatusDocument::parse(text);
  if (!status)
    fail(kExitError,
         fmt::format("{} is unreadable: {}", paths.status_file().string(), status.error().message));
  // How old the data is: the supervisor rewrites status.json every second; older data means it
  // cannot write it (a full disk) or is blocked.
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  const double age = std::max(0.0, static_cast<double>(now_ms - status->updated) / 1000);
  const bool stale = age > kStaleStatusSeconds;
  if (stale)
    std::cerr << fmt::format(
        "asya: warning: this status was written {:.0f}s ago (the supervisor rewrites it every "
        "second): it cannot write {} (full disk?) or is blocked; see {}\n",
        age, paths.status_file().string(), paths.supervisor_log().string());
  if (as_json) {
    json::object root = status->to_json();
    root["running"] = true;
    root["age_seconds"] = std::round(age * 10) / 10;
    root["stale"] = stale;
    std::cout << to_json_text(root) << "\n";
    return 0;
  }
  std::cout << fmt::format("asya: running (pid {}), transport {}, state {}, as of {:.1f}s ago\n",
                           pid, status->transport, paths.root.string(), age);
  if (status->gateway)
    std::cout << fmt::format("gateway: {} ({})\n", status->gateway->url,
                             status->gateway->running ? "running" : "restarting");
  std::cout << "\n";
  std::cout << fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8}  {}\n", "ACTOR", "REPLICAS",
                           "QUEUE", "IN-FLIGHT", "PROCESSED", "ERRORS", "RATE/s", "STATE");
  for (const auto& a : status->actors) {
    std::cout << fmt::format("{:<24} {:>9} {:>7} {:>9} {:>10} {:>7} {:>8.1f}  {}\n", a.name,
                             fmt::format("{}/{}", a.replicas.ready, a.replicas.desired),
                             a.queue.ready, a.queue.in_flight, a.processed, a.errors, a.rate,
                             local::label(a.state));
    if (a.state == local::ActorActivity::kCrashLooping || a.crash_streak > 0) {
      std::cout << "    last crash: " << a.last_crash << "\n";
      for (const auto& line : a.last_crash_output)
        std::cout << "      | " << readable_log_line(line) << "\n";
    }
    if (!a.queue.stats_error.empty())
      std::cout << "    queue counts not current: " << a.queue.stats_error << "\n";
  }
  return 0;
}

}  // namespace asya::cli
