#include "cli/failed_results.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

#include "cli/client.hpp"
#include "common/env.hpp"
#include "envelope/envelope.hpp"
#include "envelope/replay.hpp"
#include "local/state.hpp"
#include "sidecar/result_file_name.hpp"

namespace asya::cli {

namespace fs = std::filesystem;
using SystemClock = std::chrono::system_clock;

std::optional<FailedResult> read_failed_result(const fs::path& file, std::string& why) {
  std::string text;
  if (!local::read_file(file, text)) {
    why = "cannot read it";
    return std::nullopt;
  }
  auto failed = envelope::read_failed(text);
  if (!failed) {
    why = failed.error().message;
    return std::nullopt;
  }
  FailedResult out;
  out.id = failed->envelope.id;
  out.actor = failed->failed_actor;
  out.error = failed->error;
  out.type = failed->error_type;
  out.message = failed->error_message;
  out.file = file;
  std::error_code ec;
  auto written = fs::last_write_time(file, ec);
  out.stored_at = ec ? SystemClock::now()
                     : std::chrono::time_point_cast<SystemClock::duration>(
                           std::chrono::file_clock::to_sys(written));
  return out;
}

std::vector<FailedResult> list_failed(const local::StatePaths& paths,
                                      std::optional<SystemClock::time_point> since) {
  std::vector<FailedResult> out;
  std::error_code ec;
  for (fs::directory_iterator it(paths.failed(), ec), end; !ec && it != end; it.increment(ec)) {
    if (!sidecar::result_id_from_file_name(it->path().filename().string())) continue;
    std::string why;
    auto failed = read_failed_result(it->path(), why);
    if (!failed) {
      std::cerr << fmt::format("asya: skipping {}: {}\n", it->path().string(), why);
      continue;
    }
    if (since && failed->stored_at < *since) continue;
    out.push_back(std::move(*failed));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.stored_at < b.stored_at; });
  return out;
}

SystemClock::time_point parse_since(const std::string& text) {
  if (auto back = parse_duration(text)) return SystemClock::now() - *back;
  if (auto at = envelope::parse_rfc3339(text)) return *at;
  fail(kExitUsage, fmt::format("--since \"{}\": use a duration back from now (30s, 15m, 2h) or an "
                               "RFC 3339 time (2026-12-06T10:00:00Z)",
                               text));
}

std::string format_time(SystemClock::time_point when) {
  std::string text = envelope::format_rfc3339(when);  // ...T10:00:00.000Z
  if (text.size() > 5 && text.ends_with("Z") && text[text.size() - 5] == '.')
    text.erase(text.size() - 5, 4);
  return text;
}

}  // namespace asya::cli
