// What the `asya` commands share: their exit codes, fail() to leave a command with a message, the
// queues of a state dir (Client) and the finished envelopes stored there (find_result,
// list_results).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "local/state.hpp"
#include "transport/transport.hpp"

namespace CLI {
class App;
}

namespace asya::cli {

// Exit codes: 0 success; 1 the message ended in error-end (send --wait, results) or a command
// failed; 2 invalid usage or manifests; 3 not found / timed out / not running.
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;

// Thrown to leave a command with a message (on stderr) and an exit code.
struct Exit {
  int code;
  std::string message;
};

[[noreturn]] void fail(int code, std::string message);

// The gateway URL a command talks to: `flag` (--gateway), else $ASYA_GATEWAY_URL, else the gateway
// of the supervisor running on `state_dir` (its status.json). No trailing '/'; http:// when no
// scheme is given. Fails (kExitUsage) naming what to pass.
std::string resolve_gateway_url(const std::string& flag, const std::string& state_dir);

// For the gateway commands run from a CLI11 callback (call, cancel): the global `--state-dir`
// when the command got none after its name, and $ASYA_GATEWAY_TOKEN when --token was not given.
void apply_gateway_defaults(const CLI::App& app, std::string& state_dir, std::string& token);

// Everything a client command needs to reach the queues of a state dir.
struct Client {
  local::StatePaths paths;
  std::string transport_name = "sqlite";
  std::string prefix = "asya-";
  // The queues of the running supervisor's actors (from status.json): RabbitMQ cannot list
  // queues, so `asya queues` adds these to what the transport lists.
  std::vector<std::string> supervised_queues;
  // The actors of the running supervisor (from status.json); empty when none runs.
  std::vector<std::string> supervised_actors;
  std::unique_ptr<transport::Transport> transport;

  explicit Client(const std::string& state_flag);

  // The transport, created on first use (fail(kExitUsage) when it cannot be).
  transport::Transport& queues();

  // ASYA_MAX_MESSAGE_BYTES, as the sidecars and the gateway read it (default 256MiB).
  static std::size_t max_message_bytes();
};

// Where a finished envelope is: ("succeeded"|"failed", file) or nullopt.
std::optional<std::pair<std::string, std::filesystem::path>> find_result(
    const local::StatePaths& paths, const std::string& id);

struct StoredResult {
  std::string id;
  std::string status;
  std::filesystem::path file;
  std::filesystem::file_time_type when;
};

// The finished envelopes of a state dir, oldest first.
std::vector<StoredResult> list_results(const local::StatePaths& paths);

// `text` without its trailing line breaks.
std::string trimmed(std::string text);

// An id percent-encoded for one URL path segment (/envelopes/{id}/...).
std::string url_path_segment(const std::string& id);

// The "error" of a gateway's JSON error body, else the body's first 300 bytes.
std::string gateway_error_text(const std::string& body);

}  // namespace asya::cli
