// The sidecar runner: ASYA_CONCURRENCY blocking worker threads, each with its own runtime
// connection, sharing one (thread-safe) Transport. Each worker loops
//   receive(input queue, 1, bounded wait) -> decide (Router or EndActor) -> send outputs -> ack
// and the main thread waits for SIGTERM/SIGINT or a fatal condition, then drains.
#pragma once

#include <memory>

#include "common/sidecar_exit_code.hpp"
#include "sidecar/config.hpp"
#include "transport/transport.hpp"

namespace asya::sidecar {

// Process exit codes of asya-sidecar (the contract is common/sidecar_exit_code.hpp).
inline constexpr int kExitOk = code(SidecarExit::kOk);
inline constexpr int kExitFatal = code(SidecarExit::kFatal);
inline constexpr int kExitConfig = code(SidecarExit::kConfig);
inline constexpr int kExitRuntimeTimeout = code(SidecarExit::kRuntimeTimeout);
inline constexpr int kExitRuntimeNotReady = code(SidecarExit::kRuntimeNotReady);

// Runs the sidecar until shutdown and returns the process exit code. Installs the SIGTERM/SIGINT
// handling itself (call before starting any other thread). Throws ConfigError for settings that
// prove invalid at start-up (result store, metrics address).
int run_sidecar(const Config& config, std::unique_ptr<transport::Transport> transport);

}  // namespace asya::sidecar
