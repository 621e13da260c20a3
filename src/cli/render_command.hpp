// `asya render [PATH...]`: prints the Kubernetes objects of AsyncActor manifests (src/k8s).
#pragma once

namespace CLI {
class App;
}

namespace asya::cli {

// Adds the `render` subcommand to `app`. On a broken manifest or an unrenderable actor it prints
// the errors on stderr, prints no YAML, and makes the program exit with code 2 (the subcommand's
// callback throws CLI::RuntimeError(2), which CLI::App::exit() turns into the exit code).
void add_render_command(CLI::App& app);

}  // namespace asya::cli
