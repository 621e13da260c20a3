// `asya up`'s pre-flight (docs/local.md#before-anything-starts): the checks that run once the
// manifests are read and before anything starts, so that a mistake which would make an actor
// crash-loop stops `asya up` with exit 2 and one clear message instead:
//   - the settings of every sidecar: the environment the supervisor would give it, validated by
//     the sidecar's own loader (passed in by the caller: src/local does not depend on
//     src/sidecar);
//   - the gateway's port is free on 127.0.0.1;
//   - every Python handler (an actor without a runtime command) loads: the bundled runtime's
//     `--check` runs in the actor's working directory with the environment its runtime gets, and
//     says which module and file it found and why the handler cannot be served.
// Every problem is collected; one does not keep the others from being checked. Nothing here
// starts an actor, creates a queue or writes to the state directory.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/env.hpp"
#include "common/result.hpp"
#include "local/supervisor.hpp"
#include "manifest/manifest.hpp"

namespace asya::local {

// One reason not to start.
struct PreflightProblem {
  std::string where;    // "file:line: actor NAME" or "the sidecars of a, b", "the gateway"
  std::string message;  // what failed, with the offending value, and what to do; may span lines
  std::string str() const { return where + ": " + message; }
};

struct PreflightReport {
  std::vector<PreflightProblem> problems;  // each one stops `asya up` (exit 2)
  std::vector<std::string> warnings;       // said, but `asya up` goes on
  bool ok() const { return problems.empty(); }
};

// Validates the complete environment of one asya-sidecar as the sidecar reads it at start-up (its
// own variables and its transport's); returns the sidecar's one-line error.
using SidecarSettingsCheck = std::function<Status(const EnvironmentLookup& environment)>;

struct PreflightOptions {
  // What the supervisor will be given: state directory, transport, end actors, the gateway
  // (routes_file, gateway_port) and the Python runtime command (python_runtime).
  SupervisorOptions supervisor;
  // The supervisor's environment as NAME=value entries (the sidecars inherit it); the first entry
  // of a name is the one that counts, as for getenv.
  std::vector<std::string> environment;
  // Empty: sidecar settings are not checked.
  SidecarSettingsCheck check_sidecar_settings;
  // A handler import that takes longer is stopped and reported as a warning, not a problem (a
  // large library may be slow to import on a busy machine).
  std::chrono::milliseconds import_timeout{std::chrono::seconds(60)};
};

// The sidecar of each actor and, with options.supervisor.end_actors, of happy-end and error-end.
// One problem per distinct error, naming every actor it concerns, and saying when the variable
// comes from the environment of `asya up`.
void check_sidecar_settings(const std::vector<manifest::Actor>& actors,
                            const PreflightOptions& options, PreflightReport& report);

// With a gateway (routes_file set) on a fixed port (gateway_port > 0): that 127.0.0.1:port can be
// bound. A taken port is a problem naming it, with the hint `--gateway-port 0`.
void check_gateway_port(const PreflightOptions& options, PreflightReport& report);

// Runs `<python_runtime> --check` for every actor without a runtime command, all at once, each
// in its runtime's working directory with its runtime's environment (runtime_environment()).
// Blocks until every check has answered or import_timeout has passed.
void check_python_handlers(const std::vector<manifest::Actor>& actors,
                           const PreflightOptions& options, PreflightReport& report);

// The three checks above, in that order.
PreflightReport run_preflight(const std::vector<manifest::Actor>& actors,
                              const PreflightOptions& options);

}  // namespace asya::local
