// A large output's body kept in parts instead of assembled (Router::after_runtime with
// `parts_above`): the envelope's head, the payload bytes where the runtime's answer holds them,
// and the closing brace. A transport that sends parts (SQLite: Transport::sends_parts) writes the
// body file from them, so a 100 MB output is never copied into an envelope string first; for any
// other transport, and for a traced hop whose outputs are rewritten, the parts are joined.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace asya::wire {
class FrameBuffer;
}
namespace asya::transport {
class BodySpool;
}

namespace asya::sidecar {

struct Decision;

// Outputs whose payload is larger than this are kept in parts when the transport sends parts
// (smaller ones are built whole: the head would cost as much as the copy it saves).
inline constexpr std::size_t kPartsAbove = std::size_t{1} << 20;

struct BodyParts {
  std::string head;          // envelope::build_output_head
  std::string_view payload;  // the payload's bytes inside the runtime's answer
  std::string_view tail;     // envelope::kOutputTail
  // Keeps the storage `payload` points into alive (the runtime's answer buffer, moved out of the
  // worker's scratch once the decision holds parts: see hold_answer()).
  std::shared_ptr<const void> owner;
  // The spool the payload was received into (sidecar/spooled_answer.hpp), when this output alone
  // points into it: handed to the transport with the parts (OutgoingMessage::spool).
  std::shared_ptr<transport::BodySpool> spool;

  std::size_t size() const { return head.size() + payload.size() + tail.size(); }
  std::array<std::string_view, 3> views() const { return {head, payload, tail}; }
  std::string joined() const {
    std::string out;
    out.reserve(size());
    out.append(head).append(payload).append(tail);
    return out;
  }
};

// When `decision` has outputs in parts, whose payloads point into `answer` (the runtime's answer
// the decision was made from): moves `answer`'s storage to an owner those outputs share, leaving
// `answer` empty, so the worker's next message cannot overwrite the bytes before they are sent.
// Nothing changes otherwise.
void hold_answer(Decision& decision, wire::FrameBuffer& answer);

}  // namespace asya::sidecar
