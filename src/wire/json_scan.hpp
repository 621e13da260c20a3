// Private to src/wire: a scanner for the top level of a JSON text that was NOT validated (the
// raw path's find_payload, the payload_fd marker). Every step is bounded by `end` and gives up
// (nullptr) on anything it does not understand; it is exact on valid JSON, which is all its
// users rely on (they validate what they keep).
#pragma once

#include <cstddef>
#include <cstring>

namespace asya::wire::scan {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline const char* skip_space(const char* p, const char* end) {
  while (p < end && is_space(*p)) ++p;
  return p;
}

// `p` at an opening quote: the position after the closing quote (the first quote not preceded
// by an odd number of backslashes), or nullptr when the string is not terminated.
inline const char* skip_string(const char* p, const char* end) {
  const char* start = ++p;
  for (;;) {
    const char* quote =
        static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
    if (quote == nullptr) return nullptr;
    std::size_t backslashes = 0;
    for (const char* q = quote; q > start && q[-1] == '\\'; --q) ++backslashes;
    if (backslashes % 2 == 0) return quote + 1;
    p = quote + 1;
  }
}

// Where a value starting at `p` ends: strings skipped with memchr, containers by counting
// brackets outside strings, scalars up to the next delimiter. nullptr when unterminated.
inline const char* skip_value(const char* p, const char* end) {
  if (p == end) return nullptr;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    std::size_t depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        p = skip_string(p, end);
        if (p == nullptr) return nullptr;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      ++p;
    }
    return nullptr;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_space(*p)) ++p;
  return p;
}

}  // namespace asya::wire::scan
