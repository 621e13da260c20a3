#include "wire/plain_run.hpp"

#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ASYA_PLAIN_RUN_AVX2 1
#endif

namespace asya::wire::scan {
namespace {

const char* skip_plain_bytewise(const char* p, const char* end) {
  while (p < end && is_plain(*p)) ++p;
  return p;
}

#ifdef ASYA_PLAIN_RUN_AVX2

// 0xff in each byte of `v` that is not plain: below 0x20 or above 0x7f (negative as a signed
// byte: one signed comparison covers both), a quote or a backslash.
__attribute__((target("avx2"))) inline __m256i not_plain(__m256i v) {
  const __m256i below = _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v);
  const __m256i quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('"'));
  const __m256i backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'));
  return _mm256_or_si256(below, _mm256_or_si256(quote, backslash));
}

__attribute__((target("avx2"))) const char* skip_plain_avx2(const char* p, const char* end) {
  // 128 bytes per step while they are all plain (the common case inside a long run), then the
  // block that holds the first byte that is not.
  while (end - p >= 128) {
    const auto* v = reinterpret_cast<const __m256i*>(p);
    const __m256i any = _mm256_or_si256(
        _mm256_or_si256(not_plain(_mm256_loadu_si256(v)), not_plain(_mm256_loadu_si256(v + 1))),
        _mm256_or_si256(not_plain(_mm256_loadu_si256(v + 2)),
                        not_plain(_mm256_loadu_si256(v + 3))));
    if (!_mm256_testz_si256(any, any)) break;
    p += 128;
  }
  while (end - p >= 32) {
    const auto mask = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(not_plain(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))));
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 32;
  }
  return skip_plain_bytewise(p, end);
}

bool has_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported;
}

#endif

}  // namespace

const char* skip_plain(const char* p, const char* end) {
#ifdef ASYA_PLAIN_RUN_AVX2
  if (has_avx2()) return skip_plain_avx2(p, end);
#endif
  return skip_plain_bytewise(p, end);
}

}  // namespace asya::wire::scan
