// `asya`: run pipelines on one machine and talk to them. docs/cli.md is the reference.
//
// Exit codes: 0 success; 1 the message ended in error-end (send --wait, results) or a command
// failed; 2 invalid usage or manifests; 3 not found / timed out / not running.
//
// This file only wires the arguments: each command is in its own file (up_command.cpp, ...,
// call_command.cpp), and what they share in client.cpp.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "cli/call_command.hpp"
#include "cli/cancel_command.hpp"
#include "cli/client.hpp"
#include "cli/down_command.hpp"
#include "cli/init_command.hpp"
#include "cli/logs_command.hpp"
#include "cli/queues_command.hpp"
#include "cli/render_command.hpp"
#include "cli/replay_command.hpp"
#include "cli/results_command.hpp"
#include "cli/send_command.hpp"
#include "cli/status_command.hpp"
#include "cli/trace_command.hpp"
#include "cli/up_command.hpp"
#include "cli/version_command.hpp"
#include "common/env.hpp"
#include "common/log.hpp"
#include "common/version.hpp"

using namespace asya;
using namespace asya::cli;

int main(int argc, char** argv) {
  // Log lines (a transport warns while its broker is unreachable) are JSON on stderr, like every
  // Asya process's; stdout carries only a command's output. Level: ASYA_LOG_LEVEL, default warn.
  try {
    asya::log::init("cli", asya::env_string("ASYA_LOG_LEVEL", "warn"));
  } catch (const asya::ConfigError& e) {
    std::cerr << "asya: " << e.what() << "\n";
    return kExitUsage;
  }
  CLI::App app{
      "asya: run async actor pipelines on this machine and talk to them.\n"
      "State (queues, results, logs) lives in --state-dir, $ASYA_STATE_DIR or ./.asya."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  app.set_version_flag("--version", "asya " + std::string(asya::version()),
                       "Print the version and exit (`asya version`: of every part)");

  auto state_option = [](CLI::App* cmd, std::string& target) {
    cmd->add_option("--state-dir", target,
                    "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  };
  // Global options may also come before the command (`asya --state-dir DIR down`); given after
  // it, the command's own wins.
  std::string global_state;
  state_option(&app, global_state);

  UpArgs up;
  auto* up_cmd = app.add_subcommand(
      "up",
      "Start the actors of the given manifests (files or directories; default: the current "
      "directory) with their end actors, and scale them on their queues. Ctrl-C stops "
      "gracefully.");
  up_cmd->add_option("paths", up.paths, "Manifest files or directories");
  up_cmd->add_flag("-d,--detach", up.detach,
                   "Run in the background; logs in <state>/logs, stop with `asya down`");
  up_cmd->add_flag("--plain", up.plain, "Plain log lines even on a terminal");
  up_cmd->add_flag("--reload", up.reload,
                   "Restart an actor's replicas (after they drain) when a Python file of its "
                   "handler's folder changes");
  up_cmd->add_flag("--no-end-actors", up.no_end_actors,
                   "Do not run happy-end/error-end (another host sharing the broker runs them)");
  up_cmd->add_option("--routes", up.routes,
                     "Gateway tools file (default: a routes.yaml among PATHs or in a PATH "
                     "directory); starts asya-gateway");
  up_cmd->add_flag("--no-gateway", up.no_gateway,
                   "Do not start the gateway even with a routes.yaml");
  up_cmd
      ->add_option("--gateway-port", up.gateway_port,
                   "Port of the gateway on 127.0.0.1 (default 8080; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  up_cmd
      ->add_option("--transport", up.transport,
                   "Run every actor on this transport instead of its spec.transport (broker "
                   "settings from the environment, e.g. ASYA_RABBITMQ_URL)")
      ->check(CLI::IsMember({"sqlite", "rabbitmq", "sqs"}));
  state_option(up_cmd, up.state_dir);

  std::string down_state;
  double down_timeout = 120;
  auto* down_cmd = app.add_subcommand("down",
                                      "Stop a supervisor started with `asya up --detach` "
                                      "(replicas drain first)");
  down_cmd->add_option("--timeout", down_timeout, "Seconds to wait for the stop (default 120)");
  state_option(down_cmd, down_state);

  SendArgs send;
  auto* send_cmd = app.add_subcommand(
      "send",
      "Send a message to an actor or along a route. Prints its id, or with --wait the "
      "final envelope(s) as JSON (exit 0 happy-end, 1 error-end, 3 timeout).");
  send_cmd->add_option("actor", send.actor, "The actor to send to (or use --route)");
  send_cmd->add_option("-r,--route", send.route, "Actors in order, comma-separated: a,b,c");
  send_cmd->add_option("-p,--payload", send.payload, "The payload: JSON text, or @file.json");
  send_cmd->add_option("--envelope", send.envelope,
                       "A complete envelope (JSON or @file), sent as is to its current actor");
  send_cmd->add_option("-H,--header", send.headers, "A header key=value (repeatable)");
  send_cmd->add_option("--deadline", send.deadline, "Give up after this long: 30s, 5m");
  auto* send_id = send_cmd->add_option("--id", send.id, "Envelope id (default: a random UUID)");
  send_cmd->add_flag("-w,--wait", send.wait, "Wait for the final result and print it");
  send_cmd->add_option("--timeout", send.timeout, "Seconds to wait with --wait (default 60)");
  send_cmd->add_flag("--force", send.force,
                     "Send even to an actor the running `asya up` does not run (its queue is "
                     "consumed elsewhere, e.g. by another host sharing the broker)");
  state_option(send_cmd, send.state_dir);

  ResultsArgs results;
  std::string& results_state = results.state_dir;
  auto* results_cmd = app.add_subcommand(
      "results",
      "Print the stored final envelope of ID (exit 1 when it ended in error-end), list "
      "finished ids, or with --failed the failed ones with their actor and error");
  results_cmd->add_option("id", results.id, "Envelope id");
  results_cmd->add_flag("--json", results.json, "List as JSON");
  results_cmd->add_flag("--failed", results.failed,
                        "List only failed envelopes: time, id, the actor that failed, error type "
                        "and message");
  results_cmd->add_option("--since", results.since,
                          "Only results stored since then: a duration back from now (30m, 2h) "
                          "or an RFC 3339 time");
  results_cmd->add_option("--actor", results.actor,
                          "With --failed: only those that failed at ACTOR");
  state_option(results_cmd, results_state);

  std::string queues_state;
  bool queues_json = false;
  auto* queues_cmd =
      app.add_subcommand("queues", "Ready, in-flight and delayed messages per queue");
  queues_cmd->add_flag("--json", queues_json, "Print JSON");
  state_option(queues_cmd, queues_state);
  PurgeArgs purge;
  auto* purge_cmd = queues_cmd->add_subcommand(
      "purge",
      "Remove the messages waiting in QUEUE (ready and delayed; those being processed stay) and "
      "print how many were removed");
  purge_cmd->add_option("queue", purge.queue, "Queue name (as `asya queues` lists it) or actor")
      ->required();
  purge_cmd->add_flag("--json", purge.json, "Print {\"queue\", \"transport\", \"removed\"}");
  state_option(purge_cmd, purge.state_dir);

  ReplayArgs replay;
  auto* replay_cmd = add_replay_command(app, replay);

  std::string status_state;
  bool status_json = false;
  auto* status_cmd = app.add_subcommand(
      "status", "Actors of the running supervisor: replicas, queue, processed, errors, rate");
  status_cmd->add_flag("--json", status_json, "Print JSON");
  state_option(status_cmd, status_state);

  LogsArgs logs;
  std::string& logs_state = logs.state_dir;
  auto* logs_cmd = app.add_subcommand(
      "logs",
      "Print the logs of every process (supervisor, gateway, sidecars, runtimes) merged by "
      "time as JSON lines with a \"process\" field, or only ACTOR's (also: gateway, "
      "supervisor)");
  logs_cmd->add_option("actor", logs.actor, "Actor name, gateway or supervisor");
  logs_cmd->add_option("-n,--lines", logs.lines, "Only the last N lines");
  logs_cmd->add_flag("-f,--follow", logs.follow,
                     "Keep printing new lines of every file (Ctrl-C stops)");
  logs_cmd->add_flag("--pretty", logs.pretty,
                     "Readable lines: time, process, level, message, other fields");
  state_option(logs_cmd, logs_state);

  asya::cli::add_render_command(app);
  asya::cli::add_call_command(app);
  asya::cli::add_cancel_command(app);
  asya::cli::add_trace_command(app);
  asya::cli::add_init_command(app);

  auto* version_cmd = app.add_subcommand(
      "version",
      "Print the versions of every part: asya, asya-sidecar, asya-gateway, the runtime protocol "
      "and the Python runtime, with the files found (exit 3 when a part is missing)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  for (std::string* state : {&up.state_dir, &down_state, &send.state_dir, &results_state,
                             &queues_state, &status_state, &logs_state}) {
    if (state->empty()) *state = global_state;
  }
  if (purge.state_dir.empty()) purge.state_dir = queues_state;
  if (replay.state_dir.empty()) replay.state_dir = global_state;
  try {
    if (*up_cmd) return run_up(up);
    if (*down_cmd) return run_down(down_state, down_timeout);
    if (*send_cmd) {
      send.id_given = send_id->count() > 0;
      return run_send(send);
    }
    if (*results_cmd) return run_results(results);
    if (*purge_cmd) return run_queues_purge(purge);
    if (*queues_cmd) return run_queues(queues_state, queues_json);
    if (*replay_cmd) return run_replay(replay);
    if (*status_cmd) return run_status(status_state, status_json);
    if (*logs_cmd) return run_logs(logs);
    if (*version_cmd) return run_version();
  } catch (const Exit& e) {
    std::cerr << "asya: " << e.message << "\n";
    return e.code;
  } catch (const ConfigError& e) {
    std::cerr << "asya: " << e.what() << "\n";
    return kExitUsage;
  }
  return 0;
}
