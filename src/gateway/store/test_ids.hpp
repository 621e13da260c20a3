// Unique names for the job-store tests' databases and ids: several test processes (ctest -j,
// SQLite and PostgreSQL runs) share /tmp and one PostgreSQL database.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

namespace asya::gateway::testing {

inline std::string unique_id(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" +
         std::to_string(counter++);
}

}  // namespace asya::gateway::testing
