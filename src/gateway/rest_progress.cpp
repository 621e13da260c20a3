// The sidecars' progress reports (PROTOCOL §7): POST /envelopes/{id}/progress, and the
// cancellation check POST /envelopes/{id}/check, which may carry one (answered from a read, the
// report applied after the answer).
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"
#include "gateway/sidecar_reports.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

awaitable<Response> Api::check_envelope(const http::Request& request, const std::string& id) {
  // The check may carry the sidecar's "processing" report (PROTOCOL §7). The answer comes from a
  // read; the report is applied on the blocking pool after it, so the sidecar waits for no write
  // (synchronous writes per hop slowed a thousand concurrent calls into timeouts) and saves a
  // request of its own.
  std::optional<ProgressReport> progress;
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
  }
  auto work = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
  // 503: the sidecar posts its report on its own (no "progress" in the answer).
  if (!job.ok()) co_return Response::error(503, job.error().message);
  // An envelope the gateway does not know (sent around it) is simply not cancelled; its report
  // would change nothing.
  if (!job.value())
    co_return Response::json(
        200, progress ? R"({"cancelled":false,"progress":"accepted"})" : R"({"cancelled":false})");
  JobStatus status = job.value()->status;
  json::object answer{{"job_status", job_status_name(status)},
                      {"cancelled", status == JobStatus::cancelled}};
  if (progress) {
    answer["progress"] = "accepted";
    if (!is_final(status)) {  // progress after a final status changes nothing
      service_.metrics().report("progress");
      service_.in_background([this, report = std::move(*progress)] {
        auto result = service_.store().progress(report);
        if (!result.ok())
          spdlog::warn("gateway: progress of envelope {} carried by its check not kept: {}",
                       report.envelope_id, result.error().message);
        else if (result.value().outcome == Outcome::applied)
          service_.notifier().notify(result.value().job_id, result.value().job_final);
      });
    }
  }
  co_return Response::json(200, to_json_text(answer));
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
