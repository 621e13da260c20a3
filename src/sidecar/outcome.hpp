// What became of a message, as enums rather than strings: the processed status and the failure
// code of a router decision or an end actor's outcome. Each value's label() is the exact string
// on the wire (payload.error of an error envelope), in logs and in metric labels (docs/sidecar.md
// "Metrics"), so control flow compares enums and only the edges print strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace asya::sidecar {

// asya_actor_messages_processed_total{status}.
enum class ProcessedStatus {
  kSuccess,   // "success": routed on (including abort to happy-end), or stored by an end actor
  kError,     // "error": sent to error-end
  kRetry,     // "retry": re-enqueued with a delay
  kRequeued,  // "requeued": nacked for redelivery
};
std::string_view label(ProcessedStatus status);

// The failure codes the sidecar knows: those of PROTOCOL §3 (a runtime's error element), §4/§5
// (sidecar-side, in payload.error of the error envelope) and the extra reasons of
// asya_actor_messages_failed_total (docs/sidecar.md). kOther stands for a code a runtime reported
// that is none of these; Failure keeps its text.
enum class FailureCode {
  kNone,  // "": nothing failed
  // §4/§5, sidecar-side.
  kMsgParsingError,
  kRouteMismatch,
  kRuntimeTimeout,
  kRuntimeUnavailable,
  kRuntimeProtocolError,
  kDeadlineExceeded,
  kMaxDeliveriesExceeded,
  kMessageTooLarge,
  kCancelled,           // the gateway said the envelope's job was cancelled (PROTOCOL §7)
  kJoinTimeout,         // a join group was not complete within its timeout (PROTOCOL §4a)
  kJoinGroupMissing,    // a message reached a join actor without fan-out group data (§4a)
  kPayloadUnavailable,  // the input's payload reference cannot be resolved (missing, mismatch)
  // §3, from a runtime (msg_parsing_error too).
  kProcessingError,
  kConnectionError,
  // Metric-only reasons.
  kResultStoreError,
  kSendFailed,
  kDeliveryLost,
  kPayloadStoreError,  // the payload store failed (read or write); the input is nacked
  kOther,              // "other": never printed; Failure::label() gives the runtime's own code
};
std::string_view label(FailureCode code);

// The FailureCode whose label is `text`, if any (kNone for "").
std::optional<FailureCode> failure_code_from_label(std::string_view text);

// A failure code as carried by a decision: one of FailureCode, or (kOther) a runtime's own error
// code kept verbatim, so an unknown code still reaches error-end, logs and metrics unchanged.
class Failure {
 public:
  Failure() = default;
  Failure(FailureCode code) : code_(code) {}  // NOLINT(google-explicit-constructor)
  // The code of a runtime's error element: a known label becomes its FailureCode, anything else
  // is kOther with the text kept.
  static Failure from_runtime(std::string_view code);

  explicit operator bool() const { return code_ != FailureCode::kNone; }
  FailureCode code() const { return code_; }
  std::string_view label() const;
  friend bool operator==(const Failure& failure, FailureCode code) { return failure.code_ == code; }

 private:
  FailureCode code_ = FailureCode::kNone;
  std::string other_;  // the runtime's code when code_ == kOther
};

}  // namespace asya::sidecar
