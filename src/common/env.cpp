#include "common/env.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace asya {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto invalid = [&] {
    return Error{fmt::format(
        "\"{}\" is not a duration: use a number with a unit (300ms, 30s, 5m, 1h)", text)};
  };
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty()) return invalid();
  double total_ms = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t start = pos;
    while (pos < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.'))
      ++pos;
    if (pos == start) return invalid();
    double number = 0;
    auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + pos, number);
    if (ec != std::errc() || ptr != text.data() + pos) return invalid();
    std::size_t unit_start = pos;
    while (pos < text.size() && !std::isdigit(static_cast<unsigned char>(text[pos])) &&
           text[pos] != '.')
      ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    double factor;
    if (unit == "ns")
      factor = 1e-6;
    else if (unit == "us" || unit == "\xC2\xB5s")
      factor = 1e-3;
    else if (unit == "ms")
      factor = 1;
    else if (unit == "s")
      factor = 1000;
    else if (unit == "m")
      factor = 60'000;
    else if (unit == "h")
      factor = 3'600'000;
    else
      return invalid();
    total_ms += number * factor;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return invalid();
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(total_ms)));
}

std::string format_duration(std::chrono::milliseconds value) {
  auto ms = value.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms % 1000 != 0) return fmt::format("{}ms", ms);
  auto s = ms / 1000;
  if (s >= 3600) {
    out += fmt::format("{}h", s / 3600);
    s %= 3600;
  }
  if (s >= 60) {
    out += fmt::format("{}m", s / 60);
    s %= 60;
  }
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

Result<std::uint64_t> parse_bytes(std::string_view text) {
  auto invalid = [&] {
    return Error{fmt::format(
        "\"{}\" is not a byte size: use a number of bytes or KiB/MiB/GiB (e.g. 256MiB)", text)};
  };
  std::size_t pos = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  if (pos == 0) return invalid();
  std::uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + pos, number);
  if (ec != std::errc()) return invalid();
  std::string unit = lower(text.substr(pos));
  std::uint64_t factor;
  if (unit.empty() || unit == "b")
    factor = 1;
  else if (unit == "kib" || unit == "ki")
    factor = 1ull << 10;
  else if (unit == "mib" || unit == "mi")
    factor = 1ull << 20;
  else if (unit == "gib" || unit == "gi")
    factor = 1ull << 30;
  else if (unit == "kb" || unit == "k")
    factor = 1000;
  else if (unit == "mb" || unit == "m")
    factor = 1000 * 1000;
  else if (unit == "gb" || unit == "g")
    factor = 1000 * 1000 * 1000;
  else
    return invalid();
  if (number > UINT64_MAX / factor) return invalid();
  return number * factor;
}

EnvironmentLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvironmentLookup environment_with(std::map<std::string, std::string, std::less<>> values,
                                   EnvironmentLookup fallback) {
  return [values = std::move(values),
          fallback = std::move(fallback)](std::string_view name) -> std::optional<std::string> {
    if (auto it = values.find(name); it != values.end()) return it->second;
    return fallback ? fallback(name) : std::nullopt;
  };
}

Environment::Environment(EnvironmentLookup lookup) : lookup_(std::move(lookup)) {}

std::optional<std::string> Environment::get(std::string_view name) const {
  return lookup_ ? lookup_(name) : std::nullopt;
}

std::string Environment::string(const char* name, std::string fallback) const {
  auto value = get(name);
  return value && !value->empty() ? *value : fallback;
}

std::string Environment::required(const char* name) const {
  auto value = get(name);
  if (!value || value->empty()) throw ConfigError(fmt::format("{} is required but not set", name));
  return *value;
}

bool Environment::boolean(const char* name, bool fallback) const {
  auto value = get(name);
  if (!value || value->empty()) return fallback;
  std::string v = lower(*value);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw ConfigError(fmt::format("{}=\"{}\" is not a boolean: use true or false", name, *value));
}

std::int64_t Environment::integer(const char* name, std::int64_t fallback, std::int64_t min,
                                  std::int64_t max) const {
  auto value = get(name);
  if (!value || value->empty()) return fallback;
  std::int64_t number = 0;
  auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), number);
  if (ec != std::errc() || ptr != value->data() + value->size() || number < min || number > max)
    throw ConfigError(fmt::format("{}=\"{}\" is not valid: use an integer from {} to {}", name,
                                  *value, min, max));
  return number;
}

std::uint64_t Environment::bytes(const char* name, std::uint64_t fallback) const {
  auto value = get(name);
  if (!value || value->empty()) return fallback;
  auto parsed = parse_bytes(*value);
  if (!parsed) throw ConfigError(fmt::format("{}={}", name, parsed.error().message));
  return *parsed;
}

std::chrono::milliseconds Environment::duration(const char* name,
                                                std::chrono::milliseconds fallback) const {
  auto value = get(name);
  if (!value || value->empty()) return fallback;
  auto parsed = parse_duration(*value);
  if (!parsed) throw ConfigError(fmt::format("{}={}", name, parsed.error().message));
  return *parsed;
}

std::string Environment::choice(const char* name, std::string fallback,
                                const std::vector<std::string>& allowed) const {
  auto value = get(name);
  if (!value || value->empty()) return fallback;
  if (std::find(allowed.begin(), allowed.end(), *value) != allowed.end()) return *value;
  throw ConfigError(
      fmt::format("{}=\"{}\" is not valid: use one of {}", name, *value, fmt::join(allowed, ", ")));
}

namespace {

const Environment& process() {
  static const Environment* instance = new Environment(process_environment());  // never destroyed
  return *instance;
}

}  // namespace

std::optional<std::string> env_get(const char* name) {
  return process().get(name);
}

std::string env_string(const char* name, std::string fallback) {
  return process().string(name, std::move(fallback));
}

std::string env_required(const char* name) {
  return process().required(name);
}

bool env_bool(const char* name, bool fallback) {
  return process().boolean(name, fallback);
}

std::int64_t env_int(const char* name, std::int64_t fallback, std::int64_t min, std::int64_t max) {
  return process().integer(name, fallback, min, max);
}

std::uint64_t env_bytes(const char* name, std::uint64_t fallback) {
  return process().bytes(name, fallback);
}

std::chrono::milliseconds env_duration(const char* name, std::chrono::milliseconds fallback) {
  return process().duration(name, fallback);
}

std::string env_choice(const char* name, std::string fallback,
                       const std::vector<std::string>& allowed) {
  return process().choice(name, std::move(fallback), allowed);
}

}  // namespace asya
