// The environment `asya up` gives the asya-sidecar of one replica: the supervisor's own
// environment (broker settings, ASYA_LOG_LEVEL, ...) with manifest::sidecar_environment() on top,
// the mapping `asya render` uses too; and what its runtime gets (runtime_environment). Pure:
// spawns nothing, reads only its arguments.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "local/supervisor.hpp"
#include "manifest/sidecar_environment.hpp"

namespace asya::local {

// What the supervisor chose for one replica.
struct ReplicaSidecar {
  bool end_actor = false;        // happy-end / error-end
  std::filesystem::path socket;  // actors: the runtime's socket (run/<actor>-<n>/rt.sock)
  int metrics_port = 0;          // ASYA_METRICS_ADDR 127.0.0.1:<port>
};

// The host's part of the mapping under `asya up`: the supervisor's transport and queue prefix,
// the replica's socket and metrics port, results/succeeded or results/failed of the state
// directory for happy-end / error-end, and with a gateway (options.routes_file set) its URL and
// the value of ASYA_GATEWAY_INTERNAL_TOKEN in `inherited` (when not empty). The broker settings
// and ASYA_LOG_LEVEL are not listed: sidecars inherit them.
manifest::SidecarEnvironmentOptions replica_sidecar_options(
    const manifest::Actor& actor, const ReplicaSidecar& replica, const SupervisorOptions& options,
    std::string_view queue_prefix, const std::vector<std::string>& inherited);

// The sidecar's environment as NAME=value entries: `inherited` without the names the mapping
// owns (manifest::sidecar_environment_owned_names()) or sets, then the mapping's variables in
// its order. So spec.sidecar.concurrency wins over an inherited ASYA_CONCURRENCY, an inherited
// one applies when the manifest sets none, and an inherited ASYA_RETRY_* never applies.
// Fails, naming the variable, on a secret reference (`asya up` has no Secrets).
Result<std::vector<std::string>> replica_sidecar_environment(const manifest::Actor& actor,
                                                             const ReplicaSidecar& replica,
                                                             const SupervisorOptions& options,
                                                             std::string_view queue_prefix,
                                                             std::vector<std::string> inherited);

// The runtime's environment as NAME=value entries: only what a handler needs, never the
// supervisor's broker settings: PATH, HOME, LANG, LC_ALL, TZ, TMPDIR and USER from `inherited`,
// the container's env (without ASYA_SOCKET_PATH/_DIR/_NAME: the supervisor owns the socket's
// place), then ASYA_SOCKET_PATH, ASYA_SOCKET_DIR and ASYA_SOCKET_NAME naming `socket` (the
// bundled runtime reads the first, the published one the other two). Fails, naming the actor
// and the variable, on a valueFrom entry (only Kubernetes resolves those).
Result<std::vector<std::string>> runtime_environment(const manifest::Actor& actor,
                                                     const std::filesystem::path& socket,
                                                     const std::vector<std::string>& inherited);

// The runtime's working directory: the container's workingDir relative to the manifest's
// folder, or that folder itself.
std::filesystem::path runtime_working_dir(const manifest::Actor& actor);

}  // namespace asya::local
