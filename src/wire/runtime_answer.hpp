// Private to the C++ runtime (src/wire): one answer of the runtime server as the pieces written
// after the frame header, so a raw handler's answer is sent with one gather write (the request's
// own payload bytes included) instead of being copied into a new string first. One Answer is kept
// per connection and reused, so its buffers keep their capacity between requests.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "asya/runtime.hpp"

namespace asya::detail {

// Buffers a connection keeps between requests are released after a request that grew them past
// this size (a rare 100 MB message must not pin 100 MB per connection).
inline constexpr std::size_t kKeptBufferBytes = 4u << 20;

struct Answer {
  // The whole answer when `pieces` is empty; otherwise bytes some pieces refer to.
  std::string text;
  // When not empty, the answer is these pieces in order. They refer to `text`, to `outputs`, to
  // static text, or to the request being answered: valid until the request buffer or this Answer
  // changes.
  std::vector<std::string_view> pieces;
  // Keeps the raw handler's own output texts alive until the answer is written.
  RawOutputs outputs;
  // Whether the sidecar on this connection takes "payload_unchanged" answers (PROTOCOL §3;
  // wire/sidecar_features.hpp): asked only when an answer could use it, so a connection whose
  // answers never can pays nothing. Null: never (handle_raw_request's default). Kept by clear().
  std::function<bool()> payload_unchanged_allowed;

  // Empties the answer, keeping the buffers' capacity (up to kKeptBufferBytes).
  void clear();
  std::size_t size() const;
  // The answer as one string (tests, handle_raw_request).
  std::string to_string() const;
};

// What handle_request / handle_raw_request return, written into `out` (cleared first). Never
// throws: errors become error elements.
void respond_payload(std::string_view request, const PayloadHandler& handler, Answer& out);
void respond_raw(std::string_view request, const RawPayloadHandler& handler, Answer& out);
// The same for a request whose payload came as a file descriptor (PROTOCOL §3 "Payloads passed
// as a file"): `rest` is the envelope with "payload": null in place of the marker, `payload` the
// mapped bytes (alive until the answer is written).
void respond_payload_fd(std::string_view rest, std::string_view payload,
                        const PayloadHandler& handler, Answer& out);
void respond_raw_fd(std::string_view rest, std::string_view payload,
                    const RawPayloadHandler& handler, Answer& out);

}  // namespace asya::detail
