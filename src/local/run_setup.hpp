// What `asya up` prepares before it starts any process: the state directory it owns for the run
// and the environment every sidecar (and the gateway) inherits.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "local/process.hpp"
#include "local/supervisor.hpp"

namespace asya::local {

// Creates the state directory's folders, takes its lock (one supervisor per state directory)
// and writes supervisor.pid. Returns the lock's descriptor (held until the supervisor exits; a
// killed supervisor releases it with its process). The error names the folder or the supervisor
// that already runs there and what to do.
Result<int> claim_state_directory(const StatePaths& paths);

// The environment sidecars and the gateway inherit: `environment` (NAME=value entries; this
// process's by default, `asya up`'s pre-flight passes its own) with ASYA_SQLITE_PATH set to the
// state directory's queue database (transport sqlite) and, when a gateway runs with a client
// token (ASYA_GATEWAY_TOKEN) but no ASYA_GATEWAY_INTERNAL_TOKEN, a random internal token of this
// run, so the sidecar endpoints are not open to anything on this host (runtimes never get it).
// Fails only when no random token can be made.
Result<std::vector<std::string>> sidecar_base_environment(
    const SupervisorOptions& options, std::vector<std::string> environment = current_environment());

}  // namespace asya::local
