// `asya send`: puts a message on an actor's queue (or along a route), and with --wait prints the
// final envelope(s) once they are stored.
#pragma once

#include <string>
#include <vector>

namespace asya::cli {

struct SendArgs {
  std::string actor;
  std::string route;
  std::string payload;
  std::string envelope;
  std::vector<std::string> headers;
  std::string deadline;
  std::string id;
  bool id_given = false;  // --id was on the command line (possibly empty)
  bool wait = false;
  bool force = false;  // send even to actors the running supervisor does not run
  double timeout = 60;
  std::string state_dir;
};

// Runs `asya send`; returns the exit code (or throws Exit through fail()).
int run_send(const SendArgs& args);

}  // namespace asya::cli
