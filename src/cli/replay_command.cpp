#include "cli/replay_command.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

#include "cli/client.hpp"
#include "cli/failed_results.hpp"
#include "common/env.hpp"
#include "envelope/replay.hpp"
#include "local/state.hpp"
#include "sidecar/result_file_name.hpp"

namespace asya::cli {

namespace fs = std::filesystem;

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args) {
  auto* cmd = app.add_subcommand(
      "replay",
      "Send failed envelopes again from the actor that failed (or --from another actor of their "
      "route): a dead-letter redrive. Same id, the original payload, a fresh retry budget.");
  cmd->add_option("ids", args.ids, "Ids of failed envelopes (`asya results --failed` lists them)");
  cmd->add_option("--from", args.from,
                  "Start at this actor of the route (default: the one that "
                  "failed)");
  cmd->add_flag("--all-failed", args.all_failed, "Replay every failed envelope");
  cmd->add_option("--actor", args.actor, "With --all-failed: only those that failed at ACTOR");
  cmd->add_option("--since", args.since,
                  "With --all-failed: only those that failed since then (30m, 2h, or an RFC 3339 "
                  "time)");
  cmd->add_option("--deadline", args.deadline,
                  "Give the replayed envelopes a new deadline this far from now: 30s, 5m "
                  "(default: none; the old one is dropped)");
  cmd->add_flag("--force", args.force, "Send even to an actor the running `asya up` does not run");
  cmd->add_option("--state-dir", args.state_dir,
                  "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  return cmd;
}

namespace {

struct Replayer {
  const ReplayArgs& args;
  Client client;
  std::optional<std::chrono::system_clock::time_point> deadline;

  // Replays the failed envelope stored in `file`; returns code 0, or the exit code and why not.
  Exit replay(const fs::path& file) {
    std::string stored;
    if (!local::read_file(file, stored)) return Exit{kExitError, "cannot read " + file.string()};
    auto failed = envelope::read_failed(stored);
    if (!failed) return Exit{kExitError, file.string() + ": " + failed.error().message};
    envelope::ReplayOptions options;
    options.from_actor = args.from;
    options.deadline = deadline;
    auto replay = envelope::build_replay(*failed, options);
    if (!replay) return Exit{kExitUsage, replay.error().message};
    const auto& running = client.supervised_actors;
    if (!args.force && !running.empty() &&
        std::find(running.begin(), running.end(), replay->actor) == running.end()) {
      return Exit{kExitUsage,
                  fmt::format("envelope {}: actor \"{}\" is not run by the `asya up` on {}; add "
                              "--force to queue it "
                              "for an actor that runs elsewhere",
                              failed->envelope.id, replay->actor, client.paths.root.string())};
    }
    // The record moves out of failed/ before the send: a failure of the replay writes a new one
    // there, which must not be taken for this one. A send that fails moves it back.
    fs::path replayed_dir = client.paths.results() / "replayed";
    fs::path moved = replayed_dir / file.filename();
    std::error_code ec;
    fs::create_directories(replayed_dir, ec);
    fs::rename(file, moved, ec);
    if (ec)
      return Exit{kExitError, fmt::format("cannot move {} to {}: {}", file.string(), moved.string(),
                                          ec.message())};
    auto& queues = client.queues();
    const std::string queue = client.prefix + replay->actor;
    Status sent = queues.ensure_queue(queue);
    if (sent) sent = queues.send(queue, replay->body);
    if (!sent) {
      std::error_code back;
      if (!fs::exists(file, back)) fs::rename(moved, file, back);
      return Exit{kExitError, fmt::format("envelope {}: sending to {} failed (it stays failed): {}",
                                          failed->envelope.id, queue, sent.message())};
    }
    std::cout << failed->envelope.id << "\n" << std::flush;
    std::cerr << fmt::format("asya: replayed {} from {} (route position {}, replay {})\n",
                             failed->envelope.id, replay->actor, replay->current, replay->replays);
    return Exit{0, ""};
  }
};

}  // namespace

int run_replay(const ReplayArgs& args) {
  if (args.all_failed == !args.ids.empty())
    fail(kExitUsage, "give the ids of failed envelopes, or --all-failed (not both)");
  if (!args.all_failed && (!args.actor.empty() || !args.since.empty()))
    fail(kExitUsage, "--actor and --since select envelopes for --all-failed");
  Replayer replayer{args, Client(args.state_dir), std::nullopt};
  if (!args.deadline.empty()) {
    auto in = parse_duration(args.deadline);
    if (!in) fail(kExitUsage, fmt::format("--deadline {}", in.error().message));
    replayer.deadline = std::chrono::system_clock::now() + *in;
  }
  const local::StatePaths& paths = replayer.client.paths;
  std::vector<fs::path> files;
  if (args.all_failed) {
    std::optional<std::chrono::system_clock::time_point> since;
    if (!args.since.empty()) since = parse_since(args.since);
    for (const auto& f : list_failed(paths, since))
      if (args.actor.empty() || f.actor == args.actor) files.push_back(f.file);
    if (files.empty()) {
      std::cerr << fmt::format("asya: no failed envelopes to replay in {}{}\n",
                               paths.failed().string(),
                               args.actor.empty() ? "" : " that failed at " + args.actor);
      return 0;
    }
  } else {
    for (const auto& id : args.ids) {
      fs::path file = paths.failed() / sidecar::result_file_name(id);
      std::error_code ec;
      if (!fs::exists(file, ec)) {
        auto found = find_result(paths, id);
        std::string state = found ? "it ended in happy-end" : "no result has that id";
        if (fs::exists(paths.results() / "replayed" / sidecar::result_file_name(id), ec))
          state = "it was replayed already and has not failed again (yet)";
        fail(kExitNotFound, fmt::format("no failed envelope {} in {}: {}; `asya results --failed` "
                                        "lists them",
                                        id, paths.failed().string(), state));
      }
      files.push_back(file);
    }
  }
  int failures = 0;
  for (const auto& file : files) {
    if (Exit result = replayer.replay(file); result.code != 0) {
      if (files.size() == 1) throw result;
      std::cerr << "asya: " << result.message << "\n";
      ++failures;
    }
  }
  if (failures > 0) {
    std::cerr << fmt::format("asya: {} of {} envelopes were not replayed\n", failures,
                             files.size());
    return kExitError;
  }
  return 0;
}

}  // namespace asya::cli
