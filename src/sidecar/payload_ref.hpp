// The sidecar's side of large payloads by reference (claim-check; docs/protocol.md "Payload
// references"): with ASYA_PAYLOAD_STORE set, an input whose payload is a reference gets its real
// payload back before the runtime sees it, and an output payload above ASYA_PAYLOAD_THRESHOLD is
// stored durably and replaced by a reference before it is published. Handlers never see a
// reference. The lifetime records (payload/lifetime.hpp) are written here too: a hold before a
// reference is published or resolved (renewed while that input is processed:
// payload/hold_renewer.hpp), a release by the end actors.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "envelope/envelope.hpp"
#include "payload/hold_renewer.hpp"
#include "payload/lifetime.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"
#include "payload/settings.hpp"
#include "sidecar/payload_stream.hpp"
#include "sidecar/router.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

class PayloadReferences {
 public:
  // `threshold_bytes`: payloads larger than this are stored by reference. `renewal_interval`: how
  // often the hold of an input being processed is rewritten (payload::renewal_interval of
  // ASYA_PAYLOAD_GRACE).
  PayloadReferences(std::unique_ptr<payload::PayloadStore> store, std::size_t threshold_bytes,
                    std::chrono::milliseconds renewal_interval =
                        payload::renewal_interval(payload::SweepPolicy{}.grace));

  enum class InputStatus {
    kPlain,         // the payload is not a reference: call the runtime with the body as received
    kResolved,      // `body` is the envelope with the real payload in place of the reference
                    // (or, when `stream` is set, the object is sent from its file: body empty)
    kUnavailable,   // missing object, size or SHA-256 mismatch, malformed or foreign reference:
                    // error-end as payload_unavailable, never the handler
    kStoreError,    // the store could not be reached: nack, delivered again later
    kConsumedCopy,  // the object is gone and the reference's hold token was released: a copy of
                    // this very message was consumed before (a second queue entry of one
                    // publish); acknowledged, never the handler (Decision::consumed_copy)
  };
  struct Input {
    InputStatus status = InputStatus::kPlain;
    std::string body;
    std::optional<payload::Reference> reference;  // the input's reference, when it had one
    std::string message;       // kUnavailable, kStoreError: what failed, naming the reference
    std::string_view payload;  // kResolved: the object's bytes inside `body`
    // kResolved from a local store file (resolve(..., allow_stream)): the request to send; checked
    // while it is sent (sidecar/payload_stream.hpp).
    std::unique_ptr<StreamedPayload> stream;
    // A streamed input whose pass-through answer could not be rebuilt (call_streamed): why.
    std::string answer_failure;
    // The input's hold, rewritten while this lives (payload/hold_renewer.hpp): a duplicate of the
    // envelope that ends meanwhile cannot get the object deleted under this one. Kept until the
    // input is settled (the decisions prepare, streamed_failure and Runner::call_runtime return
    // carry it as Decision::input_hold; a batch keeps its Inputs until it is settled).
    std::shared_ptr<payload::HoldRenewer::Renewal> renewal;
  };

  // Resolves the payload of `in` (parsed from `body`, whose views it holds). The result body is
  // `body` with the reference's JSON text replaced by the object's bytes, byte for byte; the
  // object is read straight into it, so the payload is held once. Holds the object for in.id
  // first (so a redelivery after its envelope ended keeps it), and renews that hold while
  // Input::renewal lives. With `allow_stream` and a store of
  // local files, the object is only opened: Input::stream sends and checks it during the runtime
  // call, and the caller must ask streamed_failure() after the call. Blocking; thread-safe.
  Input resolve(const envelope::Envelope& in, std::string_view body, bool allow_stream = false);

  // A payload one message's outputs stored, and its digest.
  struct Stored {
    std::string_view payload;  // in the runtime's answer, alive while the outputs are built
    std::string sha256;
  };

  // The offload of one message's outputs: a payload above the threshold is stored once
  // (objects/<sha256>) and held for the output's id before the reference is returned; a payload
  // equal to the input's (same SHA-256: pass-through) reuses the input's object without
  // writing it, and outputs of one message with equal payloads are written once. An output that
  // is the input's own reference text (a "payload_unchanged" answer) forwards that object.
  // Every reference returned carries a new hold token, held before it is returned (one message
  // each: payload/lifetime.hpp). Other
  // payloads are hashed while they are written (PayloadStore::put_object). Used for one runtime
  // answer: the payloads given to replace() must stay alive while it is used.
  class Outputs : public PayloadOffload {
   public:
    // `input_id`: the input envelope's id (output 0 carries it, so the input's hold covers it).
    Outputs(PayloadReferences& owner, std::string input_id,
            std::optional<payload::Reference> input_reference)
        : owner_(owner), input_id_(std::move(input_id)), input_(std::move(input_reference)) {}
    Result<std::optional<std::string>> replace(std::string_view payload_raw,
                                               std::string_view output_id) override;
    // The resolved input's bytes (Input::payload), compared with large answers to find a
    // pass-through without hashing it; empty once they are freed.
    void set_input_payload(std::string_view bytes) { input_payload_ = bytes; }
    // The same for an input streamed from its file (compared with the file instead); null once
    // the call is over.
    void set_input_stream(StreamedPayload* stream) { input_stream_ = stream; }
    // The input's reference text put in place of the object's bytes in the answer (a
    // pass-through compared while it arrived: passthrough_answer.hpp), a view into the answer: a
    // payload exactly there is the input's payload, forwarded as its reference.
    void set_replaced(std::string_view reference_text) { replaced_ = reference_text; }
    // The input envelope's payload text as received (a view into its body): a result that said
    // "payload_unchanged" carries exactly this view (Router::after_runtime), so when the input
    // came as a reference, that output forwards it, with no hashing, comparing or writing.
    void set_input_text(std::string_view payload_text) { input_text_ = payload_text; }
    // The input's inline payload (set_input_text), written to the store ahead while the runtime
    // works (PayloadStore::begin_object): an output whose payload is exactly those bytes (a
    // "payload_unchanged" answer, or the same bytes sent back) commits it instead of writing
    // the payload again.
    void set_written_ahead(std::unique_ptr<payload::PendingObject> object) {
      ahead_ = std::move(object);
    }
    // The runtime call is over and the outputs are built: forgets the input's bytes and stream,
    // and abandons an input written ahead that no output used (its writing stops, its temporary
    // is removed; the sidecar then stops writing ahead until an input comes back unchanged).
    void release_input();

   private:
    PayloadReferences& owner_;
    std::string input_id_;
    std::optional<payload::Reference> input_;
    std::string_view input_payload_;
    StreamedPayload* input_stream_ = nullptr;
    std::string_view replaced_;
    std::string_view input_text_;
    std::unique_ptr<payload::PendingObject> ahead_;
    std::vector<Stored> stored_;  // payloads stored by this message
    std::set<std::string> held_;  // output ids held for the input's object
  };

  // The runner's step before a runtime call, for a message alone or for each item of a batch
  // (sidecar/batch_hooks.hpp): resolves `in` into `input` (its body is the request to send when
  // not empty) and sets `offload` up for the outputs; returns the decision instead when the
  // reference cannot be resolved (unresolved_decision, logged).
  // With `write_ahead` (a message alone, whose payload's bytes stay mapped until the call and
  // its outputs are done), an inline payload above the threshold is written to the store ahead
  // (Outputs::set_written_ahead) while this sidecar's recent large inline inputs came back
  // unchanged (write_ahead_enabled()).
  std::optional<Decision> prepare(const Router& router, const envelope::Envelope& in,
                                  const transport::Delivery& delivery, Input& input,
                                  std::optional<Outputs>& offload, bool allow_stream = false,
                                  bool write_ahead = false);

  // The runtime call for an input streamed from its file (Input::stream; `body` the received
  // envelope, `payload_raw` its reference's text): the answer is received into `answer`. When
  // the payload is over the threshold the answer is compared with the object while it arrives
  // (passthrough_answer.hpp): a pass-through then never holds the object's bytes, and `offload`
  // learns where the reference replaced them; when the answer could not be rebuilt,
  // Input::answer_failure says why (streamed_failure then nacks).
  wire::CallResult call_streamed(wire::RuntimeClient& client, Input& input, std::string_view body,
                                 std::string_view payload_raw, Outputs& offload,
                                 wire::FrameBuffer& answer, std::chrono::milliseconds timeout);

  // After a runtime call with a streamed input (Input::stream): the decision when the object did
  // not match its reference (payload_unavailable) or could not be read (nack), in which case the
  // request was cut short and the handler did not run, or when a compared answer could not be
  // rebuilt (nack: delivered again); nullopt when it was sent whole.
  static std::optional<Decision> streamed_failure(const Router& router,
                                                  const envelope::Envelope& in,
                                                  const transport::Delivery& delivery,
                                                  Input& input);

  // For end actors (results hold real payloads): when `payload_raw` is a reference, `body` is the
  // payload it refers to (kResolved) or the status says why not, as for resolve. Unlike resolve,
  // no hold is written (the envelope has ended).
  Input resolve_payload(std::string_view payload_raw);

  // Records that envelope `envelope_id` ended (payload/lifetime.hpp).
  Status release(std::string_view envelope_id) { return payload::release(*store_, envelope_id); }

  // The input `in` was acked after `decision` was carried out (its outputs durable): when its
  // payload is a reference with a hold token, that token's release is written soon, on the hold
  // renewer's thread (payload/hold_renewer.hpp), unless the decision re-sent the input as a
  // retry (which carries the token on). Never blocks on the store; thread-safe.
  void consumed(const envelope::Envelope& in, const Decision& decision);

  // The same for a message whose reference the caller parsed (end actors): releases `token`
  // soon when not empty. Thread-safe.
  void release_token_later(std::string token) {
    if (!token.empty()) renewer_.release_later(std::move(token));
  }

  payload::PayloadStore& store() { return *store_; }
  std::size_t threshold_bytes() const { return threshold_bytes_; }
  // How often a hold that must stay fresh is rewritten (the constructor's `renewal_interval`).
  std::chrono::milliseconds renewal_interval() const { return renewal_interval_; }
  // Whether prepare() writes large inline inputs ahead: true at first; false once an input
  // written ahead was not passed on unchanged (its writing was wasted), true again once a large
  // inline input comes back unchanged. Thread-safe.
  bool write_ahead_enabled() const { return write_ahead_.load(std::memory_order_relaxed); }

 private:
  // `input` could not be read because its object is missing (`message`: the store's error): when
  // the hold token of its reference was released, a copy of this message was consumed and the
  // input becomes kConsumedCopy; otherwise kUnavailable (also when that cannot be looked up).
  void missing_object(Input& input, std::string message);

  // The reference of a payload stored for `output_id` (`sha256`: its digest, or empty when not
  // known yet); written once per message (`stored`).
  Result<std::string> stored_reference(std::string_view payload_raw, std::string sha256,
                                       std::string_view output_id, std::vector<Stored>& stored);

  std::unique_ptr<payload::PayloadStore> store_;
  std::size_t threshold_bytes_;
  std::chrono::milliseconds renewal_interval_;
  std::atomic<bool> write_ahead_{true};
  payload::HoldRenewer renewer_;  // after store_: it writes to it until destroyed
};

// The decision for an input whose reference could not be resolved (status kUnavailable: error-end
// as payload_unavailable with the reference in the details; kStoreError: nack with the backoff of
// the delivery count, so a store outage delays the message and never loses it).
Decision unresolved_decision(const Router& router, const envelope::Envelope& in,
                             const transport::Delivery& delivery,
                             const PayloadReferences::Input& input);

// Runs payload::sweep every `interval` on its own thread (end actors run one each; several at once
// are harmless). Stops, joining the thread, when destroyed.
class PayloadSweeper {
 public:
  PayloadSweeper(payload::PayloadStore& store, payload::SweepPolicy policy,
                 std::chrono::milliseconds interval);
  ~PayloadSweeper();
  PayloadSweeper(const PayloadSweeper&) = delete;
  PayloadSweeper& operator=(const PayloadSweeper&) = delete;

 private:
  void run();

  payload::PayloadStore& store_;
  payload::SweepPolicy policy_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// What a sidecar keeps for payload references: none when ASYA_PAYLOAD_STORE is unset; an end
// actor also runs a sweeper.
struct PayloadParts {
  std::unique_ptr<PayloadReferences> references;
  std::unique_ptr<PayloadSweeper> sweeper;

  // references->prepare(...), nothing to do without references.
  std::optional<Decision> prepare(const Router& router, const envelope::Envelope& in,
                                  const transport::Delivery& delivery,
                                  PayloadReferences::Input& input,
                                  std::optional<PayloadReferences::Outputs>& offload,
                                  bool allow_stream = false, bool write_ahead = false) {
    if (!references) return std::nullopt;
    return references->prepare(router, in, delivery, input, offload, allow_stream, write_ahead);
  }
};
PayloadParts make_payload_parts(const payload::Settings& settings, bool end_actor);

}  // namespace asya::sidecar
