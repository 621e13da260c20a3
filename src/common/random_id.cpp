#include "common/random_id.hpp"

#include <cstdint>
#include <random>

namespace asya {

void random_hex_into(char* out, std::size_t digits) {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t written = 0;
  while (written < digits) {
    std::uint64_t bits = engine();
    for (int i = 0; i < 16 && written < digits; ++i, bits >>= 4) out[written++] = kHex[bits & 0xf];
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
