// Test driver: `asya-render-driver render ...` runs the same subcommand as `asya render`, so
// tests/k8s works whether or not the full `asya` CLI is built.
#include <CLI/CLI.hpp>

#include "cli/render_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"asya render test driver"};
  app.require_subcommand(1);
  asya::cli::add_render_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
