// The runner's gateway steps (runner.hpp): progress reports around a runtime call, the
// cancellation checks of PROTOCOL §7 and the announcement of fan-out children.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "sidecar/runner.hpp"

namespace asya::sidecar::detail {

std::optional<Decision> Runner::gateway_before(const envelope::Envelope& in, bool tracked) {
  if (!tracked) return std::nullopt;
  // One gateway request before the handler (PROTOCOL §7): the cancellation check carries the
  // "processing" report, which the gateway applies after it answered. A gateway that did not take
  // it (an older one, or no answer in time) gets it as a report of its own.
  std::string processing =
      progress_body(in.actors, in.current, "processing",
                    fmt::format("processing in {}", config_.actor_name), std::nullopt);
  CheckAnswer answer = check_job(in, processing);
  if (answer.cancelled) {
    // PROTOCOL §7: the job was cancelled; like a passed deadline, the handler is not called.
    return router_->error_end(
        in, FailureCode::kCancelled,
        fmt::format("job cancelled before actor {} started", config_.actor_name));
  }
  if (!answer.progress_accepted) report(envelope_path(in.id, "progress"), std::move(processing));
  return std::nullopt;
}

void Runner::gateway_after(const envelope::Envelope& in, Decision& decision, double runtime_seconds,
                           bool tracked) {
  if (!tracked) return;
  std::string completed = progress_body(in.actors, in.current, "completed",
                                        fmt::format("completed by {}", config_.actor_name),
                                        static_cast<std::int64_t>(runtime_seconds * 1000));
  if (runtime_seconds < std::chrono::duration<double>(kRecheckAfter).count()) {
    // Held up to ASYA_GATEWAY_CARRY_WAIT for the next message's check to carry it (PROTOCOL §7):
    // at a steady rate that saves the report's own request.
    if (reporter_)
      reporter_->post_carriable(envelope_path(in.id, "progress"), std::move(completed));
    return;
  }
  // A long call is checked again before its outputs go on (PROTOCOL §7); the check carries the
  // "completed" report, so it costs no request of its own. A gateway that did not take it gets it
  // as a report.
  CheckAnswer answer = check_job(in, completed);
  if (!answer.progress_accepted) report(envelope_path(in.id, "progress"), std::move(completed));
  if (answer.cancelled) {
    // The handler has run, but the job was cancelled meanwhile: its outputs go no further.
    decision = router_->error_end(
        in, FailureCode::kCancelled,
        fmt::format("job cancelled while actor {} ran; its outputs are not forwarded",
                    config_.actor_name));
  }
}

CheckAnswer Runner::check_job(const envelope::Envelope& in, std::string_view progress) {
  // A read at the gateway (the report it carries is applied after the answer), so it costs a
  // round trip and nothing more; a gateway that does not answer in time is not waited for: the
  // envelope is processed as usual (a gateway outage never blocks a pipeline).
  // It also carries the reports held for it (post_carriable): handed back to the reporter, to be
  // sent on their own at once, unless the gateway answered that it took them.
  GatewayReporter::Carried carried = reporter_->take_carried();
  auto answer = reporter_->post_now_answer(envelope_path(in.id, "check"),
                                           check_body(progress, GatewayReporter::entries(carried)),
                                           kCancelCheckBudget, 1);
  CheckAnswer out;
  if (answer && answer->ok()) out = read_check_answer(answer->body);
  reporter_->carried(std::move(carried), out.reports_accepted);
  return out;
}

void Runner::announce_fanout(const envelope::Envelope& in, const Decision& decision) {
  bool gateway_failed = false;
  for (const Outgoing& out : decision.sends) {
    if (!out.fanout_child) continue;
    std::string body = fanout_body(out.id, in.id, out.actors, out.current);
    if (!gateway_failed &&
        reporter_->post_now("/envelopes", body, kAnnounceBudget, kAnnounceAttempts)) {
      metrics_.gateway_announcement(true);
      continue;
    }
    if (!gateway_failed) {
      gateway_failed = true;
      spdlog::warn(
          "gateway {} did not accept the announcement of fan-out child {} within {} ({} tries): "
          "publishing the outputs anyway and announcing the remaining children in the "
          "background, so the gateway may report the job before every branch ended",
          config_.gateway_url, out.id, format_duration(kAnnounceBudget), kAnnounceAttempts);
    }
    metrics_.gateway_announcement(false);
    report("/envelopes", std::move(body));
  }
}

}  // namespace asya::sidecar::detail
