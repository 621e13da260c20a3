// `asya call TOOL [key=value...]`: calls a tool of the running gateway (docs/gateway.md), shows
// its progress live (SSE), and prints the result JSON on stdout. The arguments are read by the
// tool's input schema (call_arguments.hpp); `asya call --list` lists the tools.
#pragma once

namespace CLI {
class App;
}

namespace asya::cli {

// Adds the `call` subcommand to `app`. Exit codes: 0 the job succeeded, 1 it failed, 2 usage
// (bad argument, unknown tool, no gateway configured), 3 the job timed out or the gateway is not
// reachable. A nonzero code ends the process from the subcommand's callback (std::exit), since
// main's ParseError handling maps every nonzero code to 2.
void add_call_command(CLI::App& app);

}  // namespace asya::cli
