// The sidecar's lease keeper (internal to sidecar.cpp): keeps the messages a worker holds from
// being delivered again while they are processed, however long the runtime takes.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "sidecar/metrics.hpp"
#include "sidecar/runner_state.hpp"
#include "transport/transport.hpp"

namespace asya::sidecar {

// Until `stop` is requested: every tick (a tenth of `visibility`, 10 ms to 5 s), extends by
// `visibility` the lease of every message of a slot held longer than a third of `visibility`:
// the single message in progress, or every unsettled message of the batch in progress. A failed
// extension is logged and retried at the next tick. Runs on its own thread; takes each slot's
// mutex while it extends that slot's leases.
void keep_leases(std::vector<std::unique_ptr<Slot>>& slots, transport::Transport& transport,
                 Metrics& metrics, std::chrono::milliseconds visibility, StopState& stop);

}  // namespace asya::sidecar
