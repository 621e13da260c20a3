#include "common/random_id.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <random>

namespace asya {

void random_hex_into(char* out, std::size_t digits) {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  // Two digits per byte of each 64-bit draw (a sidecar makes three ids per traced message).
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr auto kPairs = [] {
    std::array<char, 512> pairs{};
    for (int b = 0; b < 256; ++b) {
      pairs[2 * b] = kHex[b >> 4];
      pairs[2 * b + 1] = kHex[b & 0xf];
    }
    return pairs;
  }();
  std::size_t written = 0;
  while (written < digits) {
    std::uint64_t bits = engine();
    int bytes = 0;
    for (; bytes < 8 && written + 2 <= digits; ++bytes, bits >>= 8, written += 2)
      std::memcpy(out + written, &kPairs[2 * (bits & 0xff)], 2);
    // An odd last digit from a byte this draw has left (else from the next draw).
    if (written + 1 == digits && bytes < 8) out[written++] = kHex[bits & 0xf];
  }
}

std::string random_hex(std::size_t digits) {
  std::string out(digits, '0');
  random_hex_into(out.data(), digits);
  return out;
}

std::string new_uuid() {
  std::string h = random_hex(32);
  h[12] = '4';                // version 4
  h[16] = "89ab"[h[16] % 4];  // variant 10xx
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

}  // namespace asya
