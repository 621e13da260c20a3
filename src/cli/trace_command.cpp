#include "cli/trace_command.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cli/client.hpp"
#include "cli/trace_waterfall.hpp"
#include "common/http/client.hpp"
#include "common/json_text.hpp"

namespace asya::cli {
namespace {

namespace json = boost::json;

struct TraceArgs {
  std::string id;
  bool json_output = false;
  std::string gateway;
  std::string state_dir;
  std::string token;
};

int run(const TraceArgs& a) {
  std::string base = resolve_gateway_url(a.gateway, a.state_dir);
  http::Request request;
  request.method = "GET";
  request.url = base + "/envelopes/" + url_path_segment(a.id) + "/trace";
  if (!a.token.empty()) request.headers.emplace_back("Authorization", "Bearer " + a.token);
  request.connect_timeout = std::chrono::seconds(10);
  request.timeout = std::chrono::seconds(30);
  http::Client client;
  auto reply = client.perform(request);
  if (!reply)
    fail(kExitNotFound, "gateway not reachable at " + base + ": " + reply.error().message);
  if (reply->status == 404) fail(kExitUsage, gateway_error_text(reply->body));
  if (reply->status != 200) {
    fail(kExitNotFound, "gateway answered HTTP " + std::to_string(reply->status) + ": " +
                            gateway_error_text(reply->body));
  }
  boost::system::error_code ec;
  json::value trace = json::parse(reply->body, ec);
  if (ec || !trace.is_object())
    fail(kExitNotFound, "gateway answered a trace that is not a JSON object");
  TraceWaterfall waterfall = waterfall_of(trace);
  if (a.json_output) {
    json::object out = waterfall_json(waterfall);
    out["spans"] = trace.as_object().contains("spans") ? trace.at("spans") : json::array();
    std::cout << to_json_text(out) << "\n";
  } else {
    std::cout << render_waterfall(waterfall);
  }
  return 0;
}

}  // namespace

void add_trace_command(CLI::App& app) {
  auto args = std::make_shared<TraceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "trace",
      "Print a job's trace as a waterfall: one line per hop with its actor, start, queue wait, "
      "handler and publish time and outcome (spans kept by the gateway)");
  cmd->add_option("id", args->id, "Job or envelope id (as `asya call` or GET /envelopes print it)")
      ->required();
  cmd->add_flag("--json", args->json_output,
                "Print {job_id, status, trace_ids, duration_ms, hops, spans} as JSON");
  cmd->add_option("--gateway", args->gateway,
                  "Gateway URL (default: $ASYA_GATEWAY_URL, else the running supervisor's)");
  cmd->add_option("--state-dir", args->state_dir,
                  "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  cmd->add_option("--token", args->token, "Bearer token (default: $ASYA_GATEWAY_TOKEN)");
  cmd->callback([args, &app] {
    apply_gateway_defaults(app, args->state_dir, args->token);
    int code = 0;
    try {
      code = run(*args);
    } catch (const Exit& e) {
      std::cerr << "asya: " << e.message << "\n";
      code = e.code;
    }
    std::cout.flush();
    if (code != 0) std::exit(code);
  });
}

}  // namespace asya::cli
