// Percent-decoding (RFC 3986) of a URL path segment or query component.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace asya {

// `text` with every "%XY" replaced by its byte (hex digits in either case), and with
// `plus_is_space` every '+' by a space (a form-encoded query component); nullopt for a '%' not
// followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space = false);

}  // namespace asya
