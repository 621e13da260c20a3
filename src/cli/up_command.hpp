// `asya up [PATH...]`: starts the actors of AsyncActor manifests on this machine (src/local) with
// their end actors and, with a routes.yaml, the gateway; in the foreground or detached.
#pragma once

#include <string>
#include <vector>

namespace asya::cli {

struct UpArgs {
  std::vector<std::string> paths;
  bool detach = false;
  bool plain = false;
  bool no_end_actors = false;
  std::string state_dir;
  std::string routes;
  bool no_gateway = false;
  int gateway_port = 8080;
  std::string transport;  // overrides spec.transport of every actor
  bool reload = false;    // restart an actor's replicas when its handler's Python files change
};

// Runs `asya up`; returns the exit code (or throws Exit through fail()).
int run_up(const UpArgs& args);

}  // namespace asya::cli
