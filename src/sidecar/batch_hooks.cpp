#include "sidecar/batch_hooks.hpp"

namespace asya::sidecar {

BatchItemHooks::BatchItemHooks(Tracing& tracing, PayloadReferences* references,
                               const Router& router, std::size_t items)
    : hops_(tracing, items),
      references_(references),
      router_(router),
      payloads_(references ? items : 0),
      sent_(items, 0) {}

void BatchItemHooks::received(std::size_t i, BatchItem& item, bool tracked) {
  hops_.start(i, item.envelope(), *item.delivery, tracked);
}

std::optional<Decision> BatchItemHooks::before_send(std::size_t i, BatchItem& item) {
  if (references_) {
    // As for a message alone (Runner::call_runtime): resolved for the runtime, or decided alone.
    Payload& payload = payloads_.at(i);
    if (auto early = references_->prepare(router_, *item.envelope(), *item.delivery, payload.input,
                                          payload.offload))
      return early;
    if (!payload.input.body.empty()) item.request = payload.input.body;
    item.offload = &*payload.offload;
  }
  sent_.at(i) = 1;
  return std::nullopt;
}

void BatchItemHooks::called(std::span<BatchItem> items, const BatchCall& call) {
  std::size_t index = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!sent_[i]) continue;
    const BatchItem& item = items[i];
    hops_.runtime_call(i, call.started, call.runtime_seconds,
                       item.decision ? item.decision->failure.label() : std::string_view(), index++,
                       call.sent);
    if (!payloads_.empty()) {
      // The resolved request is not needed any more: the answers were decided (their large
      // outputs stored, a pass-through compared with it) inside the call.
      if (payloads_[i].offload) payloads_[i].offload->set_input_payload({});
      items[i].request = {};
      std::string().swap(payloads_[i].input.body);
    }
  }
}

void BatchItemHooks::decided(std::span<BatchItem> items) {
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].decision) hops_.stamp(i, *items[i].decision);
}

}  // namespace asya::sidecar
