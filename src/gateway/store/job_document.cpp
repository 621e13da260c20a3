// The JSON documents of the job store's rows: a job and an update, written and read only here.
#include "gateway/store/job_document.hpp"

#include <boost/json.hpp>

#include <charconv>

#include "common/json_text.hpp"

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

// Written field by field as text (no DOM: building a json::object per save, a hash insert per
// key, and serializing it cost ~36 k instructions per report); the same text, key for key and
// byte for byte, as the json::object this replaced serialized to.
std::string job_to_document(const Job& job) {
  std::string out;
  out.reserve(512 + job.route_json.size() + job.payload_json.size() + job.result_json.size() +
              job.error_details_json.size() + job.message.size());
  auto key = [&out](std::string_view name) {
    out += out.empty() ? '{' : ',';
    out += '"';
    out += name;
    out += "\":";
  };
  auto text = [&](std::string_view name, std::string_view value) {
    key(name);
    append_json_string(out, value);
  };
  auto number = [&](std::string_view name, std::int64_t value) {
    key(name);
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out.append(digits, end);
  };
  text("id", job.id);
  text("tool", job.tool);
  text("status", job_status_name(job.status));
  text("message", job.message);
  key("actors");
  out += '[';
  for (std::size_t i = 0; i < job.actors.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, job.actors[i]);
  }
  out += ']';
  number("current_actor_idx", job.current_actor_idx);
  number("progress_percent", job.progress_percent);
  number("actors_completed", job.actors_completed);
  text("route", job.route_json);
  text("payload", job.payload_json);
  text("result", job.result_json);
  text("error", job.error);
  text("error_details", job.error_details_json);
  text("failed_actor", job.failed_actor);
  key("branches");
  out += '[';
  for (std::size_t i = 0; i < job.branches.size(); ++i) {
    const Branch& b = job.branches[i];
    if (i) out += ',';
    out += "{\"id\":";
    append_json_string(out, b.id);
    out += ",\"parent_id\":";
    append_json_string(out, b.parent_id);
    out += ",\"status\":";
    append_json_string(out, job_status_name(b.status));
    out += ",\"result\":";
    append_json_string(out, b.result_json);
    out += ",\"error\":";
    append_json_string(out, b.error);
    out += ",\"error_details\":";
    append_json_string(out, b.error_details_json);
    out += ",\"failed_actor\":";
    append_json_string(out, b.failed_actor);
    out += '}';
  }
  out += ']';
  number("created_ms", to_ms(job.created_at));
  number("updated_ms", to_ms(job.updated_at));
  if (job.deadline) number("deadline_ms", to_ms(*job.deadline));
  number("last_sequence", job.last_sequence);
  if (!job.owner.empty()) text("owner", job.owner);
  if (!job.trace_id.empty()) text("trace_id", job.trace_id);
  if (job.task) {
    key("task");
    out += "true";
  }
  if (job.ttl_ms) number("ttl_ms", *job.ttl_ms);
  out += '}';
  return out;
}

Job job_from_document(const std::string& text) {
  // The DOM lives in one arena (a stack buffer, then blocks of its own) freed at once: no
  // malloc/free per node of a document read only to fill `job`.
  unsigned char first_block[4096];
  json::monotonic_resource arena(first_block, sizeof first_block);
  const json::value parsed = json::parse(text, &arena);
  const json::object& o = parsed.as_object();
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
