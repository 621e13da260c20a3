// What a batch (ASYA_BATCH_MAX_SIZE > 1) adds per item so that each item is treated as if it came
// alone (internal to the sidecar binary; the steps of sidecar/batch_runner.hpp's BatchHooks):
// - trace spans (docs/tracing.md "Batches"): a hop per item, child of the item's own traceparent,
//   with the batch's runtime call, a publish span per output (each output names its own) and the
//   ack or nack (BatchHops);
// - payload references (docs/protocol.md §10): an item whose payload is a reference is resolved
//   before the batch call, alone; one that cannot be resolved is decided alone (error-end as
//   payload_unavailable, or a nack when the store is unreachable) and the rest of the batch goes
//   on; large outputs are stored by reference per item, held under the output ids, and a
//   pass-through forwards the input's reference.
// One BatchItemHooks per batch, on the worker thread that runs it; destroying it exports the
// spans, so it must outlive the batch's settlement (a batch settled in the background hands it,
// detached, to the settling thread: BatchHops::attach).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "sidecar/batch_runner.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/router.hpp"
#include "sidecar/tracing.hpp"

namespace asya::sidecar {

class BatchItemHooks : public BatchHooks {
 public:
  // `items`: the batch's size; `references`: nullptr when ASYA_PAYLOAD_STORE is unset.
  BatchItemHooks(Tracing& tracing, PayloadReferences* references, const Router& router,
                 std::size_t items);

  void received(std::size_t i, BatchItem& item, bool tracked) override;
  std::optional<Decision> before_send(std::size_t i, BatchItem& item) override;
  void called(std::span<BatchItem> items, const BatchCall& call) override;
  void decided(std::span<BatchItem> items) override;

  const BatchHops& hops() const { return hops_; }
  BatchHops& hops() { return hops_; }

 private:
  struct Payload {
    PayloadReferences::Input input;  // input.body: the resolved request, until the call is done
    std::optional<PayloadReferences::Outputs> offload;
  };

  BatchHops hops_;
  PayloadReferences* references_;
  const Router& router_;
  std::vector<Payload> payloads_;
  std::vector<char> sent_;  // the items before_send let through to the runtime
};

}  // namespace asya::sidecar
