// The exit codes of asya-sidecar: a contract between the sidecar and whatever runs it. The
// `asya up` supervisor restarts the pair when the sidecar gave up on a stuck runtime
// (kRuntimeTimeout) and reports any other code as a crash; on Kubernetes the kubelet restarts the
// container. Documented in docs/configuration.md and docs/protocol.md. Header-only, in common so
// that the sidecar and its supervisors (src/local) share it without depending on each other.
#pragma once

#include <optional>
#include <string_view>

namespace asya {

enum class SidecarExit : int {
  kOk = 0,               // clean shutdown (SIGTERM/SIGINT, drained)
  kFatal = 1,            // fatal error: transport or metrics address unusable
  kConfig = 2,           // invalid configuration (the message names the variable)
  kRuntimeTimeout = 3,   // a runtime call exceeded ASYA_RUNTIME_TIMEOUT: restart the pair
  kRuntimeNotReady = 4,  // the runtime did not become ready within ASYA_RUNTIME_READY_TIMEOUT
};

// The process exit status of `exit`.
constexpr int code(SidecarExit exit) {
  return static_cast<int>(exit);
}

// The meaning of an exit status, or nullopt for a status the sidecar never exits with (then it
// was killed or crashed).
constexpr std::optional<SidecarExit> sidecar_exit_from_code(int status) {
  if (status < code(SidecarExit::kOk) || status > code(SidecarExit::kRuntimeNotReady))
    return std::nullopt;
  return static_cast<SidecarExit>(status);
}

// "ok", "fatal", "config", "runtime_timeout", "runtime_not_ready".
constexpr std::string_view label(SidecarExit exit) {
  switch (exit) {
    case SidecarExit::kOk:
      return "ok";
    case SidecarExit::kFatal:
      return "fatal";
    case SidecarExit::kConfig:
      return "config";
    case SidecarExit::kRuntimeTimeout:
      return "runtime_timeout";
    case SidecarExit::kRuntimeNotReady:
      return "runtime_not_ready";
  }
  return "unknown";
}

}  // namespace asya
