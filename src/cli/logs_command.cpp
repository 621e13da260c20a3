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
#include "local/process.hpp"
#include "local/state.hpp"

namespace asya::cli {

namespace fs = std::filesystem;

int run_logs(const std::string& state_dir, const std::string& actor, int lines, bool follow) {
  local::StatePaths paths(local::resolve_state_dir(state_dir));
  std::vector<fs::path> files;
  std::error_code ec;
  if (actor.empty()) {
    files.push_back(paths.supervisor_log());
  } else {
    auto dir = paths.actor_logs(actor);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      files.push_back(it->path());
    // `asya logs gateway`: the gateway's log (unless an actor is named gateway).
    if (files.empty() && actor == "gateway" && fs::is_regular_file(paths.logs() / "gateway.log"))
      files.push_back(paths.logs() / "gateway.log");
    if (files.empty()) {
      std::string known;
      for (fs::directory_iterator it(paths.logs(), ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory()) known += " " + it->path().filename().string();
      fail(kExitNotFound, fmt::format("no logs for actor \"{}\" in {}; actors with logs:{}", actor,
                                      paths.logs().string(), known.empty() ? " (none)" : known));
    }
    std::sort(files.begin(), files.end());
  }
  // Bytes printed (or skipped by -n) per file: -f continues from there, so nothing appended
  // while the files were being printed is lost.
  std::map<fs::path, std::uintmax_t> sizes;
  for (const auto& f : files) {
    std::string text;
    if (!local::read_file(f, text)) {
      if (actor.empty())
        fail(kExitNotFound,
             fmt::format("no supervisor log {}: it is written by `asya up --detach` (in the "
                         "foreground the supervisor prints to the terminal); `asya logs ACTOR` "
                         "shows an actor's processes",
                         f.string()));
      std::cerr << fmt::format("asya logs: cannot read {}\n", f.string());
      continue;
    }
    sizes[f] = text.size();
    if (files.size() > 1) std::cout << "==> " << f.string() << " <==\n";
    if (lines > 0) {
      // Keep the last `lines` lines.
      std::size_t pos = text.size();
      if (pos > 0 && text[pos - 1] == '\n') --pos;
      for (int seen = 0; seen < lines && pos != std::string::npos && pos > 0; ++seen)
        pos = text.rfind('\n', pos - 1);
      text = (pos == std::string::npos || pos == 0) ? text : text.substr(pos + 1);
    }
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << "\n";
  }
  if (!follow) return 0;
  // Print what is appended from now on (new replicas' files included) until interrupted.
  const bool fixed_files = actor.empty() || files.front() == paths.logs() / "gateway.log";
  auto scan = [&] {
    std::error_code ec;
    std::vector<fs::path> now;
    if (fixed_files) {
      now = files;
    } else {
      for (fs::directory_iterator it(paths.actor_logs(actor), ec), end; !ec && it != end;
           it.increment(ec))
        now.push_back(it->path());
    }
    return now;
  };
  std::cout.flush();
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (const auto& f : scan()) {
      std::error_code ec;
      auto size = fs::file_size(f, ec);
      if (ec) continue;
      auto& seen = sizes[f];
      if (size < seen) seen = 0;  // truncated
      if (size == seen) continue;
      std::ifstream in(f, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(seen));
      std::string chunk(size - seen, '\0');
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk.resize(static_cast<std::size_t>(in.gcount()));
      seen += chunk.size();
      std::cout << chunk << std::flush;
    }
  }
}

}  // namespace asya::cli
