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

}  // namespace asya::cli
