#include "cli/results_command.hpp"

#include <boost/json.hpp>
#include <iostream>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/failed_results.hpp"
#include "common/json_text.hpp"
#include "local/process.hpp"
#include "local/state.hpp"

namespace asya::cli {

namespace json = boost::json;

namespace {

// `asya results --failed`: one line (or JSON object) per failed envelope.
int list_failed_results(const local::StatePaths& paths, const ResultsArgs& args) {
  std::optional<std::chrono::system_clock::time_point> since;
  if (!args.since.empty()) since = parse_since(args.since);
  auto failed = list_failed(paths, since);
  std::erase_if(failed,
                [&](const auto& f) { return !args.actor.empty() && f.actor != args.actor; });
  if (args.json) {
    json::array list;
    for (const auto& f : failed)
      list.push_back(json::object{{"id", f.id},
                                  {"actor", f.actor},
                                  {"error", f.error},
                                  {"type", f.type},
                                  {"message", f.message},
                                  {"at", format_time(f.stored_at)},
                                  {"file", f.file.string()}});
    std::cout << to_json_text(list) << "\n";
    return 0;
  }
  if (failed.empty()) {
    std::cerr << fmt::format("no failed results in {}{}\n", paths.failed().string(),
                             args.since.empty() ? "" : " since " + args.since);
    return 0;
  }
  std::cout << fmt::format("{:<20} {:<38} {:<16} {}\n", "AT", "ID", "ACTOR", "ERROR");
  for (const auto& f : failed) {
    std::string error = f.error;
    if (!f.type.empty() && f.type != f.error) error += " " + f.type;
    if (!f.message.empty()) error += ": " + f.message;
    // One line per failure: a multi-line message is cut at its first line break.
    if (auto nl = error.find('\n'); nl != std::string::npos) error = error.substr(0, nl) + " ...";
    std::cout << fmt::format("{:<20} {:<38} {:<16} {}\n", format_time(f.stored_at), f.id, f.actor,
                             error);
  }
  return 0;
}

}  // namespace

int run_results(const ResultsArgs& args) {
  local::StatePaths paths(local::resolve_state_dir(args.state_dir));
  if (!args.id.empty()) {
    if (args.failed || !args.since.empty() || !args.actor.empty())
      fail(kExitUsage, "--failed, --since and --actor list results; they take no ID");
    auto found = find_result(paths, args.id);
    if (!found)
      fail(kExitNotFound, fmt::format("no result for {} in {} (yet); `asya results` lists the "
                                      "finished ids",
                                      args.id, paths.results().string()));
    std::string text;
    if (!local::read_file(found->second, text))
      fail(kExitError, fmt::format("cannot read {}", found->second.string()));
    std::cout << trimmed(text) << "\n";
    return found->first == "failed" ? kExitError : 0;
  }
  if (args.failed) return list_failed_results(paths, args);
  if (!args.actor.empty()) fail(kExitUsage, "--actor needs --failed");
  auto results = list_results(paths);
  if (!args.since.empty()) {
    auto since = parse_since(args.since);
    std::erase_if(results, [&](const StoredResult& r) {
      return std::chrono::file_clock::to_sys(r.when) < since;
    });
  }
  if (args.json) {
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
