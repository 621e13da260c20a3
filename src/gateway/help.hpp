// The text `asya-gateway --help` prints (and its man page is made of): what the gateway does and
// every environment variable it reads, with defaults. docs/gateway.md ("Configuration") is the
// longer reference.
#pragma once

#include <string>

namespace asya::gateway {

std::string help_text();

}  // namespace asya::gateway
