#include "cli/send_command.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/send_trace.hpp"
#include "cli/target_check.hpp"
#include "common/env.hpp"
#include "common/random_id.hpp"
#include "envelope/envelope.hpp"
#include "envelope/new_envelope.hpp"
#include "local/process.hpp"
#include "local/state.hpp"
#include "payload/offload.hpp"
#include "payload/settings.hpp"

namespace asya::cli {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// Reads `value`, or the file after '@'.
std::string text_or_file(const std::string& value, const std::string& option) {
  if (value.empty() || value[0] != '@') return value;
  std::string text;
  if (!local::read_file(value.substr(1), text))
    fail(kExitUsage, fmt::format("{} {}: cannot read file {}", option, value, value.substr(1)));
  return text;
}

// The payload store settings of `asya send`: the variables, with the state directory's store
// (`asya up`'s default) when ASYA_PAYLOAD_STORE is unset.
payload::Settings payload_settings(const local::StatePaths& paths) {
  try {
    payload::Settings settings = payload::load_settings();
    if (!env_get("ASYA_PAYLOAD_STORE")) settings.store_url = "file://" + paths.payloads().string();
    return settings;
  } catch (const ConfigError& e) {
    fail(kExitUsage, e.what());
  }
  return {};
}

}  // namespace

int run_send(const SendArgs& args) {
  Client client(args.state_dir);
  std::string body;
  std::string id;
  std::vector<std::string> actors;
  std::optional<SendTrace> trace;  // for an envelope this command builds (docs/tracing.md)
  if (!args.envelope.empty()) {
    if (!args.actor.empty() || !args.route.empty() || !args.payload.empty() ||
        !args.headers.empty() || !args.deadline.empty() || args.id_given)
      fail(kExitUsage,
           "--envelope is a complete envelope; do not combine it with ACTOR, --route, "
           "--payload, --header, --deadline or --id");
    body = text_or_file(args.envelope, "--envelope");
    auto parsed = envelope::parse(body);
    if (!parsed)
      fail(kExitUsage,
           fmt::format("--envelope is not a valid envelope: {}", parsed.error().message));
    if (parsed->route_done())
      fail(kExitUsage, "--envelope: its route is already done (route.current == number of actors)");
    id = parsed->id;
    actors.assign(parsed->actors.begin() + static_cast<long>(parsed->current),
                  parsed->actors.end());
  } else {
    if (args.actor.empty() == args.route.empty())
      fail(kExitUsage, "give either ACTOR or --route a,b,c (the actors in order)");
    if (!args.actor.empty()) {
      actors.push_back(args.actor);
    } else {
      std::string rest = args.route;
      while (true) {
        auto comma = rest.find(',');
        actors.push_back(rest.substr(0, comma));
        if (comma == std::string::npos) break;
        rest = rest.substr(comma + 1);
      }
    }
    for (const auto& a : actors) {
      if (a == "happy-end" || a == "error-end")
        fail(kExitUsage, fmt::format("\"{}\" is an end actor; routes list only your actors (the "
                                     "end actors are added by the sidecars)",
                                     a));
      if (!envelope::valid_actor_name(a))
        fail(kExitUsage,
             fmt::format("\"{}\" is not a valid actor name; use lowercase letters, digits and "
                         "'-' (e.g. --route split,score,collect)",
                         a));
    }
    if (args.payload.empty())
      fail(kExitUsage, "--payload is required: a JSON value ('{\"text\": \"hi\"}') or @file.json");
    std::string payload = text_or_file(args.payload, "--payload");
    boost::system::error_code ec;
    json::parse(payload, ec);
    if (ec)
      fail(kExitUsage,
           fmt::format("--payload is not valid JSON ({}): {}; quote strings, e.g. '\"hello\"'",
                       ec.message(),
                       payload.size() > 200 ? payload.substr(0, 200) + "..." : payload));
    if (args.id_given && args.id.empty())
      fail(kExitUsage,
           "--id is empty; give a non-empty envelope id, or leave --id out for a random UUID");
    envelope::NewEnvelope spec;
    spec.id = args.id_given ? args.id : new_uuid();
    spec.actors = actors;
    for (const auto& h : args.headers) {
      auto eq = h.find('=');
      if (eq == std::string::npos || eq == 0)
        fail(kExitUsage, fmt::format("--header {}: use key=value", h));
      std::string key = h.substr(0, eq);
      if (key.rfind("asya-", 0) == 0)
        fail(kExitUsage, fmt::format("--header {}: keys starting with asya- are reserved", h));
      // A key given twice keeps its first place and its last value.
      auto same = std::find_if(spec.headers.begin(), spec.headers.end(),
                               [&](const auto& header) { return header.first == key; });
      if (same != spec.headers.end())
        same->second = h.substr(eq + 1);
      else
        spec.headers.emplace_back(key, h.substr(eq + 1));
    }
    if (!args.deadline.empty()) {
      auto in = parse_duration(args.deadline);
      if (!in) fail(kExitUsage, fmt::format("--deadline {}", in.error().message));
      spec.deadline = std::chrono::system_clock::now() + *in;
    }
    spec.payload_json = payload;
    auto given = std::find_if(spec.headers.begin(), spec.headers.end(),
                              [](const auto& header) { return header.first == "traceparent"; });
    trace.emplace(given == spec.headers.end() ? std::nullopt : std::optional(given->second));
    if (given == spec.headers.end())
      spec.headers.emplace_back("traceparent", trace->traceparent());
    else
      given->second = trace->traceparent();
    spec.sent_at = trace->started();
    auto built = envelope::new_envelope(spec);
    if (!built)
      fail(kExitUsage, fmt::format("the envelope would be invalid: {}", built.error().message));
    id = spec.id;
    body = std::move(*built);
  }

  // Fail fast (docs/cli.md): an actor the running supervisor does not run (unless --force); with
  // --wait also a crash-looping one. Without --wait the message is queued for when it is fixed.
  if (auto why = unavailable_actor(client.paths, actors, args.force)) {
    if (args.wait || why->reason == local::Unavailability::kUnknown)
      fail(kExitUsage, why->message + "\n  nothing was sent");
    std::cerr << "asya: warning: " << why->message << "\n";
  }
  if (std::size_t limit = Client::max_message_bytes(); body.size() > limit) {
    fail(kExitUsage,
         fmt::format("the message is {} bytes, more than the {} bytes ASYA_MAX_MESSAGE_BYTES "
                     "allows ({}); send a smaller payload (large data by reference, e.g. an "
                     "object store URL), or raise ASYA_MAX_MESSAGE_BYTES here and for every "
                     "sidecar and gateway that handles it",
                     body.size(), limit,
                     env_get("ASYA_MAX_MESSAGE_BYTES")
                         ? "ASYA_MAX_MESSAGE_BYTES=" + *env_get("ASYA_MAX_MESSAGE_BYTES")
                         : std::string("the default, 256MiB")));
  }

  // A payload over ASYA_PAYLOAD_THRESHOLD goes into the payload store (the state directory's, as
  // `asya up` uses, unless ASYA_PAYLOAD_STORE says otherwise) and travels by reference.
  if (payload::Settings settings = payload_settings(client.paths); settings.enabled()) {
    auto store = payload::open_store(settings);
    auto offloaded = payload::offload_envelope(*store, settings.threshold_bytes, body);
    if (!offloaded) fail(kExitError, "the payload store: " + offloaded.error().message);
    if (*offloaded) body = std::move(**offloaded);
  }

  auto& queues = client.queues();
  std::string queue = client.prefix + actors.front();
  if (Status st = queues.ensure_queue(queue); !st) fail(kExitError, st.message());
  Status sent = queues.send(queue, body);
  if (trace) trace->finish(id, queue, sent.ok());
  if (!sent) fail(kExitError, sent.message());
  if (!args.wait) {
    std::cout << id << "\n";
    return 0;
  }

  if (local::running_supervisor(client.paths) == 0)
    std::cerr << fmt::format("asya: no `asya up` runs on {}; {} waits in queue {} until one does\n",
                             client.paths.root.string(), id, queue);
  // Wait for the envelope's own result, then until the route's queues are quiet, so fan-out
  // children (ids <id>-N...) have finished too.
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(args.timeout * 1000));
  std::vector<std::string> watched;
  for (const auto& a : actors) watched.push_back(client.prefix + a);
  watched.push_back(client.prefix + "happy-end");
  watched.push_back(client.prefix + "error-end");
  bool root_done = false;
  int quiet_rounds = 0;
  bool settled = false;
  auto next_availability_check = Clock::now() + std::chrono::seconds(1);
  while (Clock::now() < deadline) {
    if (!root_done) root_done = find_result(client.paths, id).has_value();
    if (!root_done && Clock::now() >= next_availability_check) {
      next_availability_check = Clock::now() + std::chrono::seconds(1);
      if (auto why = unavailable_actor(client.paths, actors, args.force))
        fail(kExitUsage, fmt::format("{}\n  {} stays in its queue and is processed once the "
                                     "actor works (`asya results {}` then)",
                                     why->message, id, id));
    }
    if (root_done) {
      bool quiet = true;
      for (const auto& q : watched) {
        auto s = queues.stats(q);
        if (s && (s->ready + s->in_flight + s->delayed) > 0) {
          quiet = false;
          break;
        }
      }
      quiet_rounds = quiet ? quiet_rounds + 1 : 0;
      if (quiet_rounds >= 2) {
        settled = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!root_done) {
    fail(kExitNotFound,
         fmt::format("timed out after {}s waiting for {} to finish; it may still be queued or "
                     "running: see `asya status` and `asya results {}` later",
                     args.timeout, id, id));
  }
  if (!settled)
    std::cerr << fmt::format(
        "asya: {} finished but the queues of its route stayed busy for {}s; "
        "printing the results found so far\n",
        id, args.timeout);
  bool any_failed = false;
  for (const auto& r : list_results(client.paths)) {
    if (r.id != id && r.id.rfind(id + "-", 0) != 0) continue;
    std::string text;
    if (!local::read_file(r.file, text)) continue;
    std::cout << trimmed(text) << "\n";
    if (r.status == "failed") any_failed = true;
  }
  return any_failed ? kExitError : 0;
}

}  // namespace asya::cli
