#include "gateway/sidecar_reports.hpp"

#include "common/json_text.hpp"
#include "gateway/raw_json.hpp"

namespace asya::gateway::reports {

namespace json = boost::json;

namespace {

json::object error_body(const std::string& message) {
  return json::object{{"error", message}};
}

}  // namespace

std::optional<ProgressReport> read_progress(const json::object& body, const std::string& id,
                                            std::string& error) {
  ProgressReport report;
  report.envelope_id = id;
  const json::value* status = body.if_contains("status");
  if (!status || !status->is_string() ||
      (status->as_string() != "received" && status->as_string() != "processing" &&
       status->as_string() != "completed")) {
    error = "\"status\" must be \"received\", \"processing\" or \"completed\", got " +
            (status ? to_json_text(*status) : std::string("nothing"));
    return std::nullopt;
  }
  report.state = status->as_string();
  const json::value* index = body.if_contains("current_actor_idx");
  if (!index || !index->is_int64() || index->as_int64() < 0) {
    error = "\"current_actor_idx\" must be a non-negative integer, got " +
            (index ? to_json_text(*index) : std::string("nothing"));
    return std::nullopt;
  }
  report.current_actor_idx = static_cast<int>(index->as_int64());
  if (const json::value* actors = body.if_contains("actors"); actors && !actors->is_null()) {
    if (!actors->is_array()) {
      error = "\"actors\" must be an array of actor names";
      return std::nullopt;
    }
    for (const auto& a : actors->as_array()) {
      if (!a.is_string()) {
        error = "\"actors\" must be an array of actor names";
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
      error =
          "\"branches_joined\" and \"branches_total\" go together, as integers with 0 <= "
          "branches_joined <= branches_total and branches_total >= 1, got " +
          (joined ? to_json_text(*joined) : std::string("nothing")) + " of " +
          (total ? to_json_text(*total) : std::string("nothing"));
      return std::nullopt;
    }
    report.branches_joined = static_cast<std::size_t>(joined->as_int64());
    report.branches_total = static_cast<std::size_t>(total->as_int64());
  }
  return report;
}

std::optional<FinalReport> read_final(const json::object& body, std::string_view body_text,
                                      const std::string& id, std::string& error) {
  FinalReport report;
  report.envelope_id = id;
  const json::value* status = body.if_contains("status");
  if (!status || !status->is_string() ||
      (status->as_string() != "succeeded" && status->as_string() != "failed")) {
    error = "\"status\" must be \"succeeded\" or \"failed\", got " +
            (status ? to_json_text(*status) : std::string("nothing"));
    return std::nullopt;
  }
  report.status = status->as_string() == "succeeded" ? JobStatus::succeeded : JobStatus::failed;
  // The result and error details are kept as the sidecar sent them (numbers keep their spelling).
  auto raw = raw_members(body_text);
  if (body.if_contains("result")) report.result_json = std::string(raw["result"]);
  if (const json::value* e = body.if_contains("error"); e && !e->is_null()) {
    report.error = e->is_string() ? std::string(e->as_string()) : to_json_text(*e);
  }
  if (const json::value* details = body.if_contains("error_details");
      details && !details->is_null()) {
    report.error_details_json = std::string(raw["error_details"]);
    if (report.error.empty() && details->is_object()) {
      if (const json::value* m = details->as_object().if_contains("message"); m && m->is_string()) {
        report.error = m->as_string();
      }
    }
  }
  if (const json::value* index = body.if_contains("current_actor_idx");
      index && index->is_int64()) {
    report.current_actor_idx = static_cast<int>(index->as_int64());
  }
  return report;
}

Answer progress_answer(const Result<ChangeResult>& result, const std::string& id) {
  if (!result.ok()) return {503, error_body(result.error().message)};
  const ChangeResult& change = result.value();
  if (change.outcome == Outcome::not_found)
    return {404, error_body("no job knows envelope \"" + id + "\"")};
  json::object answer{{"status", "ok"},
                      {"progress_percent", change.progress_percent},
                      {"job_status", job_status_name(change.job_status)}};
  if (change.outcome == Outcome::ignored) answer["ignored"] = true;
  // PROTOCOL §7: a sidecar that reads this before calling its handler skips the envelope.
  if (change.job_status == JobStatus::cancelled) answer["cancelled"] = true;
  return {200, std::move(answer)};
}

Answer final_answer(const Result<ChangeResult>& result, const std::string& id) {
  if (!result.ok()) return {503, error_body(result.error().message)};
  switch (result.value().outcome) {
    case Outcome::not_found:
      return {404, error_body("no job knows envelope \"" + id + "\"")};
    case Outcome::conflict:
      return {409, error_body("envelope \"" + id +
                              "\" is already final with a different status; a final status never "
                              "changes")};
    default:
      return {200, json::object{{"status", "ok"}}};
  }
}

}  // namespace asya::gateway::reports
