#include "cli/queues_command.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <iostream>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "common/json_text.hpp"

namespace asya::cli {

namespace json = boost::json;

int run_queues(const std::string& state_dir, bool as_json) {
  Client client(state_dir);
  auto& queues = client.queues();
  auto names = queues.list_queues();
  if (!names) fail(kExitError, names.error().message);
  names->insert(names->end(), client.supervised_queues.begin(), client.supervised_queues.end());
  std::sort(names->begin(), names->end());
  names->erase(std::unique(names->begin(), names->end()), names->end());
  json::array list;
  if (!as_json)
    std::cout << fmt::format("{:<32} {:>8} {:>10} {:>8}\n", "QUEUE", "READY", "IN-FLIGHT",
                             "DELAYED");
  for (const auto& name : *names) {
    auto s = queues.stats(name);
    if (!s) fail(kExitError, s.error().message);
    if (as_json)
      list.push_back(json::object{{"queue", name},
                                  {"ready", s->ready},
                                  {"in_flight", s->in_flight},
                                  {"delayed", s->delayed}});
    else
      std::cout << fmt::format("{:<32} {:>8} {:>10} {:>8}\n", name, s->ready, s->in_flight,
                               s->delayed);
  }
  if (as_json) std::cout << to_json_text(list) << "\n";
  return 0;
}

namespace {

bool not_found(const std::string& message) {
  return message.starts_with("queue_not_found:");
}

}  // namespace

int run_queues_purge(const PurgeArgs& args) {
  Client client(args.state_dir);
  auto& queues = client.queues();
  std::string queue = args.queue;
  auto purged = queues.purge(queue);
  // An actor's name stands for its queue.
  if (!purged && not_found(purged.error().message) && !queue.starts_with(client.prefix)) {
    auto with_prefix = queues.purge(client.prefix + queue);
    if (with_prefix || !not_found(with_prefix.error().message)) {
      queue = client.prefix + queue;
      purged = std::move(with_prefix);
    }
  }
  if (!purged) {
    if (!not_found(purged.error().message))
      fail(kExitError, fmt::format("cannot purge {}: {}", queue, purged.error().message));
    std::vector<std::string> known = client.supervised_queues;
    if (auto listed = queues.list_queues())
      known.insert(known.end(), listed->begin(), listed->end());
    std::sort(known.begin(), known.end());
    known.erase(std::unique(known.begin(), known.end()), known.end());
    std::string names;
    for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
    fail(kExitNotFound,
         fmt::format("unknown queue \"{}\" on transport {}: nothing was purged; known queues: {} "
                     "(`asya queues` lists them)",
                     args.queue, queues.name(), names.empty() ? "none" : names));
  }
  const std::optional<std::uint64_t>& removed = *purged;
  if (args.json) {
    json::object out{{"queue", queue}, {"transport", std::string(queues.name())}};
    if (removed)
      out["removed"] = *removed;
    else
      out["removed"] = nullptr;
    std::cout << to_json_text(out) << "\n";
  } else if (removed) {
    std::cout << fmt::format("{}: removed {} message{}\n", queue, *removed,
                             *removed == 1 ? "" : "s");
  } else {
    std::cout << fmt::format(
        "{}: purge requested ({} removes the messages within 60 s and does "
        "not say how many)\n",
        queue, queues.name());
  }
  return 0;
}

}  // namespace asya::cli
