#include "common/failpoint.hpp"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace asya {

std::set<std::string, std::less<>> parse_failpoints(std::string_view list) {
  std::set<std::string, std::less<>> names;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) names.emplace(name);
  }
  return names;
}

namespace {

const std::set<std::string, std::less<>>* armed_failpoints() {
  static const auto* armed = [] {
    const char* list = std::getenv("ASYA_FAILPOINTS");
    if (!list || !*list) return static_cast<std::set<std::string, std::less<>>*>(nullptr);
    auto* names = new std::set<std::string, std::less<>>(parse_failpoints(list));
    spdlog::warn("ASYA_FAILPOINTS armed: {} (fault-injection tests only)", list);
    return names;
  }();
  return armed;
}

}  // namespace

bool failpoint_armed(std::string_view name) {
  const auto* armed = armed_failpoints();
  return armed && armed->contains(name);
}

void failpoint(std::string_view name) {
  const auto* armed = armed_failpoints();
  if (!armed || !armed->contains(name)) return;
  spdlog::error("failpoint {} reached: killing this process (ASYA_FAILPOINTS)", name);
  spdlog::default_logger()->flush();
  ::raise(SIGKILL);
}

}  // namespace asya
