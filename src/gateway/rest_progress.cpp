// The sidecars' progress reports (PROTOCOL §7): POST /envelopes/{id}/progress, and the
// cancellation check POST /envelopes/{id}/check, which may carry one (answered from a read, the
// report applied after the answer).
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"
#include "gateway/raw_json.hpp"
#include "gateway/sidecar_reports.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

awaitable<Response> Api::check_envelope(const http::Request& request, const std::string& id) {
  // The check may carry the sidecar's "processing" report and, before it, earlier reports of the
  // same sidecar held for it ("reports", PROTOCOL §7). The answer comes from a read; the reports
  // are applied on the blocking pool after it, in order, in one store call, so the sidecar waits
  // for no write (synchronous writes per hop slowed a thousand concurrent calls into timeouts) and
  // saves requests of its own.
  std::optional<ProgressReport> progress;
  std::vector<SidecarReport> carried;
  std::string carried_error;  // why the carried reports were not taken (they are sent again)
  bool carried_taken = false;
  std::vector<const char*> carried_kinds;  // for the metric, counted once the check is answered
  if (!request.body.empty()) {
    Response error;
    auto body = api::parse_body(request.body, error);
    if (!body) co_return error;
    if (const json::value* p = body->if_contains("progress"); p && !p->is_null()) {
      if (!p->is_object())
        co_return Response::error(
            400, "\"progress\" must be a progress report (an object), got " + to_json_text(*p));
      std::string why;
      progress = reports::read_progress(p->as_object(), id, why);
      if (!progress) co_return Response::error(400, why);
    }
    if (const json::value* r = body->if_contains("reports"); r && !r->is_null()) {
      // A wrong carried report does not fail the check (the sidecar must still learn whether
      // the job was cancelled): none of them is taken, and the sidecar sends them in the batched
      // form, which answers each on its own.
      auto read = reports::read_carried(*r, raw_members(request.body)["reports"], carried_error);
      if (read) {
        carried = std::move(*read);
        for (const SidecarReport& r : carried)
          carried_kinds.push_back(std::holds_alternative<ProgressReport>(r) ? "progress" : "final");
        carried_taken = true;
      } else {
        spdlog::warn("gateway: reports carried by the check of envelope {} not taken: {}", id,
                     carried_error);
      }
    }
  }
  // Only the job's status is read (its status column: no job document is parsed). The
  // follow-up applies the reports on the same pool thread once the answer is handed back (one
  // task on the pool, not two). A progress report is applied only when the job is known and not
  // final; nothing is applied when the read failed (the sidecar sends them again).
  const bool has_progress = progress.has_value();
  auto work = [this, id] { return service_.store().status_of(id); };
  auto then = [this, progress = std::move(progress), carried = std::move(carried)](
                  const Result<std::optional<JobStatus>>& job) mutable -> std::function<void()> {
    if (!job.ok()) return {};
    if (progress && job.value() && !is_final(*job.value())) carried.push_back(std::move(*progress));
    if (carried.empty()) return {};
    return [this, reports = std::move(carried)] { apply_carried(reports); };
  };
  auto job = co_await service_.blocking_then<Result<std::optional<JobStatus>>>(std::move(work),
                                                                               std::move(then));
  // 503: the sidecar posts its reports on its own (no "progress" or "reports" in the answer).
  if (!job.ok()) co_return Response::error(503, job.error().message);
  json::object answer;
  // An envelope the gateway does not know (sent around it) is simply not cancelled; its report
  // would change nothing.
  if (!job.value()) {
    answer["cancelled"] = false;
  } else {
    JobStatus status = *job.value();
    answer["job_status"] = job_status_name(status);
    answer["cancelled"] = status == JobStatus::cancelled;
    // Progress after a final status changes nothing.
    if (has_progress && !is_final(status)) service_.metrics().report("progress");
  }
  if (has_progress) answer["progress"] = "accepted";
  if (carried_taken) answer["reports"] = "accepted";
  if (!carried_error.empty()) answer["reports_error"] = carried_error;
  for (const char* kind : carried_kinds) service_.metrics().report(kind);
  co_return Response::json(200, to_json_text(answer));
}

void Api::apply_carried(const std::vector<SidecarReport>& reports) {
  std::vector<Result<ChangeResult>> applied = service_.store().apply(reports);
  for (std::size_t i = 0; i < applied.size() && i < reports.size(); ++i) {
    const Result<ChangeResult>& result = applied[i];
    const bool is_progress = std::holds_alternative<ProgressReport>(reports[i]);
    if (!result.ok()) {
      spdlog::warn("gateway: a report carried by a check not kept: {}", result.error().message);
      continue;
    }
    if (result.value().outcome != Outcome::applied) continue;
    if (is_progress)
      service_.notifier().notify(result.value().job_id, result.value().job_final);
    else
      service_.notifier().notify(result.value().job_id);
  }
}

awaitable<Response> Api::report_progress(const http::Request& request, const std::string& id) {
  Response error;
  auto body = api::parse_body(request.body, error);
  if (!body) co_return error;
  std::string why;
  auto parsed = reports::read_progress(*body, id, why);
  if (!parsed) co_return Response::error(400, why);
  ProgressReport report = std::move(*parsed);
  service_.metrics().report("progress");
  auto work_4 = [this, report] { return service_.store().progress(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_4));
  if (result.ok() && result.value().outcome == Outcome::applied)
    service_.notifier().notify(result.value().job_id, result.value().job_final);
  reports::Answer answer = reports::progress_answer(result, id);
  co_return Response::json(answer.status, to_json_text(answer.body));
}

}  // namespace asya::gateway
