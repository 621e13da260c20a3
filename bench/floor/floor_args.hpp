// Command-line and pacing helpers shared by the floor programs (bench_floor_sqlite,
// bench_floor_rabbitmq). Plain C++ only: a floor must not share Asya's code, or a cost there
// would hide in both the row and its floor.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

namespace asya::bench::floor {

// --name value pairs after the subcommand.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0 || i + 1 >= argc)
        throw std::runtime_error("expected --name value, got \"" + key + "\"");
      values_[key.substr(2)] = argv[++i];
    }
  }
  std::string text(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  std::string text(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) throw std::runtime_error("missing --" + name);
    return it->second;
  }
  double number(const std::string& name, double fallback) const {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    try {
      return std::stod(it->second);
    } catch (const std::exception&) {
      throw std::runtime_error("--" + name + " \"" + it->second + "\" is not a number");
    }
  }

 private:
  std::map<std::string, std::string> values_;
};

inline std::int64_t monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// Sleeps until CLOCK_MONOTONIC reads `deadline_ns` (absolute: a late wake-up does not delay the
// next message, so the rate holds).
inline void sleep_until_ns(std::int64_t deadline_ns) {
  timespec at{static_cast<time_t>(deadline_ns / 1'000'000'000),
              static_cast<long>(deadline_ns % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) != 0) {
  }
}

// The number of messages a pacer sends for `rate` per second during `seconds`.
inline std::uint64_t paced_count(double rate, double seconds) {
  if (!(rate > 0) || !(seconds > 0))
    throw std::runtime_error("--rate and --seconds must be positive");
  return static_cast<std::uint64_t>(rate * seconds + 0.5);
}

}  // namespace asya::bench::floor
