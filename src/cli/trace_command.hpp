// `asya trace ID`: a job's trace from the gateway (GET /envelopes/{id}/trace) as a terminal
// waterfall (trace_waterfall.hpp), or with --json as the hops plus the spans.
#pragma once

namespace CLI {
class App;
}

namespace asya::cli {

// Adds the `trace` subcommand to `app`. Exit codes: 0 printed, 2 usage (no gateway configured,
// unknown id), 3 the gateway is not reachable or failed. A nonzero code ends the process from the
// subcommand's callback (std::exit), as `asya cancel` does.
void add_trace_command(CLI::App& app);

}  // namespace asya::cli
