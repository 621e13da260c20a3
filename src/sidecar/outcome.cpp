#include "sidecar/outcome.hpp"

namespace asya::sidecar {

std::string_view label(ProcessedStatus status) {
  switch (status) {
    case ProcessedStatus::kSuccess:
      return "success";
    case ProcessedStatus::kError:
      return "error";
    case ProcessedStatus::kRetry:
      return "retry";
    case ProcessedStatus::kRequeued:
      return "requeued";
  }
  return "success";
}

std::string_view label(FailureCode code) {
  switch (code) {
    case FailureCode::kNone:
      return "";
    case FailureCode::kMsgParsingError:
      return "msg_parsing_error";
    case FailureCode::kRouteMismatch:
      return "route_mismatch";
    case FailureCode::kRuntimeTimeout:
      return "runtime_timeout";
    case FailureCode::kRuntimeUnavailable:
      return "runtime_unavailable";
    case FailureCode::kRuntimeProtocolError:
      return "runtime_protocol_error";
    case FailureCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case FailureCode::kMaxDeliveriesExceeded:
      return "max_deliveries_exceeded";
    case FailureCode::kMessageTooLarge:
      return "message_too_large";
    case FailureCode::kCancelled:
      return "cancelled";
    case FailureCode::kJoinTimeout:
      return "join_timeout";
    case FailureCode::kJoinGroupMissing:
      return "join_group_missing";
    case FailureCode::kPayloadUnavailable:
      return "payload_unavailable";
    case FailureCode::kProcessingError:
      return "processing_error";
    case FailureCode::kConnectionError:
      return "connection_error";
    case FailureCode::kResultStoreError:
      return "result_store_error";
    case FailureCode::kSendFailed:
      return "send_failed";
    case FailureCode::kDeliveryLost:
      return "delivery_lost";
    case FailureCode::kPayloadStoreError:
      return "payload_store_error";
    case FailureCode::kOther:
      return "other";
  }
  return "other";
}

std::optional<FailureCode> failure_code_from_label(std::string_view text) {
  for (int i = 0; i <= static_cast<int>(FailureCode::kOther); ++i) {
    auto code = static_cast<FailureCode>(i);
    if (code != FailureCode::kOther && label(code) == text) return code;
  }
  return std::nullopt;
}

Failure Failure::from_runtime(std::string_view code) {
  if (auto known = failure_code_from_label(code)) return Failure(*known);
  Failure failure(FailureCode::kOther);
  failure.other_ = std::string(code);
  return failure;
}

std::string_view Failure::label() const {
  return code_ == FailureCode::kOther ? std::string_view(other_) : sidecar::label(code_);
}

}  // namespace asya::sidecar
