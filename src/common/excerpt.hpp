// Shortening a value quoted in an error message, so a huge input cannot flood a log line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace asya {

// `text` when at most 80 bytes, else its first 72 bytes (never cutting a UTF-8 sequence)
// followed by "... (<size> bytes)".
inline std::string excerpt(std::string_view text) {
  constexpr std::size_t kMax = 80;
  if (text.size() <= kMax) return std::string(text);
  std::size_t cut = 72;
  // Do not split a UTF-8 sequence: back up to its lead byte.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out(text.substr(0, cut));
  out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace asya
