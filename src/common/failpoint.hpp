// Named crash points for fault-injection tests. With ASYA_FAILPOINTS="name[,name...]" in its
// environment, a process that reaches a listed point kills itself with SIGKILL, so a test can
// crash it at one exact step (a payload stored but not yet published, outputs sent but the input
// not yet acked) instead of racing a kill against it. The points are listed in docs/testing.md.
// Unset (always in production), a point costs one load of a flag.
#pragma once

#include <set>
#include <string>
#include <string_view>

namespace asya {

// The names in `list` ("a, b": split at commas, spaces trimmed, empty names dropped).
std::set<std::string, std::less<>> parse_failpoints(std::string_view list);

// When `name` is in ASYA_FAILPOINTS (read once, at the first call, which logs a warning listing
// the armed points): logs "failpoint <name> reached" and raises SIGKILL. Otherwise returns at
// once. Never throws; a name no code checks simply never fires.
void failpoint(std::string_view name);

// Whether `name` is in ASYA_FAILPOINTS: a step that merges the point's before and after (one
// transaction for both) takes its slower path when the point is armed, so the point still fires.
bool failpoint_armed(std::string_view name);

}  // namespace asya
