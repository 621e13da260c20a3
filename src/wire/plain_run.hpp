// Private to src/wire: a fast scan for runs of "plain" bytes, the bytes a JSON parser passes over
// inside a string without any decision: printable ASCII other than '"' and '\' (0x20-0x7f except
// 0x22 and 0x5c). The raw path's payload validation (raw_request.cpp) uses it to let its parser
// pass over long runs inside strings (base64 data, text), where its own check adds nothing.
#pragma once

#include <cstddef>

namespace asya::wire::scan {

inline bool is_plain(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u < 0x80 && u != '"' && u != '\\';
}

// The first byte at or after `p` that is not plain, or `end`.
const char* skip_plain(const char* p, const char* end);

}  // namespace asya::wire::scan
