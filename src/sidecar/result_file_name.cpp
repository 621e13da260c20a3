#include "sidecar/result_file_name.hpp"

#include <fmt/format.h>

#include "common/percent_decode.hpp"

namespace asya::sidecar {

namespace {

constexpr std::string_view kSuffix = ".json";

}  // namespace

std::string result_file_name(std::string_view id) {
  std::string out;
  out.reserve(id.size() + kSuffix.size());
  for (std::size_t i = 0; i < id.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(id[i]);
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || (c == '.' && i > 0);
    if (safe)
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out + std::string(kSuffix);
}

std::optional<std::string> result_id_from_file_name(std::string_view name) {
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix) || name.front() == '.')
    return std::nullopt;
  const std::string_view encoded = name.substr(0, name.size() - kSuffix.size());
  return percent_decode(encoded);
}

}  // namespace asya::sidecar
