#include "sidecar/result_file_name.hpp"

#include <fmt/format.h>

namespace asya::sidecar {

namespace {

constexpr std::string_view kSuffix = ".json";

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

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
  std::string id;
  id.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      id += encoded[i];
      continue;
    }
    if (i + 2 >= encoded.size()) return std::nullopt;
    const int high = hex_digit(encoded[i + 1]);
    const int low = hex_digit(encoded[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    id += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return id;
}

}  // namespace asya::sidecar
