#include "cli/logs_command.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/log_lines.hpp"
#include "local/process.hpp"
#include "local/state.hpp"

namespace asya::cli {

namespace fs = std::filesystem;

namespace {

// One log file and how far it has been read.
struct LogFile {
  std::string process;
  std::uintmax_t offset = 0;  // bytes consumed (complete lines)
  std::string last_ts;        // time of its last line, for lines without one
  std::size_t next_order = 0;
};

// "<state>/logs/chatty/0.sidecar.log" -> "chatty/0.sidecar".
std::string process_of(const fs::path& file, const fs::path& logs) {
  std::string name = file.filename().string();
  if (name.ends_with(".log")) name.resize(name.size() - 4);
  if (file.parent_path() == logs) return name;  // supervisor, gateway
  return fmt::format("{}/{}", file.parent_path().filename().string(), name);
}

// The files of `actor` (empty: every process) as they are now.
std::vector<fs::path> log_files(const local::StatePaths& paths, const std::string& actor) {
  std::vector<fs::path> files;
  std::error_code ec;
  auto add_dir = [&](const fs::path& dir) {
    std::error_code e;
    for (fs::directory_iterator it(dir, e), end; !e && it != end; it.increment(e))
      if (it->is_regular_file(e) && it->path().extension() == ".log") files.push_back(it->path());
  };
  if (actor.empty()) {
    for (fs::directory_iterator it(paths.logs(), ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec))
        add_dir(it->path());
      else if (it->path().extension() == ".log")
        files.push_back(it->path());
    }
  } else if (fs::is_directory(paths.actor_logs(actor), ec)) {
    add_dir(paths.actor_logs(actor));
  } else if ((actor == "gateway" || actor == "supervisor") &&
             fs::is_regular_file(paths.logs() / fmt::format("{}.log", actor), ec)) {
    files.push_back(paths.logs() / fmt::format("{}.log", actor));
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Reads what `file` holds beyond `state.offset` (complete lines only).
std::vector<LogLine> read_new(const fs::path& file, LogFile& state) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) return {};
  if (size < state.offset) state.offset = 0;  // truncated: start over
  if (size == state.offset) return {};
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(state.offset));
  std::string chunk(size - state.offset, '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<std::size_t>(in.gcount()));
  std::size_t partial = 0;
  auto lines = split_log_lines(chunk, state.process, state.last_ts, state.next_order, partial);
  state.offset += chunk.size() - partial;
  return lines;
}

void print(const std::vector<LogLine>& lines, std::size_t from, bool pretty) {
  for (std::size_t i = from; i < lines.size(); ++i)
    std::cout << (pretty ? pretty_line(lines[i]) : json_line(lines[i])) << "\n";
  std::cout.flush();
}

}  // namespace

int run_logs(const LogsArgs& args) {
  local::StatePaths paths(local::resolve_state_dir(args.state_dir));
  auto files = log_files(paths, args.actor);
  if (files.empty()) {
    if (args.actor.empty())
      fail(kExitNotFound,
           fmt::format("no logs in {}: they are written by `asya up` (the supervisor's own log by "
                       "`asya up --detach`; in the foreground it prints to the terminal)",
                       paths.logs().string()));
    std::string known;
    std::error_code ec;
    for (fs::directory_iterator it(paths.logs(), ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory()) known += fmt::format(" {}", it->path().filename().string());
    fail(kExitNotFound,
         fmt::format("no logs for actor \"{}\" in {}; actors with logs:{}", args.actor,
                     paths.logs().string(), known.empty() ? " (none)" : known));
  }
  std::map<fs::path, LogFile> states;
  std::vector<LogLine> all;
  for (const auto& f : files) {
    LogFile& state = states[f];
    state.process = process_of(f, paths.logs());
    auto lines = read_new(f, state);
    all.insert(all.end(), std::make_move_iterator(lines.begin()),
               std::make_move_iterator(lines.end()));
  }
  merge_by_time(all);
  std::size_t from = 0;
  if (args.lines > 0 && all.size() > static_cast<std::size_t>(args.lines))
    from = all.size() - static_cast<std::size_t>(args.lines);
  print(all, from, args.pretty);
  if (!args.follow) return 0;
  // New lines of every file (and of files that appear: replicas started later), merged by time
  // within each poll, until interrupted.
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::vector<LogLine> fresh;
    for (const auto& f : log_files(paths, args.actor)) {
      auto [it, added] = states.try_emplace(f);
      if (added) it->second.process = process_of(f, paths.logs());
      auto lines = read_new(f, it->second);
      fresh.insert(fresh.end(), std::make_move_iterator(lines.begin()),
                   std::make_move_iterator(lines.end()));
    }
    merge_by_time(fresh);
    print(fresh, 0, args.pretty);
  }
}

}  // namespace asya::cli
