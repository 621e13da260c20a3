// The failed envelopes of a state dir (what error-end stored in <state>/results/failed/), read for
// `asya results --failed` and `asya replay`; and the --since filter both take.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "local/state.hpp"

namespace asya::cli {

struct FailedResult {
  std::string id;
  std::string actor;    // the actor that failed
  std::string error;    // processing_error, runtime_timeout, ...
  std::string type;     // the exception type (details.type); may be empty
  std::string message;  // details.message; may be empty
  std::filesystem::path file;
  std::chrono::system_clock::time_point stored_at;  // when error-end wrote it (file time)
};

// Reads one stored failed envelope. nullopt when it cannot be read or is not an envelope (the
// reason in `why`).
std::optional<FailedResult> read_failed_result(const std::filesystem::path& file, std::string& why);

// Every failed envelope of `paths` stored at or after `since` (nullopt: all), oldest first. Files
// that cannot be read are skipped with a line on stderr.
std::vector<FailedResult> list_failed(
    const local::StatePaths& paths,
    std::optional<std::chrono::system_clock::time_point> since = std::nullopt);

// --since: a duration back from now ("30m", "2h") or an RFC 3339 time ("2026-12-06T10:00:00Z").
// fail(kExitUsage) naming both forms when `text` is neither.
std::chrono::system_clock::time_point parse_since(const std::string& text);

// `when` as RFC 3339 UTC with seconds ("2026-12-06T10:00:00Z").
std::string format_time(std::chrono::system_clock::time_point when);

}  // namespace asya::cli
