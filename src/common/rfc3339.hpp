// RFC 3339 times: the one formatter and parser of Asya (envelope deadlines, error-chain entries,
// the gateway's job times, Kubernetes status conditions).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya {

// Parses an RFC 3339 timestamp ("2026-11-29T12:00:00Z"; fractional seconds, a lowercase t/z and
// numeric offsets accepted). Times outside what system_clock holds (years 1678..2261) clamp to
// time_point::min()/max(). Returns an error naming the (shortened) text otherwise.
Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

enum class Rfc3339Precision {
  kMilliseconds,  // "2026-11-29T12:00:00.000Z" (envelopes, the gateway)
  kSeconds,       // "2026-11-29T12:00:00Z" (Kubernetes metav1.Time)
  kMicroseconds,  // "2026-11-29T12:00:00.000000Z" (asya-sent-at: queue waits in trace spans)
};

// Formats `when` as RFC 3339 UTC, truncated to `precision`. Thread-safe; never fails.
std::string format_rfc3339(std::chrono::system_clock::time_point when,
                           Rfc3339Precision precision = Rfc3339Precision::kMilliseconds);

}  // namespace asya
