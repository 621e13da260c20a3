// Instance ids: a random name for one process the supervisor starts, passed to it at start
// (the gateway: ASYA_GATEWAY_INSTANCE_ID) and repeated in its readiness answers, so a readiness
// check knows it reached its own process and not another one answering on the same port (a
// second `asya up` whose gateway port is taken must not take the first one's gateway for its
// own).
#pragma once

#include <string>
#include <string_view>

namespace asya::local {

// 16 random hex digits (from the kernel's random source).
std::string new_instance_id();

// Whether a readiness answer (`body`, JSON such as {"status":"ready","instance":"…"}) comes from
// the process started with instance id `expected`. An empty `expected` accepts any answer (the
// caller did not give its process an id). A body that is not JSON or has no "instance" is from
// another process.
bool answered_by_instance(std::string_view body, std::string_view expected);

// The "instance" of a readiness answer, or "" when it has none (for messages).
std::string answer_instance(std::string_view body);

}  // namespace asya::local
