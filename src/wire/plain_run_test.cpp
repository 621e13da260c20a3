// The plain-byte scan (wire/plain_run.hpp) against a byte-by-byte reading of the same definition,
// on every byte value, at every alignment, at block edges and at the end of the text.
#include "wire/plain_run.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace asya::wire::scan {
namespace {

const char* reference_skip(const char* p, const char* end) {
  while (p < end && is_plain(*p)) ++p;
  return p;
}

TEST(PlainRun, PlainIsPrintableAsciiButQuoteAndBackslash) {
  for (int c = 0; c < 256; ++c) {
    const bool expected = c >= 0x20 && c <= 0x7f && c != '"' && c != '\\';
    EXPECT_EQ(is_plain(static_cast<char>(c)), expected) << c;
    // Each byte value at each position of the 128- and 32-byte steps, and in the bytewise tail.
    for (std::size_t at : {0u, 1u, 31u, 32u, 63u, 64u, 100u, 127u, 128u, 200u, 290u, 299u}) {
      std::string text(300, 'x');
      text[at] = static_cast<char>(c);
      const char* end = text.data() + text.size();
      EXPECT_EQ(skip_plain(text.data(), end) - text.data(),
                static_cast<std::ptrdiff_t>(expected ? text.size() : at))
          << "byte " << c << " at " << at;
    }
  }
}

TEST(PlainRun, StopsAtTheFirstByteThatIsNotPlainLikeAByteWiseReading) {
  std::mt19937 random(7);
  const std::string specials = std::string("\"\\\x01\x1f\x80\xff\xc3", 7);
  for (int trial = 0; trial < 5000; ++trial) {
    const std::size_t size = random() % 900;
    std::string text(size, 'a');
    // Sparse or dense bytes that are not plain, so runs of every length occur.
    const unsigned density = trial % 3 == 0 ? 5 : trial % 3 == 1 ? 60 : 400;
    for (char& c : text) {
      if (random() % density == 0) c = specials[random() % specials.size()];
    }
    const std::size_t offset = std::min<std::size_t>(random() % 70, size);  // any alignment
    const char* end = text.data() + size;
    for (const char* begin = text.data() + offset; begin < end;
         begin = reference_skip(begin, end) + 1)
      ASSERT_EQ(skip_plain(begin, end), reference_skip(begin, end)) << "trial " << trial;
    EXPECT_EQ(skip_plain(end, end), end);
  }
}

}  // namespace
}  // namespace asya::wire::scan
