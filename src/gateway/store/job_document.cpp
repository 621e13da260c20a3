// The JSON documents of the job store's rows: a job and an update, written and read only here.
#include "gateway/store/job_document.hpp"

#include <boost/json.hpp>

namespace asya::gateway {

namespace json = boost::json;

std::int64_t to_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Clock::time_point from_ms(std::int64_t ms) {
  return Clock::time_point(std::chrono::milliseconds(ms));
}

namespace {

json::array string_array(const std::vector<std::string>& values) {
  json::array out;
  for (const auto& v : values) out.emplace_back(v);
  return out;
}
std::vector<std::string> strings_of(const json::value& v) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& item : v.as_array()) out.emplace_back(item.as_string());
  }
  return out;
}
std::string str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
std::int64_t num(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : 0;
}

}  // namespace

std::string job_to_document(const Job& job) {
  json::object o;
  o["id"] = job.id;
  o["tool"] = job.tool;
  o["status"] = job_status_name(job.status);
  o["message"] = job.message;
  o["actors"] = string_array(job.actors);
  o["current_actor_idx"] = job.current_actor_idx;
  o["progress_percent"] = job.progress_percent;
  o["actors_completed"] = job.actors_completed;
  o["route"] = job.route_json;
  o["payload"] = job.payload_json;
  o["result"] = job.result_json;
  o["error"] = job.error;
  o["error_details"] = job.error_details_json;
  o["failed_actor"] = job.failed_actor;
  json::array branches;
  for (const auto& b : job.branches) {
    branches.push_back(json::object{{"id", b.id},
                                    {"parent_id", b.parent_id},
                                    {"status", job_status_name(b.status)},
                                    {"result", b.result_json},
                                    {"error", b.error},
                                    {"error_details", b.error_details_json},
                                    {"failed_actor", b.failed_actor}});
  }
  o["branches"] = std::move(branches);
  o["created_ms"] = to_ms(job.created_at);
  o["updated_ms"] = to_ms(job.updated_at);
  if (job.deadline) o["deadline_ms"] = to_ms(*job.deadline);
  o["last_sequence"] = job.last_sequence;
  if (!job.owner.empty()) o["owner"] = job.owner;
  if (!job.trace_id.empty()) o["trace_id"] = job.trace_id;
  if (job.task) o["task"] = true;
  if (job.ttl_ms) o["ttl_ms"] = *job.ttl_ms;
  return json::serialize(o);
}

Job job_from_document(const std::string& text) {
  json::object o = json::parse(text).as_object();
  Job job;
  job.id = str(o, "id");
  job.tool = str(o, "tool");
  job.status = parse_job_status(str(o, "status")).value_or(JobStatus::pending);
  job.message = str(o, "message");
  job.actors = strings_of(o.at("actors"));
  job.current_actor_idx = static_cast<int>(num(o, "current_actor_idx"));
  job.progress_percent = static_cast<int>(num(o, "progress_percent"));
  job.actors_completed = static_cast<int>(num(o, "actors_completed"));
  job.route_json = str(o, "route");
  job.payload_json = str(o, "payload");
  job.result_json = str(o, "result");
  job.error = str(o, "error");
  job.error_details_json = str(o, "error_details");
  job.failed_actor = str(o, "failed_actor");
  for (const auto& item : o.at("branches").as_array()) {
    const auto& b = item.as_object();
    job.branches.push_back(Branch{str(b, "id"), str(b, "parent_id"),
                                  parse_job_status(str(b, "status")).value_or(JobStatus::pending),
                                  str(b, "result"), str(b, "error")});
    job.branches.back().error_details_json = str(b, "error_details");
    job.branches.back().failed_actor = str(b, "failed_actor");
  }
  job.created_at = from_ms(num(o, "created_ms"));
  job.updated_at = from_ms(num(o, "updated_ms"));
  if (o.if_contains("deadline_ms")) job.deadline = from_ms(num(o, "deadline_ms"));
  job.last_sequence = num(o, "last_sequence");
  job.owner = str(o, "owner");
  job.trace_id = str(o, "trace_id");
  const json::value* task = o.if_contains("task");
  job.task = task && task->is_bool() && task->as_bool();
  if (o.if_contains("ttl_ms")) job.ttl_ms = num(o, "ttl_ms");
  return job;
}

std::string update_to_document(const Update& u) {
  json::object o;
  o["status"] = job_status_name(u.status);
  o["progress_percent"] = u.progress_percent;
  o["current_actor_idx"] = u.current_actor_idx;
  o["envelope_state"] = u.envelope_state;
  o["envelope_id"] = u.envelope_id;
  o["actor"] = u.actor;
  o["actors"] = string_array(u.actors);
  o["message"] = u.message;
  o["result"] = u.result_json;
  o["error"] = u.error;
  o["timestamp_ms"] = to_ms(u.timestamp);
  return json::serialize(o);
}

Update update_from_document(std::int64_t sequence, const std::string& text) {
  json::object o = json::parse(text).as_object();
  Update u;
  u.sequence = sequence;
  u.status = parse_job_status(str(o, "status")).value_or(JobStatus::pending);
  u.progress_percent = static_cast<int>(num(o, "progress_percent"));
  u.current_actor_idx = static_cast<int>(num(o, "current_actor_idx"));
  u.envelope_state = str(o, "envelope_state");
  u.envelope_id = str(o, "envelope_id");
  u.actor = str(o, "actor");
  u.actors = strings_of(o.at("actors"));
  u.message = str(o, "message");
  u.result_json = str(o, "result");
  u.error = str(o, "error");
  u.timestamp = from_ms(num(o, "timestamp_ms"));
  return u;
}

}  // namespace asya::gateway
