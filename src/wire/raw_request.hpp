// Private to the C++ runtime (src/wire): the raw path's request handling (raw_request.cpp).
#pragma once

#include <string_view>

#include "asya/runtime.hpp"
#include "wire/runtime_answer.hpp"

namespace asya::detail {

// Answers `request` for a raw handler into `out` (cleared by the caller): the handler gets the
// payload's text, the answer's pieces refer to the request's bytes where the payload is passed
// through. May throw (bad_alloc, a handler's output that cannot be stored); respond_raw turns
// that into an error answer.
void handle_raw_payload_request(std::string_view request, const RawPayloadHandler& handler,
                                Answer& out);

}  // namespace asya::detail
