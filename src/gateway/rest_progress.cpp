// The sidecars' progress reports (PROTOCOL §7): POST /envelopes/{id}/progress, and the
// cancellation check POST /envelopes/{id}/check, which may carry one (answered from a read, the
// report applied after the answer).
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

// The progress report of a sidecar (PROTOCOL §7) about envelope `id`: `body` is the report's JSON
// object. nullopt with a 400 in `error` when a field is wrong (naming it and what it got).
std::optional<ProgressReport> read_progress(const json::object& body, const std::string& id,
                                            Response& error) {
  ProgressReport report;
  report.envelope_id = id;
  const json::value* status = body.if_contains("status");
  if (!status || !status->is_string() ||
      (status->as_string() != "received" && status->as_string() != "processing" &&
       status->as_string() != "completed")) {
    error = Response::error(
        400, "\"status\" must be \"received\", \"processing\" or \"completed\", got " +
                 (status ? to_json_text(*status) : std::string("nothing")));
    return std::nullopt;
  }
  report.state = status->as_string();
  const json::value* index = body.if_contains("current_actor_idx");
  if (!index || !index->is_int64() || index->as_int64() < 0) {
    error = Response::error(400, "\"current_actor_idx\" must be a non-negative integer, got " +
                                     (index ? to_json_text(*index) : std::string("nothing")));
    return std::nullopt;
  }
  report.current_actor_idx = static_cast<int>(index->as_int64());
  if (const json::value* actors = body.if_contains("actors"); actors && !actors->is_null()) {
    if (!actors->is_array()) {
      error = Response::error(400, "\"actors\" must be an array of actor names");
      return std::nullopt;
    }
    for (const auto& a : actors->as_array()) {
      if (!a.is_string()) {
        error = Response::error(400, "\"actors\" must be an array of actor names");
        return std::nullopt;
      }
      report.actors.emplace_back(a.as_string());
    }
  }
  if (const json::value* message = body.if_contains("message"); message && message->is_string())
    report.message = message->as_string();
  const json::value* joined = body.if_contains("branches_joined");
  const json::value* total = body.if_contains("branches_total");
  if (joined || total) {
    // A join actor's running count (PROTOCOL §7): both, 0 <= joined <= total, total >= 1.
    if (!joined || !total || !joined->is_int64() || !total->is_int64() || total->as_int64() < 1 ||
        joined->as_int64() < 0 || joined->as_int64() > total->as_int64()) {
      error = Response::error(
          400,
          "\"branches_joined\" and \"branches_total\" go together, as integers with 0 <= "
          "branches_joined <= branches_total and branches_total >= 1, got " +
              (joined ? to_json_text(*joined) : std::string("nothing")) + " of " +
              (total ? to_json_text(*total) : std::string("nothing")));
      return std::nullopt;
    }
    report.branches_joined = static_cast<std::size_t>(joined->as_int64());
    report.branches_total = static_cast<std::size_t>(total->as_int64());
  }
  return report;
}

}  // namespace

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
      progress = read_progress(p->as_object(), id, error);
      if (!progress) co_return error;
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
  auto parsed = read_progress(*body, id, error);
  if (!parsed) co_return error;
  ProgressReport report = std::move(*parsed);
  service_.metrics().report("progress");
  auto work_4 = [this, report] { return service_.store().progress(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_4));
  if (!result.ok()) co_return Response::error(503, result.error().message);
  if (result.value().outcome == Outcome::not_found)
    co_return Response::error(404, "no job knows envelope \"" + id + "\"");
  if (result.value().outcome == Outcome::applied)
    service_.notifier().notify(result.value().job_id, result.value().job_final);
  json::object answer{{"status", "ok"},
                      {"progress_percent", result.value().progress_percent},
                      {"job_status", job_status_name(result.value().job_status)}};
  if (result.value().outcome == Outcome::ignored) answer["ignored"] = true;
  // PROTOCOL §7: a sidecar that reads this before calling its handler skips the envelope.
  if (result.value().job_status == JobStatus::cancelled) answer["cancelled"] = true;
  co_return Response::json(200, to_json_text(answer));
}

}  // namespace asya::gateway
