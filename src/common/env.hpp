// Configuration from environment variables. Every parser throws ConfigError whose message is one
// line naming the variable, the bad value and what is accepted, e.g.
//   ASYA_RUNTIME_TIMEOUT="5 minutes" is not a duration: use a number with a unit (300ms, 30s, 5m,
//   1h)
// Start-up code catches ConfigError, prints it and exits 2.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a Go-style duration: a sequence of <number><unit> with units ns, us, µs, ms, s, m, h
// ("300ms", "1m30s", "1.5s"). A bare "0" is accepted. Returns an error naming the input otherwise.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// Formats a duration the way parse_duration reads it ("1m30s", "250ms").
std::string format_duration(std::chrono::milliseconds value);

// Where configuration variables come from: the process environment in the binaries; a map when a
// caller configures a component itself (a test, `asya up` naming its queue database), so nothing
// needs setenv. Returns nullopt for an unset variable; an empty value counts as set.
using EnvironmentLookup = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (getenv).
EnvironmentLookup process_environment();

// `values` first, then `fallback` for the names `values` does not hold.
EnvironmentLookup environment_with(std::map<std::string, std::string, std::less<>> values,
                                   EnvironmentLookup fallback = process_environment());

// The typed readers of one lookup, with the rules and error messages of the env_* functions below
// (which read the process environment). Cheap to copy; thread-safe when the lookup is.
class Environment {
 public:
  explicit Environment(EnvironmentLookup lookup = process_environment());

  std::optional<std::string> get(std::string_view name) const;
  std::string string(const char* name, std::string fallback) const;
  std::string required(const char* name) const;
  bool boolean(const char* name, bool fallback) const;
  std::int64_t integer(const char* name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const;
  std::uint64_t bytes(const char* name, std::uint64_t fallback) const;
  std::chrono::milliseconds duration(const char* name, std::chrono::milliseconds fallback) const;
  std::string choice(const char* name, std::string fallback,
                     const std::vector<std::string>& allowed) const;

 private:
  EnvironmentLookup lookup_;
};

// The value of `name`, or nullopt when unset. An empty value counts as set.
std::optional<std::string> env_get(const char* name);

// Typed readers: return `fallback` when the variable is unset or empty; throw ConfigError when it
// is set to something invalid.
std::string env_string(const char* name, std::string fallback);
std::string env_required(const char* name);      // throws when unset or empty
bool env_bool(const char* name, bool fallback);  // true/false/1/0/yes/no/on/off, any case
std::int64_t env_int(const char* name, std::int64_t fallback, std::int64_t min, std::int64_t max);
std::uint64_t env_bytes(const char* name, std::uint64_t fallback);  // 1048576, 64KiB, 256MiB, 1GiB
std::chrono::milliseconds env_duration(const char* name, std::chrono::milliseconds fallback);
// One of `allowed` (exact match, case-sensitive).
std::string env_choice(const char* name, std::string fallback,
                       const std::vector<std::string>& allowed);

// Parses a byte size such as "1048576", "64KiB", "256MiB", "1GiB" (also KB/MB/GB as powers of
// 1000).
Result<std::uint64_t> parse_bytes(std::string_view text);

}  // namespace asya
