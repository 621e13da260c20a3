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

// The same for a request whose payload came as a file descriptor (PROTOCOL §3 "Payloads passed
// as a file"): `rest` is the envelope with `"payload":null` in place of the marker
// (wire/payload_fd.hpp) and `payload` the mapped bytes, checked here as one JSON value. An answer
// that passes the payload through refers to `payload`, which must outlive the answer's write.
void handle_raw_payload_fd_request(std::string_view rest, std::string_view payload,
                                   const RawPayloadHandler& handler, Answer& out);

}  // namespace asya::detail
