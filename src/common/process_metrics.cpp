#include "common/process_metrics.hpp"

#include <mutex>
#include <vector>

namespace asya {

namespace {
std::mutex& sources_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::vector<std::function<std::string()>>& sources() {
  static std::vector<std::function<std::string()>> all;
  return all;
}
}  // namespace

void add_process_metrics(std::function<std::string()> text) {
  std::lock_guard lock(sources_mutex());
  sources().push_back(std::move(text));
}

std::string process_metrics_text() {
  std::lock_guard lock(sources_mutex());
  std::string out;
  for (const auto& source : sources()) out += source();
  return out;
}

}  // namespace asya
