// The settings of a join actor's sidecar (PROTOCOL §4a), read from the environment that
// manifest::sidecar_environment() writes for an actor with `spec.join`.
#pragma once

#include <chrono>
#include <string>

#include "common/env.hpp"

namespace asya::sidecar::join {

enum class OnTimeout { kError, kPartial };

struct JoinConfig {
  bool enabled = false;  // ASYA_JOIN: this actor is a join
  // ASYA_JOIN_TIMEOUT: a group not complete this long after its first branch arrived is decided
  // as timed out.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  OnTimeout on_timeout = OnTimeout::kError;  // ASYA_JOIN_ON_TIMEOUT: error | partial
  // ASYA_JOIN_STORE: where branches wait. Default: sqlite://<directory of
  // ASYA_SQLITE_PATH>/joins.db, next to the queues, so `asya up` needs nothing new.
  std::string store_url;
  // A replica's claim on a decided group lasts ASYA_RUNTIME_TIMEOUT plus this (PROTOCOL §4a). Not
  // read from the environment; unit tests shorten it.
  std::chrono::milliseconds claim_lease_extra{std::chrono::seconds(30)};
};

// Reads the variables above; throws ConfigError naming the variable, the value and what is
// accepted. The other variables are not read when ASYA_JOIN is false.
JoinConfig load_join_config(const Environment& environment);

}  // namespace asya::sidecar::join
