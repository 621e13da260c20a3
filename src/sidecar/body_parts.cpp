#include "sidecar/body_parts.hpp"

#include <utility>

#include "sidecar/router.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

transport::OutgoingMessage Outgoing::message(const transport::Transport& transport,
                                             MessageStorage& storage) const {
  transport::OutgoingMessage message{queue, body, delay};
  if (!parts) return message;
  if (transport.sends_parts()) {
    storage.views = parts->views();
    message.parts = storage.views;
    message.spool = parts->spool.get();
  } else {
    storage.joined = parts->joined();
    message.body = storage.joined;
  }
  return message;
}

void Outgoing::join_parts() {
  if (!parts) return;
  body = parts->joined();
  parts.reset();
}

void hold_answer(Decision& decision, wire::FrameBuffer& answer) {
  std::shared_ptr<const wire::FrameBuffer> owner;
  for (Outgoing& out : decision.sends) {
    if (!out.parts || out.parts->owner) continue;
    // Moving the buffer keeps its storage where it is: the parts' views stay valid.
    if (!owner) owner = std::make_shared<const wire::FrameBuffer>(std::exchange(answer, {}));
    out.parts->owner = owner;
  }
}

}  // namespace asya::sidecar
