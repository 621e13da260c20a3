// Starting and signalling child processes for the supervisor (POSIX, Linux).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::local {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::string> env;   // the complete environment, "NAME=value" entries
  std::string working_dir;        // empty: the supervisor's
  std::string log_path;           // stdout and stderr are appended here; stdin is /dev/null
  // Run in a network namespace of its own holding only a loopback interface (up), so it can
  // reach nothing over the network; Unix sockets in the filesystem keep working. Created with
  // unshare(CLONE_NEWNET) when permitted (root), else together with a user namespace mapping
  // only the caller's uid and gid to themselves (CLONE_NEWUSER | CLONE_NEWNET).
  bool isolate_network = false;
  // When >= 0: stdout and stderr go to this descriptor instead of log_path (the write end of an
  // OutputCollector pipe). spawn() does not close it.
  int output_fd = -1;
};

// Starts `spec` in its own process group (so a terminal's Ctrl-C reaches only the supervisor,
// which stops children in order) with every signal unblocked and SIGTERM as its parent-death
// signal (no orphan survives a killed supervisor). Returns the pid, or an error naming the
// program and the cause (exec failures are detected, not just fork failures).
Result<pid_t> spawn(const ProcessSpec& spec);

// Whether spawn() can give a child its own network namespace here (ProcessSpec::isolate_network):
// tries it in a short-lived child. The error says which step was refused and what to change.
Status check_network_isolation();

// Why a child ended, as a sentence fragment: "exited with status 1", "was killed by SIGKILL".
std::string describe_exit(int wait_status);

// True while `pid` exists (it may be a zombie not yet reaped).
bool process_alive(pid_t pid);

// The environment of this process as "NAME=value" entries.
std::vector<std::string> current_environment();

// Expands Kubernetes-style variable references in a container's command or args: `$(NAME)` is
// replaced by lookup(NAME), `$$` is a literal `$` (so `$$(NAME)` stays `$(NAME)`), anything else
// is kept. Unlike Kubernetes, an unresolved reference is an error naming it (a command that
// cannot be run should be refused before anything starts).
Result<std::string> expand_references(
    std::string_view text,
    const std::function<std::optional<std::string>(std::string_view)>& lookup);

}  // namespace asya::local
