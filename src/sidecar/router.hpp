// The routing and failure-policy decisions of a sidecar (PROTOCOL §4 and §5), free of I/O: given
// a delivery and (when the runtime was called) its outcome, the Router says which bodies to send
// where, and whether to then ack or nack the input. The worker carries the decision out, so every
// rule here is unit-testable without sockets or queues.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "envelope/build.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/body_parts.hpp"
#include "sidecar/outcome.hpp"
#include "transport/transport.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

// Label value of asya_actor_messages_sent_total{message_type}.
enum class MessageType { kRoute, kHappyEnd, kErrorEnd, kRetry };
std::string_view message_type_label(MessageType type);

// Storage for the views of one transport::OutgoingMessage made from an Outgoing (message()).
struct MessageStorage {
  std::array<std::string_view, 3> views;
  std::string joined;
};

// One body to send. `delay` is non-zero only for retries.
struct Outgoing {
  std::string queue;  // full name, prefix included
  std::string body;   // the whole envelope; empty when `parts` holds it
  // A large output in parts (sidecar/body_parts.hpp): its body is parts->joined(), never built
  // unless a transport needs it whole.
  std::optional<BodyParts> parts;
  std::chrono::milliseconds delay{0};
  MessageType type = MessageType::kRoute;
  // Fan-out children with index >= 1 are announced to the gateway (PROTOCOL §7) before any output
  // of the message is sent; for them `fanout_child` is true and id/actors/current describe the
  // child.
  bool fanout_child = false;
  std::string id;
  std::vector<std::string> actors;
  std::size_t current = 0;
  // Error-end sends built from a parsed input: the error the envelope carries, so settle() can
  // rebuild it smaller (original_payload truncated) when the transport refuses it as too large.
  std::optional<envelope::ErrorInfo> error;
  // Non-zero: after_runtime wrote the trace context into `body` (or `parts`) as it built it; the
  // number OutputTrace::stamp returned for it.
  std::uint64_t trace_stamp = 0;

  std::size_t body_size() const { return parts ? parts->size() : body.size(); }
  // The message to hand `transport` (views into this output and `storage`): the parts as they
  // are when it sends parts, else the body (joined into `storage` first when in parts).
  transport::OutgoingMessage message(const transport::Transport& transport,
                                     MessageStorage& storage) const;
  // Makes `body` the whole envelope (joins the parts, drops them), for code that rewrites or
  // parses it (tracing's stamp).
  void join_parts();
};

// What to do with the input once every send succeeded. (If a send fails the worker nacks
// whatever the decision said: at-least-once.)
enum class Then { kAck, kNack };

struct Decision {
  std::vector<Outgoing> sends;
  Then then = Then::kAck;
  std::chrono::milliseconds nack_delay{0};
  // asya_actor_messages_processed_total{status}.
  ProcessedStatus status = ProcessedStatus::kSuccess;
  // The error code when something failed (asya_actor_messages_failed_total{reason}); kNone on
  // success.
  Failure failure;
  // What went wrong, when failure is set (the message of the error sent to error-end).
  std::string failure_message;
  bool retried = false;
  // Runtime timeout: the runtime is unhealthy; the sidecar stops after this message (exit 3).
  bool runtime_unhealthy = false;
  // Runtime unavailable: wait for the runtime to be ready again before receiving more.
  bool wait_for_runtime = false;
  // Keeps the hold of the input's payload renewed (sidecar/payload_ref.hpp, Input::renewal) until
  // the decision is settled and destroyed: its outputs or error envelope may refer to the object.
  std::shared_ptr<void> input_hold;
  // Runtime unavailable after the call already waited ASYA_RUNTIME_READY_TIMEOUT for the runtime
  // to be ready again (wire::CallResult::runtime_not_ready): the sidecar stops (exit 4) instead
  // of waiting once more.
  bool runtime_not_ready = false;
  // The input's payload object is gone and the hold token of its reference was released: a copy
  // of this very message was consumed before (two queue entries of one publish, PROTOCOL §10
  // "Outputs waiting in a queue"); acknowledged without calling the handler
  // (asya_actor_consumed_copies_dropped_total).
  bool consumed_copy = false;
};

// Replaces large output payloads by payload references (claim-check; sidecar/payload_ref.hpp),
// consulted by after_runtime for every result element before its envelope is built.
class PayloadOffload {
 public:
  virtual ~PayloadOffload() = default;
  // The payload text output `output_id` must carry instead of `payload_raw`: a reference to the
  // durably stored payload, or nullopt to keep the payload as it is (small enough). An Error when
  // the store failed; the input is then nacked (delivered again later).
  virtual Result<std::optional<std::string>> replace(std::string_view payload_raw,
                                                     std::string_view output_id) = 0;
};

// The trace context of the outputs after_runtime builds (the sidecar's trace hop, tracing.hpp):
// written into each envelope as it is built, so no output is parsed and rebuilt to carry it.
class OutputTrace {
 public:
  virtual ~OutputTrace() = default;
  // Called once for each output after_runtime builds, before its envelope is written: output
  // `envelope_id` is for `queue`. Sets `headers` (at most 8) to the string headers it must carry
  // (written in place of any of the same name) and returns a non-zero number, kept in the
  // output's Outgoing::trace_stamp. The views in `headers` stay valid until the next call.
  virtual std::uint64_t stamp(std::string_view envelope_id, std::string_view queue,
                              std::span<const envelope::StringHeader>& headers) = 0;
};

struct RouterOptions {
  std::string actor;  // this actor's name
  std::string queue_prefix = "asya-";
  std::string happy_end_queue = "asya-happy-end";
  std::string error_end_queue = "asya-error-end";
  int max_deliveries = 5;
  int retry_max_attempts = 1;
  std::chrono::milliseconds retry_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds retry_backoff_max{std::chrono::seconds(60)};
  bool retry_on_processing_error = false;
  std::size_t max_message_bytes = 256u << 20;  // the transport's limit for one body
  // Whether a result element may say "payload_unchanged": true (PROTOCOL §3): its payload is then
  // the input's payload text as received from the queue (a payload reference stays that
  // reference). Off for a join actor, whose request's payload (the group's branches) is never
  // held whole: such an answer is a runtime_protocol_error there.
  bool accept_payload_unchanged = true;
  // Returns a number in [0, 1) for backoff jitter; default: a thread-local PRNG. Tests pass a
  // constant.
  std::function<double()> jitter;
};

// Observers of settle(), for metrics and gateway reports.
struct SendHooks {
  std::function<void(const Outgoing&)> before_send;  // e.g. announce a child
  std::function<void(const Outgoing&, double seconds, const Status&)> after_send;
};

// What settle() did with a delivery.
struct Settlement {
  std::size_t sent = 0;  // outputs confirmed by the transport
  bool acked = false;
  bool nacked = false;
  bool too_large = false;  // an output was refused as too large; replaced by an error-end send
  std::string error;       // the failed send/ack/nack, when any
};

class Router {
 public:
  explicit Router(RouterOptions options);

  // Decides a delivery that must not reach the runtime: an unparseable body (wrapped, sent to
  // error-end once), too many deliveries, a passed deadline, or a route that does not point at
  // this actor. Returns nullopt when the runtime must be called with the delivery's body.
  std::optional<Decision> before_runtime(const transport::Delivery& delivery,
                                         const Result<envelope::Envelope>& parsed,
                                         std::chrono::system_clock::time_point now) const;

  // Decides the outcome of a runtime call for input `in` (parsed from delivery.body).
  // `response` is the runtime's answer when call.status == kOk. A result that says
  // "payload_unchanged" gets in.payload_raw as its payload (a view into delivery.body, which the
  // caller keeps alive as long as the decision, as it does for `in`). `response_padded`: the answer
  // is followed by envelope::kParsePadding readable bytes (a wire::FrameBuffer), so it is parsed in
  // place instead of copied into a padded buffer first.
  // `offload`, when given, replaces large output payloads by references (see PayloadOffload).
  // `parts_above` (0: never): an output whose payload (as sent) is larger than this many bytes is
  // kept in parts (Outgoing::parts) whose payload points into `response`: the caller keeps
  // `response` alive as long as the decision, through BodyParts::owner (see hold_answer).
  // `trace`, when given, gives each output built from the answer its trace context.
  Decision after_runtime(const envelope::Envelope& in, const transport::Delivery& delivery,
                         const wire::CallResult& call, std::string_view response,
                         bool response_padded = false, PayloadOffload* offload = nullptr,
                         std::size_t parts_above = 0, OutputTrace* trace = nullptr) const;
  // PROTOCOL §4a: when `in` is a failed branch (its innermost fan-out frame says "failed") and this
  // actor is not a join, the decision that passes it on unchanged with route.current + 1 (to
  // error-end when the route ends here); the runtime is not called. nullopt otherwise.
  std::optional<Decision> failed_branch_passing(const envelope::Envelope& in) const;

  // Sends `in` to error-end with a sidecar-side error `code` (e.g. message_too_large), then ack.
  Decision error_end(const envelope::Envelope& in, FailureCode code, std::string message) const {
    return to_error_end(in, code, std::move(message));
  }

  // Carries out `decision` for `delivery` on `transport`: sends each output in order (each send
  // returns only once durable), then acks or nacks as decided. If a send fails, the input is
  // nacked (redelivered later with its delivery count + 1: at-least-once) and the remaining
  // outputs are not sent; if the transport refuses an output as message_too_large, the input goes
  // to error-end with message_too_large instead (needs `in`). If it refuses an error envelope as
  // too large, the envelope is rebuilt with original_payload replaced by
  // {"truncated": true, "size_bytes": N} (see error_body) and sent again, so an error always
  // reaches error-end. Ack happens only after every send succeeded. A decision to ack whose
  // outputs all fit is first offered to Transport::send_then_ack (SQLite: outputs and ack in one
  // transaction, all or nothing); when the transport takes none of it, the steps above run.
  Settlement settle(transport::Transport& transport, const transport::Delivery& delivery,
                    const envelope::Envelope* in, const Decision& decision,
                    const SendHooks& hooks = {}) const;

  // The error envelope for `in` (envelope::build_error), made to fit max_message_bytes: when the
  // full envelope is larger, original_payload becomes {"truncated": true, "size_bytes": N} and
  // details.message says so; when even that is too large, headers and unknown fields are dropped
  // too. `limit` overrides max_message_bytes (0: use it).
  std::string error_body(const envelope::Envelope& in, const envelope::ErrorInfo& info,
                         std::size_t limit = 0) const;

  // Retry delay before attempt `attempt` + 1: retry_backoff doubled (attempt - 1) times, capped
  // by retry_backoff_max, then scaled by a jitter factor in [0.5, 1).
  std::chrono::milliseconds backoff(int attempt) const;

  const RouterOptions& options() const { return options_; }

 private:
  // settle() in one Transport::send_then_ack step; nullopt when the decision or the hooks need
  // the steps one by one, or the transport did nothing.
  std::optional<Settlement> settle_in_one_step(transport::Transport& transport,
                                               const transport::Delivery& delivery,
                                               const Decision& decision,
                                               const SendHooks& hooks) const;

  Outgoing error_outgoing(const envelope::Envelope& in, envelope::ErrorInfo info) const;
  Decision to_error_end(const envelope::Envelope& in, FailureCode code, std::string message) const;
  // `failure` is what the envelope's payload.error says (a runtime's own code when kOther).
  Decision failure_with_retry(const envelope::Envelope& in, Failure failure, std::string message,
                              std::string type, std::string traceback) const;
  std::string own_queue() const { return options_.queue_prefix + options_.actor; }

  RouterOptions options_;
};

}  // namespace asya::sidecar
