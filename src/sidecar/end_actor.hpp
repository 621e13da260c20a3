// End mode (PROTOCOL §6): the happy-end and error-end actors persist each final envelope to the
// result store as <id>.json, then report the outcome to the gateway, then ack. They never route
// further. A body that is not an envelope is wrapped (envelope::wrap_unparseable) and stored, so
// nothing is lost and nothing loops. A store failure nacks with a backoff delay. A late duplicate
// whose payload reference no longer resolves never replaces a result already stored (PROTOCOL §6
// "Duplicates"): the stored one is kept and reported.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "sidecar/outcome.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/result_store.hpp"
#include "sidecar/router.hpp"
#include "transport/transport.hpp"

namespace asya::envelope {
struct Envelope;
}

namespace asya::sidecar {

struct EndOutcome {
  Then then = Then::kAck;
  std::chrono::milliseconds nack_delay{0};
  std::string id;  // envelope id (of the wrapped envelope for unparseable bodies)
  ProcessedStatus status = ProcessedStatus::kSuccess;  // kSuccess or kRequeued
  // failed_total reason: kResultStoreError when the store failed, kMsgParsingError when the body
  // was not an envelope (stored wrapped).
  Failure failure;
  // The final report (PROTOCOL §7) to post after the store succeeded; empty when none.
  std::string final_path;
  std::string final_body;
  // A late duplicate whose payload was gone found a result already stored and kept it (PROTOCOL
  // §6 "Duplicates"): nothing was written.
  bool duplicate_kept = false;
};

class EndActor {
 public:
  // `error_end`: true for the error end (reports status "failed" with payload.error/details),
  // false for the happy end (reports "succeeded" with the payload as result). `backoff` gives the
  // nack delay for a delivery count.
  // `payloads` (ASYA_PAYLOAD_STORE set): a payload reference in the envelope (the payload, or an
  // error's original_payload) is resolved before the result is stored, so results and reports
  // carry the real payload; once stored, the envelope's id is released (payload/lifetime.hpp).
  EndActor(std::string actor, bool error_end, ResultStore& store,
           std::function<std::chrono::milliseconds(int)> backoff,
           PayloadReferences* payloads = nullptr);

  // Persists one delivery and says what to do next. Thread-safe (the store is).
  EndOutcome handle(const transport::Delivery& delivery) const;

 private:
  EndOutcome requeue_after_store_error(EndOutcome out, const transport::Delivery& delivery) const;
  // `duplicate_reference`: the duplicate's payload reference text (its hold token is released).
  EndOutcome keep_stored_result(EndOutcome out, const envelope::Envelope& duplicate,
                                std::string_view duplicate_reference,
                                const std::string& stored) const;
  void report_final(EndOutcome& out, const envelope::Envelope& env,
                    std::string_view result_payload) const;
  void release_payloads(std::string_view id) const;

  std::string actor_;
  bool error_end_;
  ResultStore& store_;
  std::function<std::chrono::milliseconds(int)> backoff_;
  PayloadReferences* payloads_;
};

}  // namespace asya::sidecar
