#include "cli/cancel_command.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cli/client.hpp"
#include "common/http/client.hpp"
#include "common/json_text.hpp"
#include "local/state.hpp"
#include "local/status_document.hpp"

namespace asya::cli {
namespace {

namespace json = boost::json;

constexpr int kCancelled = 0;
constexpr int kAlreadyFinished = 1;
constexpr int kUsage = 2;
constexpr int kUnreachable = 3;

struct CancelArgs {
  std::string id;
  std::string reason;
  std::string gateway;
  std::string state_dir;
  std::string token;
};

struct Failure {
  int code;
  std::string message;
};

// The gateway URL (cli/client.hpp's rule), failing with this command's Failure.
std::string gateway_url(const CancelArgs& a) {
  try {
    return resolve_gateway_url(a.gateway, a.state_dir);
  } catch (const Exit& e) {
    throw Failure{e.code, e.message};
  }
}

int run(const CancelArgs& a) {
  std::string base = gateway_url(a);
  http::Request request;
  request.method = "POST";
  request.url = base + "/envelopes/" + url_path_segment(a.id) + "/cancel";
  request.headers.emplace_back("Content-Type", "application/json");
  if (!a.token.empty()) request.headers.emplace_back("Authorization", "Bearer " + a.token);
  json::object body;
  if (!a.reason.empty()) body["reason"] = a.reason;
  const std::string body_text = to_json_text(body);  // Request::body is a view
  request.body = body_text;
  request.connect_timeout = std::chrono::seconds(10);
  request.timeout = std::chrono::seconds(30);
  http::Client client;
  auto reply = client.perform(request);
  if (!reply) throw Failure{kUnreachable, "gateway not reachable: " + reply.error().message};
  switch (reply->status) {
    case 200:
      std::cout << "cancelled " << a.id << "\n";
      return kCancelled;
    case 409:
      std::cerr << "asya: " << gateway_error_text(reply->body) << "\n";
      return kAlreadyFinished;
    case 404:
      throw Failure{kUsage, gateway_error_text(reply->body)};
    default:
      throw Failure{kUnreachable, "gateway answered HTTP " + std::to_string(reply->status) + ": " +
                                      gateway_error_text(reply->body)};
  }
}

}  // namespace

void add_cancel_command(CLI::App& app) {
  auto args = std::make_shared<CancelArgs>();
  CLI::App* cmd = app.add_subcommand(
      "cancel",
      "Cancel a gateway job: its remaining actors skip it (a handler already running finishes, "
      "its outputs go no further)");
  cmd->add_option("id", args->id, "Job id (as `asya call` or GET /envelopes print it)")->required();
  cmd->add_option("--reason", args->reason, "Why, recorded as the job's error");
  cmd->add_option("--gateway", args->gateway,
                  "Gateway URL (default: $ASYA_GATEWAY_URL, else the running supervisor's)");
  cmd->add_option("--state-dir", args->state_dir,
                  "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  cmd->add_option("--token", args->token, "Bearer token (default: $ASYA_GATEWAY_TOKEN)");
  cmd->callback([args, &app] {
    // `asya --state-dir DIR call ...`: the global option, unless given after the command.
    apply_gateway_defaults(app, args->state_dir, args->token);
    int code = kUnreachable;
    try {
      code = run(*args);
    } catch (const Failure& f) {
      std::cerr << "asya: " << f.message << "\n";
      code = f.code;
    }
    std::cout.flush();
    if (code != 0) std::exit(code);
  });
}

}  // namespace asya::cli
