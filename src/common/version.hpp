// The version of this build, one string for every Asya binary: CMakeLists.txt's project VERSION,
// compiled in (version.cpp is generated from version.cpp.in at configure time).
#pragma once

#include <iosfwd>
#include <optional>
#include <span>
#include <string_view>

namespace asya {

// "0.1.0": the project VERSION of the CMakeLists.txt this binary was built from.
std::string_view version();

// The sidecar <-> runtime socket protocol (PROTOCOL.md section 3) this build speaks. Raised only
// when a runtime written for an older number would no longer work behind this sidecar.
inline constexpr int kRuntimeProtocolVersion = 1;

// The informational arguments of a program configured only by environment variables
// (asya-sidecar, asya-gateway): `--help`/`-h` writes `help` to `out`, `--version` writes
// "<program> <version>" to `out`; both return 0 and touch nothing else (no file, no socket, no
// log line). Any other argument writes one line naming it to `err` and returns `usage_exit_code`.
// No argument at all returns nullopt: the program goes on.
std::optional<int> answer_informational_arguments(std::span<char* const> arguments,
                                                  std::string_view program, std::string_view help,
                                                  std::ostream& out, std::ostream& err,
                                                  int usage_exit_code);

}  // namespace asya
