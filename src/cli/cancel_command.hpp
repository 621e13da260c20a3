// `asya cancel ID`: cancels a job of the running gateway (POST /envelopes/{id}/cancel,
// docs/gateway.md "Cancellation"). Its queued envelopes are skipped by the sidecars; a handler
// already running finishes, but its outputs are not forwarded.
#pragma once

namespace CLI {
class App;
}

namespace asya::cli {

// Adds the `cancel` subcommand to `app`. Exit codes: 0 the job is now cancelled, 1 it had already
// finished (its final status is printed), 2 usage (no gateway configured, unknown id), 3 the
// gateway is not reachable or failed. A nonzero code ends the process from the subcommand's
// callback (std::exit), as `asya call` does.
void add_cancel_command(CLI::App& app);

}  // namespace asya::cli
