// The state directory of `asya up` (default ./.asya), shared by the supervisor and the CLI:
//
//   queues.db              SQLite queues (transport sqlite)
//   results/succeeded/     <id>.json written by happy-end
//   results/failed/        <id>.json written by error-end
//   logs/supervisor.log    the supervisor's own log (with --detach)
//   logs/<actor>/<n>.sidecar.log, <n>.runtime.log   every process of replica n
//   run/<actor>-<n>/       the runtime socket and its runtime-ready file
//   supervisor.pid         pid of the running supervisor (held under supervisor.lock)
//   status.json            written by the supervisor about once a second (see `asya status`)
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::local {

struct StatePaths {
  std::filesystem::path root;  // absolute

  explicit StatePaths(std::filesystem::path dir);
  std::filesystem::path queues_db() const { return root / "queues.db"; }
  std::filesystem::path results() const { return root / "results"; }
  std::filesystem::path succeeded() const { return root / "results" / "succeeded"; }
  std::filesystem::path failed() const { return root / "results" / "failed"; }
  // The default payload store of `asya up` and `asya send` (large payloads by reference).
  std::filesystem::path payloads() const { return root / "payloads"; }
  std::filesystem::path logs() const { return root / "logs"; }
  std::filesystem::path actor_logs(std::string_view actor) const {
    return root / "logs" / std::string(actor);
  }
  std::filesystem::path run() const { return root / "run"; }
  std::filesystem::path pid_file() const { return root / "supervisor.pid"; }
  std::filesystem::path lock_file() const { return root / "supervisor.lock"; }
  std::filesystem::path status_file() const { return root / "status.json"; }
  std::filesystem::path supervisor_log() const { return root / "logs" / "supervisor.log"; }
};

// The state directory to use: `flag` when non-empty, else $ASYA_STATE_DIR, else ./.asya.
std::filesystem::path resolve_state_dir(const std::string& flag);

// The pid of the supervisor running on `paths` (its lock is held), or 0 when none runs.
int running_supervisor(const StatePaths& paths);

// Writes `text` to `path` atomically (temp file + rename). The error names the file and the
// cause (e.g. "No space left on device"); `path` is then unchanged.
Status write_file_atomic(const std::filesystem::path& path, std::string_view text);

// The whole file, or nullopt-like empty string with ok=false when unreadable.
bool read_file(const std::filesystem::path& path, std::string& out);

}  // namespace asya::local
