#include "cli/results_command.hpp"

#include <boost/json.hpp>
#include <iostream>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "common/json_text.hpp"
#include "local/process.hpp"
#include "local/state.hpp"

namespace asya::cli {

namespace json = boost::json;

int run_results(const std::string& state_dir, const std::string& id, bool as_json) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  if (!id.empty()) {
    auto found = find_result(paths, id);
    if (!found)
      fail(kExitNotFound, fmt::format("no result for {} in {} (yet); `asya results` lists the "
                                      "finished ids",
                                      id, paths.results().string()));
    std::string text;
    if (!local::read_file(found->second, text))
      fail(kExitError, fmt::format("cannot read {}", found->second.string()));
    std::cout << trimmed(text) << "\n";
    return found->first == "failed" ? kExitError : 0;
  }
  auto results = list_results(paths);
  if (as_json) {
    json::array list;
    for (const auto& r : results)
      list.push_back(json::object{{"id", r.id}, {"status", r.status}, {"file", r.file.string()}});
    std::cout << to_json_text(list) << "\n";
    return 0;
  }
  if (results.empty()) std::cerr << fmt::format("no results in {}\n", paths.results().string());
  for (const auto& r : results) std::cout << fmt::format("{:<40} {}\n", r.id, r.status);
  return 0;
}

}  // namespace asya::cli
