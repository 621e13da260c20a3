// The payload store settings every party reads the same way (sidecars, the gateway, `asya send`):
// ASYA_PAYLOAD_STORE, ASYA_PAYLOAD_THRESHOLD and the lifetime variables (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/env.hpp"
#include "payload/lifetime.hpp"
#include "payload/payload_store.hpp"

namespace asya::payload {

inline constexpr std::size_t kDefaultThresholdBytes = 256u << 10;

struct Settings {
  std::string store_url;                                 // ASYA_PAYLOAD_STORE; empty: off
  std::size_t threshold_bytes = kDefaultThresholdBytes;  // ASYA_PAYLOAD_THRESHOLD
  SweepPolicy policy;  // ASYA_PAYLOAD_GRACE, ASYA_PAYLOAD_ORPHAN_AGE
  std::chrono::milliseconds sweep_interval{std::chrono::minutes(1)};  // ASYA_PAYLOAD_SWEEP_INTERVAL

  bool enabled() const { return !store_url.empty(); }
};

// Reads and checks the variables (the store URL's form, not the store itself). Throws
// asya::ConfigError naming the variable, the value and what is accepted.
Settings load_settings(const Environment& environment = Environment());

// The store of `settings` (nullptr when disabled), reading its own variables from `environment`.
std::unique_ptr<PayloadStore> open_store(const Settings& settings,
                                         EnvironmentLookup environment = process_environment());

}  // namespace asya::payload
