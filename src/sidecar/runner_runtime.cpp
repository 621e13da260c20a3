// The runner's runtime call (runner.hpp): one message sent to the runtime and its answer decided,
// and the settings of the runtime clients that carry it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/env.hpp"
#include "common/failpoint.hpp"
#include "sidecar/body_fd.hpp"
#include "sidecar/body_parts.hpp"
#include "sidecar/runner.hpp"
#include "sidecar/sidecar.hpp"
#include "sidecar/spooled_answer.hpp"
#include "sidecar/tracing.hpp"

namespace asya::sidecar::detail {

std::chrono::milliseconds Runner::runtime_call_wait() const {
  // A join group's claim lasts ASYA_RUNTIME_TIMEOUT + claim_lease_extra: a call that waited
  // longer could find the group claimed and handled by another replica meanwhile.
  if (config_.join.enabled)
    return std::min(config_.runtime_ready_timeout, config_.join.claim_lease_extra / 2);
  return config_.runtime_ready_timeout;
}

std::string Runner::runtime_call_wait_text() const {
  const auto wait = runtime_call_wait();
  if (wait == config_.runtime_ready_timeout)
    return fmt::format("ASYA_RUNTIME_READY_TIMEOUT={}", format_duration(wait));
  return fmt::format("{} (ASYA_RUNTIME_READY_TIMEOUT={}, cut to half a join group's claim margin)",
                     format_duration(wait), format_duration(config_.runtime_ready_timeout));
}

wire::RuntimeClientOptions Runner::runtime_client_options() {
  wire::RuntimeClientOptions options{config_.socket_path, config_.max_message_bytes,
                                     config_.payload_fd};
  // A request that provably never reached a live runtime (it was restarting: no socket, refused,
  // or closed with the request unread) waits for the runtime instead of costing a delivery
  // (PROTOCOL §5 "Runtime unavailable"); the message's lease is extended meanwhile (in_flight).
  options.undelivered_wait = runtime_call_wait();
  options.stop_waiting = [this] { return stop_.stopping(); };
  // /readyz answers 503 while a call waits (readiness()); /healthz stays 200, so a liveness probe
  // never restarts a sidecar that waits for its runtime.
  options.on_wait = [this](std::string_view why) {
    runtime_waits_.begin(why);
    spdlog::warn(
        "runtime unavailable before the request reached it ({}): waiting up to {} for the "
        "runtime to be ready again, then sending the request again (no delivery is counted)",
        why, runtime_call_wait_text());
  };
  options.on_wait_end = [this](bool) { runtime_waits_.end(); };
  return options;
}

void Runner::stop_runtime_not_ready(std::string_view what) {
  if (stop_.exit_code() != kExitRuntimeNotReady)  // once for all the items of a batch
    spdlog::error(
        "runtime not ready again within {} after a request could not reach it: {}; stopping "
        "the sidecar (exit {})",
        runtime_call_wait_text(), what, kExitRuntimeNotReady);
  stop_.request(kExitRuntimeNotReady);
}

Decision Runner::call_runtime(const envelope::Envelope& in, transport::Delivery& delivery,
                              wire::RuntimeClient& client, wire::FrameBuffer& scratch,
                              bool tracked) {
  // Payload references resolved for the runtime, large outputs stored (sidecar/payload_ref.hpp).
  PayloadReferences::Input input;
  std::optional<PayloadReferences::Outputs> offload;
  // A reference in a store of local files is streamed to the runtime and checked on the way
  // (sidecar/payload_stream.hpp): the payload is never held whole.
  if (auto early = payloads_.prepare(*router_, in, delivery, input, offload, /*allow_stream=*/true,
                                     /*write_ahead=*/true))
    return std::move(*early);
  std::string_view request = input.body.empty() ? std::string_view(delivery.body) : input.body;
  // A large answer whose output the transport would write as a body file is received straight
  // into that file (sidecar/spooled_answer.hpp); a large request stands for a large answer.
  std::shared_ptr<transport::BodySpool> spool;
  if (!input.stream && !offload && transport_->sends_parts() && request.size() > kPartsAbove)
    spool = transport_->open_body_spool(request.size());
  std::optional<SpooledAnswer> spooled;
  if (spool) spooled.emplace(*spool, scratch, kPartsAbove);
  // A large inline payload in the body's own file may go to the runtime as a range of it.
  const auto body_file = input.stream || !input.body.empty()
                             ? nullptr
                             : body_file_request(delivery.body, in.payload_raw);
  auto call_started = Clock::now();
  const auto timeout = config_.runtime_timeout;
  wire::CallResult call =
      input.stream ? payloads_.references->call_streamed(client, input, delivery.body,
                                                         in.payload_raw, *offload, scratch, timeout)
      : body_file  ? (spooled ? client.call(body_file->request, *spooled, timeout)
                              : client.call(body_file->request, scratch, timeout))
      : spooled    ? client.call(request, *spooled, timeout)
                   : client.call(request, scratch, timeout);
  std::string_view answer = scratch.view();
  bool answer_lost = false;
  if (spooled && call.status == wire::CallStatus::kOk) {
    switch (spooled->finish()) {
      case SpooledAnswer::Outcome::kSpooled:
        answer = spooled->spooled();
        // Received and spooled, nothing sent yet: a crash here redelivers the input.
        failpoint("sidecar.answer_spooled");
        break;
      case SpooledAnswer::Outcome::kInBuffer:
        break;
      case SpooledAnswer::Outcome::kFailed:  // nacked below (kUnavailable), delivered again
        answer_lost = true;
        call.status = wire::CallStatus::kUnavailable;
        call.error = "the runtime's answer could not be kept: " + spooled->failure_message();
        break;
    }
  }
  // A streamed object that failed its check was cut short: the handler never ran (no runtime
  // call is counted, as for a reference that failed before the call).
  if (auto failed = PayloadReferences::streamed_failure(*router_, in, delivery, input))
    return std::move(*failed);
  // A wait for a runtime being restarted is not the runtime's time.
  double runtime_seconds =
      seconds_since(call_started) - std::chrono::duration<double>(call.runtime_waited).count();
  metrics_.runtime_duration(runtime_seconds);
  if (call.runtime_waits > 0 && call.status != wire::CallStatus::kUnavailable)
    log_runtime_back(call.runtime_waits, call.runtime_waited);
  if (!call.notice.empty()) {
    // The connection kept from the previous message was out of step; this message was sent on
    // a new one and is not affected.
    spdlog::warn("runtime_protocol_error on the connection kept from the previous message: {}",
                 call.notice);
    metrics_.runtime_error(label(FailureCode::kRuntimeProtocolError));
  }
  // A large output is sent from the answer in parts (body_parts.hpp), which then owns it. Each
  // output gets its trace context as it is built (the thread's hop, when traced).
  Decision decision =
      router_->after_runtime(in, delivery, call, answer,
                             /*response_padded=*/true, offload ? &*offload : nullptr,
                             transport_->sends_parts() ? kPartsAbove : 0, current_output_trace());
  decision.input_hold = std::move(input.renewal);  // renewed until settled
  if (spooled && !spooled->spooled().empty()) {
    hold_spool(decision, spool, answer);
  } else {
    hold_answer(decision, scratch);
  }
  if (answer_lost) decision.wait_for_runtime = false;  // the runtime is well: nacked only
  // The resolved request was kept for the pass-through comparison (as large as the answer, which
  // is held until here anyway); not needed any more.
  if (offload) offload->release_input();
  std::string().swap(input.body);
  input.stream.reset();
  record_runtime_call(call_started, runtime_seconds, decision.failure.label());
  if (call.status != wire::CallStatus::kOk) {
    spdlog::warn("runtime call failed ({}): {}", decision.failure.label(), call.error);
    metrics_.runtime_error(decision.failure.label());
  } else if (decision.failure) {
    metrics_.runtime_error(decision.failure.label());
    if (decision.failure == FailureCode::kRuntimeProtocolError) {
      // A connection that carried a bad answer is never reused (PROTOCOL §3).
      client.disconnect();
      spdlog::warn("runtime answer rejected ({}): {}", decision.failure.label(),
                   decision.failure_message);
    }
  }
  if (decision.status == ProcessedStatus::kSuccess)
    gateway_after(in, decision, runtime_seconds, tracked);
  return decision;
}

}  // namespace asya::sidecar::detail
