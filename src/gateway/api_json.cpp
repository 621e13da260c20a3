// The JSON bodies of api.hpp shared by REST and MCP: a job (GET /envelopes/{id}), an SSE update,
// and MCP CallToolResults.
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"

namespace asya::gateway::api {

namespace json = boost::json;

namespace {
json::value parse_or_null(const std::string& text) {
  if (text.empty()) return nullptr;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}
json::array string_array(const std::vector<std::string>& values) {
  json::array out;
  for (const auto& v : values) out.emplace_back(v);
  return out;
}
}  // namespace

json::object job_json(const Job& job) {
  json::object o;
  o["id"] = job.id;
  o["tool"] = job.tool;
  o["status"] = job_status_name(job.status);
  o["message"] = job.message;
  if (!job.result_json.empty()) o["result"] = parse_or_null(job.result_json);
  if (!job.error.empty()) o["error"] = job.error;
  if (!job.error_details_json.empty()) o["error_details"] = parse_or_null(job.error_details_json);
  if (!job.failed_actor.empty()) o["failed_actor"] = job.failed_actor;
  if (job.status == JobStatus::failed) o["error_message"] = describe_failure(job);
  o["progress_percent"] = job.progress_percent;
  o["current_actor_idx"] = job.current_actor_idx;
  o["current_actor_name"] =
      job.current_actor_idx >= 0 && job.current_actor_idx < static_cast<int>(job.actors.size())
          ? json::value(job.actors[job.current_actor_idx])
          : json::value(nullptr);
  o["actors_completed"] = job.actors_completed;
  o["total_actors"] = job.actors.size();
  o["route"] = parse_or_null(job.route_json);
  o["payload"] = parse_or_null(job.payload_json);
  if (job.branches.size() > 1) {
    json::array branches;
    for (const auto& b : job.branches) {
      json::object branch{{"id", b.id}, {"status", job_status_name(b.status)}};
      if (!b.parent_id.empty()) branch["parent_id"] = b.parent_id;
      if (!b.result_json.empty()) branch["result"] = parse_or_null(b.result_json);
      if (!b.error.empty()) branch["error"] = b.error;
      branches.push_back(std::move(branch));
    }
    o["branches"] = std::move(branches);
  }
  if (!job.trace_id.empty()) o["trace_id"] = job.trace_id;
  o["created_at"] = format_time(job.created_at);
  o["updated_at"] = format_time(job.updated_at);
  if (job.deadline) o["deadline"] = format_time(*job.deadline);
  return o;
}

json::object update_json(const std::string& job_id, const Update& u) {
  json::object o;
  o["id"] = job_id;
  o["status"] = job_status_name(u.status);
  o["progress_percent"] = u.progress_percent;
  o["current_actor_idx"] = u.current_actor_idx;
  o["envelope_state"] = u.envelope_state;
  if (!u.envelope_id.empty() && u.envelope_id != job_id) o["envelope_id"] = u.envelope_id;
  o["actor"] = u.actor;
  o["actors"] = string_array(u.actors);
  o["message"] = u.message;
  if (!u.result_json.empty()) o["result"] = parse_or_null(u.result_json);
  if (!u.error.empty()) o["error"] = u.error;
  o["timestamp"] = format_time(u.timestamp);
  return o;
}

std::string sse_event(const std::string& job_id, const Update& update) {
  return "id: " + std::to_string(update.sequence) +
         "\nevent: update\ndata: " + to_json_text(update_json(job_id, update)) + "\n\n";
}

json::object job_meta(const std::string& job_id) {
  return json::object{{kJobIdMetaKey, job_id}};
}

json::object error_result(const std::string& message) {
  return json::object{{"content", json::array{json::object{{"type", "text"}, {"text", message}}}},
                      {"isError", true}};
}

json::object call_result(const Job& job) {
  if (job.status != JobStatus::succeeded) {
    std::string error =
        job.error.empty() ? std::string("job ") + job_status_name(job.status) : job.error;
    // The text says what failed where (type, message, actor); structuredContent keeps the parts.
    json::object result =
        error_result(job.status == JobStatus::failed ? describe_failure(job) : error);
    json::object structured{
        {"job_id", job.id}, {"status", job_status_name(job.status)}, {"error", error}};
    if (!job.error_details_json.empty())
      structured["error_details"] = parse_or_null(job.error_details_json);
    if (!job.failed_actor.empty()) structured["failed_actor"] = job.failed_actor;
    result["structuredContent"] = std::move(structured);
    result["_meta"] = job_meta(job.id);
    return result;
  }
  json::value value = parse_or_null(job.result_json);
  json::object structured = value.is_object() ? value.as_object() : json::object{{"result", value}};
  return json::object{
      {"content", json::array{json::object{{"type", "text"}, {"text", to_json_text(value)}}}},
      {"structuredContent", std::move(structured)},
      {"isError", false},
      {"_meta", job_meta(job.id)}};
}

json::object async_result(const std::string& job_id, bool progress) {
  json::object info{{"job_id", job_id}, {"status_url", "/envelopes/" + job_id}};
  if (progress) info["stream_url"] = "/envelopes/" + job_id + "/stream";
  return json::object{
      {"content", json::array{json::object{{"type", "text"}, {"text", to_json_text(info)}}}},
      {"structuredContent", info},
      {"isError", false},
      {"_meta", job_meta(job_id)}};
}

std::optional<json::object> parse_body(const std::string& body, http::Response& error) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    error = http::Response::error(400, "body is not valid JSON: " + ec.message());
    return std::nullopt;
  }
  if (!v.is_object()) {
    error = http::Response::error(
        400, "body must be a JSON object, got " + to_json_text(v).substr(0, 100));
    return std::nullopt;
  }
  return std::move(v.as_object());
}

}  // namespace asya::gateway::api
