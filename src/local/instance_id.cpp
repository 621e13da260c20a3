#include "local/instance_id.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <random>

#include <fmt/format.h>

namespace asya::local {

std::string new_instance_id() {
  std::random_device random;  // /dev/urandom (getrandom) on Linux
  std::uint64_t value = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  return fmt::format("{:016x}", value);
}

std::string answer_instance(std::string_view body) {
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(body, ec);
  if (ec || !parsed.is_object()) return "";
  const auto* instance = parsed.as_object().if_contains("instance");
  if (instance == nullptr || !instance->is_string()) return "";
  return std::string(instance->as_string());
}

bool answered_by_instance(std::string_view body, std::string_view expected) {
  if (expected.empty()) return true;
  return answer_instance(body) == expected;
}

}  // namespace asya::local
