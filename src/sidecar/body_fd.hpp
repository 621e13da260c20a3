// An inline payload passed to the runtime as a byte range of the message's own body file
// (PROTOCOL §3 "Payloads passed as a file"): the SQLite transport keeps a large body mapped from
// its body file with a descriptor of that file (transport::DeliveryBody::file_fd), so a runtime
// that declared payload-fd gets the envelope with the "payload_fd" marker and that descriptor,
// the payload being the range of the file where the envelope holds it. Nothing is hashed: the
// bytes are the queue's own, as when they are sent through the socket, and a body file is never
// written after its row exists.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "transport/delivery_body.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

// Payloads smaller than this go as bytes: a mapping costs the runtime a few system calls, a
// megabyte through the socket a fraction of a millisecond.
inline constexpr std::size_t kBodyFdMinPayloadBytes = std::size_t{1} << 20;

struct BodyFileRequest {
  wire::FdRequest fd_form;
  wire::StreamedRequest request;  // the body as bytes, with fd_form as its other form
};

// The request for `body` (the delivery's body, sent as it is) whose payload is `payload_raw` (a
// view into it), with its file-descriptor form; null when the body is not kept as a file, the
// payload is smaller than kBodyFdMinPayloadBytes, or the form cannot be used for this envelope
// (wire::payload_fd_request). `body` must outlive the call.
std::unique_ptr<BodyFileRequest> body_file_request(const transport::DeliveryBody& body,
                                                   std::string_view payload_raw);

}  // namespace asya::sidecar
