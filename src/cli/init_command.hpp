// `asya init NAME`: scaffolds a project folder NAME with one actor (named after the folder): its
// Python handler, its manifest, a routes.yaml tool for the gateway, a unit test of the handler
// (asya_runtime.testing) and a README; `asya up` in that folder runs it as it is.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace asya::cli {

// Registers the `init` subcommand on `app`.
void add_init_command(CLI::App& app);

// Writes the project into `directory` (created; refused when it exists and is not empty), whose
// name is the actor's; `python_runtime_dir` is where asya_runtime.py lies, for the unit test when
// asya_runtime is not installed. Returns the exit code (or throws Exit through fail()).
int run_init(const std::string& directory, const std::string& python_runtime_dir);

}  // namespace asya::cli
