#include "gateway/a2a/a2a.hpp"

#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/mcp/rpc.hpp"
#include "gateway/mcp/tasks.hpp"
#include "gateway/raw_json.hpp"

namespace asya::gateway::a2a {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

// JSON-RPC's codes and message shapes are MCP's (gateway/mcp/rpc.hpp); these are A2A's own.
using mcp::kInternalError;
using mcp::kInvalidParams;
using mcp::kInvalidRequest;
using mcp::kMethodNotFound;
using mcp::kParseError;
using mcp::rpc_error;
using mcp::rpc_result;
constexpr int kTaskNotFound = -32001;
constexpr int kTaskNotCancelable = -32002;
constexpr int kPushNotificationNotSupported = -32003;

Response answer(const json::object& message) {
  return Response::json(200, to_json_text(message));
}
std::string sse_data(const json::object& message) {
  return "data: " + to_json_text(message) + "\n\n";
}

json::value parse_or_null(const std::string& text) {
  if (text.empty()) return nullptr;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}

json::object text_message(const std::string& task_id, const std::string& text) {
  return json::object{
      {"kind", "message"}, {"messageId", new_uuid()},
      {"role", "agent"},   {"parts", json::array{json::object{{"kind", "text"}, {"text", text}}}},
      {"taskId", task_id}, {"contextId", task_id}};
}

json::object result_artifact(const std::string& result_json) {
  json::value result = parse_or_null(result_json);
  json::object data = result.is_object() ? result.as_object() : json::object{{"result", result}};
  return json::object{{"artifactId", "result"},
                      {"name", "result"},
                      {"parts", json::array{json::object{{"kind", "data"}, {"data", data}}}}};
}

// (Outside the coroutine lambdas: GCC 12 miscompiles braced string-literal initializers in them.)
json::object artifact_update(const std::string& task_id, const std::string& result_json) {
  return json::object{{"kind", "artifact-update"},
                      {"taskId", task_id},
                      {"contextId", task_id},
                      {"artifact", result_artifact(result_json)},
                      {"lastChunk", true}};
}

json::object status_update(const std::string& task_id, const std::string& state,
                           const std::string& text, const std::string& timestamp, bool final) {
  json::object status{{"state", state}, {"timestamp", timestamp}};
  if (!text.empty()) status["message"] = text_message(task_id, text);
  return json::object{{"kind", "status-update"},
                      {"taskId", task_id},
                      {"contextId", task_id},
                      {"status", status},
                      {"final", final}};
}

std::string state_of(const std::string& job_status) {
  if (job_status == "pending") return "submitted";
  if (job_status == "running") return "working";
  if (job_status == "succeeded") return "completed";
  if (job_status == "cancelled") return "canceled";
  return "failed";
}

// What a progress update says, e.g. "prep: processing (25%)".
std::string progress_text(const Update& update) {
  std::string text =
      update.actor.empty() ? update.envelope_state : update.actor + ": " + update.envelope_state;
  text += " (" + std::to_string(update.progress_percent) + "%)";
  if (!update.message.empty()) text += ": " + update.message;
  return text;
}

const json::object* object_member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

}  // namespace

std::string task_state(JobStatus status) {
  return state_of(job_status_name(status));
}

json::object task_json(const Job& job) {
  std::string state = state_of(job_status_name(job.status));
  json::object status{{"state", state}, {"timestamp", format_time(job.updated_at)}};
  if (!job.error.empty()) {
    status["message"] = text_message(job.id, job.error);
  } else if (!job.message.empty()) {
    status["message"] = text_message(job.id, job.message);
  }
  json::object task{
      {"kind", "task"},
      {"id", job.id},
      {"contextId", job.id},
      {"status", status},
      {"metadata", json::object{{"skill", job.tool}, {"progress_percent", job.progress_percent}}}};
  if (state == "completed") task["artifacts"] = json::array{result_artifact(job.result_json)};
  return task;
}

Result<json::object> message_arguments(const Tool& tool, const json::object& message) {
  const json::value* parts = message.if_contains("parts");
  if (!parts || !parts->is_array() || parts->as_array().empty())
    return Error{"params.message.parts must be a non-empty array of parts"};
  for (const auto& part : parts->as_array()) {
    if (!part.is_object()) continue;
    const json::object& p = part.as_object();
    const json::value* kind = p.if_contains("kind");
    if (kind && *kind == "data") {
      const json::object* data = object_member(p, "data");
      if (!data) return Error{"a data part's \"data\" must be an object (the tool's arguments)"};
      return *data;
    }
  }
  for (const auto& part : parts->as_array()) {
    if (!part.is_object()) continue;
    const json::object& p = part.as_object();
    const json::value* kind = p.if_contains("kind");
    const json::value* text = p.if_contains("text");
    if (!kind || *kind != "text" || !text || !text->is_string()) continue;
    boost::system::error_code ec;
    json::value parsed = json::parse(text->as_string(), ec);
    if (!ec && parsed.is_object()) return parsed.as_object();
    // Plain text: the argument of a tool whose only required parameter is a string.
    const Parameter* only = nullptr;
    int required = 0;
    for (const auto& parameter : tool.parameters) {
      if (!parameter.required) continue;
      ++required;
      only = &parameter;
    }
    if (required == 1 && only->type == ParamType::string)
      return json::object{{only->name, text->as_string()}};
    return Error{"skill \"" + tool.name +
                 "\" needs its arguments as a data part (an object) or a text part holding a "
                 "JSON object; plain text only works for a skill with one required string "
                 "parameter"};
  }
  return Error{"params.message.parts has neither a data part nor a text part"};
}

Endpoint::Endpoint(Service& service, const ApiOptions& options)
    : service_(service), options_(options) {}

awaitable<Response> Endpoint::handle(const http::Request& request) {
  if (request.path == "/.well-known/agent-card.json") {
    if (request.method != "GET") {
      Response r = Response::error(
          405, "method " + request.method + " not allowed on /.well-known/agent-card.json (GET)");
      r.headers.emplace_back("Allow", "GET");
      co_return r;
    }
    co_return agent_card(request);
  }
  if (request.method != "POST") {
    Response r = Response::json(
        405, to_json_text(rpc_error(nullptr, kInvalidRequest,
                                    "Method Not Allowed: " + request.method + " /a2a (use POST)")));
    r.headers.emplace_back("Allow", "POST");
    co_return r;
  }
  co_return co_await rpc(request);
}

Response Endpoint::agent_card(const http::Request& request) const {
  std::string host = request.header("Host");
  if (host.empty()) host = "localhost";
  json::array skills;
  for (const auto& tool : service_.tools().tools) {
    json::object skill{
        {"id", tool.name},
        {"name", tool.name},
        {"description", tool.description.empty() ? "Runs the Asya pipeline of tool " + tool.name
                                                 : tool.description},
        {"tags", json::array{"asya"}},
        {"inputModes", json::array{"application/json", "text/plain"}},
        {"outputModes", json::array{"application/json"}}};
    skills.push_back(std::move(skill));
  }
  json::object card{
      {"protocolVersion", "0.3.0"},
      {"name", "asya-gateway"},
      {"description", "Asya pipelines as A2A skills: each skill runs one tool of routes.yaml"},
      {"url", "http://" + host + "/a2a"},
      {"preferredTransport", "JSONRPC"},
      {"version", "0.1.0"},
      {"capabilities",
       json::object{
           {"streaming", true}, {"pushNotifications", false}, {"stateTransitionHistory", false}}},
      {"defaultInputModes", json::array{"application/json", "text/plain"}},
      {"defaultOutputModes", json::array{"application/json"}},
      {"skills", std::move(skills)}};
  if (!options_.token.empty()) {
    card["securitySchemes"] =
        json::object{{"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}}}};
    card["security"] = json::array{json::object{{"bearer", json::array{}}}};
  }
  return Response::json(200, to_json_text(card));
}

awaitable<Response> Endpoint::rpc(const http::Request& request) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec) co_return answer(rpc_error(nullptr, kParseError, "Parse error: " + ec.message()));
  if (!body.is_object()) {
    co_return answer(rpc_error(nullptr, kInvalidRequest,
                               "Invalid Request: the body must be one JSON-RPC request object"));
  }
  const json::object& m = body.as_object();
  json::value id = m.contains("id") ? m.at("id") : json::value(nullptr);
  if (!id.is_null() && !id.is_string() && !id.is_int64() && !id.is_uint64()) {
    co_return answer(rpc_error(nullptr, kInvalidRequest,
                               "Invalid Request: \"id\" must be a string or an integer"));
  }
  if (!m.contains("jsonrpc") || m.at("jsonrpc") != "2.0")
    co_return answer(
        rpc_error(id, kInvalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\""));
  const json::value* method_value = m.if_contains("method");
  if (!method_value || !method_value->is_string())
    co_return answer(
        rpc_error(id, kInvalidRequest, "Invalid Request: \"method\" must be a string"));
  std::string method(method_value->as_string());
  const json::object* params_ptr = object_member(m, "params");
  if (!params_ptr) {
    co_return answer(
        rpc_error(id, kInvalidParams, "Invalid params: " + method + " needs params (an object)"));
  }
  const json::object& params = *params_ptr;
  // The caller, as for MCP tasks: with tokens, each token is one caller and sees only its own
  // tasks (another caller's task reads as not found); without tokens every task is everyone's.
  const std::string owner =
      mcp::task_owner(request.header("Authorization"), !options_.token.empty());

  if (method == "tasks/get" || method == "tasks/cancel" || method == "tasks/resubscribe") {
    const json::value* task_id = params.if_contains("id");
    if (!task_id || !task_id->is_string() || task_id->as_string().empty()) {
      co_return answer(rpc_error(id, kInvalidParams,
                                 "Invalid params: " + method + " needs params.id (the task id)"));
    }
    std::string job_id(task_id->as_string());
    auto work = [this, job_id] { return service_.store().get(job_id); };
    auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    if (!job.ok()) co_return answer(rpc_error(id, kInternalError, job.error().message));
    if (!job.value() || job.value()->id != job_id || job.value()->owner != owner) {
      co_return answer(rpc_error(id, kTaskNotFound, "Task not found: \"" + job_id + "\""));
    }
    if (method == "tasks/get") co_return answer(rpc_result(id, task_json(*job.value())));
    if (method == "tasks/resubscribe") co_return stream(id, job_id, true);
    // tasks/cancel: the job is cancelled (Service::cancel_job; its remaining actors skip it) and
    // the task answered as it is then; a task that already ended is not cancelable.
    // Only a cancellation recorded now answers the task; one that had ended (even as canceled)
    // is not cancelable.
    ChangeResult not_cancelled;
    not_cancelled.outcome = Outcome::ignored;
    Result<ChangeResult> cancelled = not_cancelled;
    if (!is_final(job.value()->status)) {
      const std::string reason = "cancelled by the client (A2A tasks/cancel)";
      cancelled = co_await service_.cancel_job(job_id, reason);
    }
    if (!cancelled.ok()) co_return answer(rpc_error(id, kInternalError, cancelled.error().message));
    auto reread = [this, job_id] { return service_.store().get(job_id); };
    auto now = co_await service_.blocking<Result<std::optional<Job>>>(std::move(reread));
    if (!now.ok() || !now.value()) {
      co_return answer(
          rpc_error(id, kInternalError, "task \"" + job_id + "\" cannot be read back"));
    }
    if (cancelled.value().outcome != Outcome::applied ||
        now.value()->status != JobStatus::cancelled) {
      // It had ended (or ended on its own just before).
      co_return answer(rpc_error(id, kTaskNotCancelable,
                                 "Task cannot be canceled: task \"" + job_id + "\" is already " +
                                     state_of(job_status_name(now.value()->status))));
    }
    co_return answer(rpc_result(id, task_json(*now.value())));
  }
  if (method.rfind("tasks/pushNotificationConfig/", 0) == 0) {
    co_return answer(rpc_error(id, kPushNotificationNotSupported,
                               "Push Notification is not supported: poll with tasks/get or "
                               "follow the task with message/stream or tasks/resubscribe"));
  }
  if (method != "message/send" && method != "message/stream") {
    co_return answer(rpc_error(id, kMethodNotFound, "Method not found: \"" + method + "\""));
  }

  const json::object* message = object_member(params, "message");
  if (!message) {
    co_return answer(
        rpc_error(id, kInvalidParams, "Invalid params: " + method + " needs params.message"));
  }
  std::string skill;
  for (const json::object* holder :
       {object_member(*message, "metadata"), object_member(params, "metadata")}) {
    if (!holder || !skill.empty()) continue;
    if (const json::value* s = holder->if_contains("skill"); s && s->is_string())
      skill = s->as_string();
  }
  if (skill.empty() && service_.tools().tools.size() == 1) skill = service_.tools().tools[0].name;
  const Tool* tool = service_.tools().find(skill);
  if (!tool) {
    std::string names;
    for (const auto& t : service_.tools().tools) names += (names.empty() ? "" : ", ") + t.name;
    co_return answer(rpc_error(
        id, kInvalidParams,
        (skill.empty() ? std::string("Invalid params: name the skill in message.metadata.skill")
                       : "Invalid params: unknown skill \"" + skill + "\"") +
            " (skills: " + names + ")"));
  }
  auto arguments = message_arguments(*tool, *message);
  if (!arguments.ok()) {
    co_return answer(rpc_error(id, kInvalidParams, "Invalid params: " + arguments.error().message));
  }
  auto valid = validate_arguments(*tool, arguments.value());
  if (!valid.ok()) {
    service_.metrics().tool_call(tool->name, "invalid", 0);
    co_return answer(
        rpc_error(id, kInvalidParams,
                  "Invalid params: skill \"" + tool->name + "\": " + valid.error().message));
  }
  std::string payload = payload_text(valid.value(), arguments.value(), "");
  // Named first: GCC 12 destroys twice a temporary with non-trivial members created inside a
  // co_await expression.
  CallOrigin origin;
  origin.owner = owner;
  auto started = co_await service_.start_call(*tool, std::move(payload), origin);
  if (!started.ok()) co_return answer(rpc_error(id, kInternalError, started.error().message));
  std::string job_id = started.value();
  if (method == "message/stream") co_return stream(id, job_id, true);

  bool blocking = false;
  if (const json::object* configuration = object_member(params, "configuration")) {
    const json::value* b = configuration->if_contains("blocking");
    blocking = b && b->is_bool() && b->as_bool();
  }
  std::optional<Job> job;
  if (blocking) {
    Service::UpdateCallback no_updates;
    job = co_await service_.wait_final(job_id, Clock::now() + tool->timeout, no_updates);
  } else {
    auto work = [this, job_id] { return service_.store().get(job_id); };
    auto read = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    if (read.ok() && read.value()) job = *read.value();
  }
  if (!job) co_return answer(rpc_error(id, kInternalError, "job " + job_id + " disappeared"));
  co_return answer(rpc_result(id, task_json(*job)));
}

Response Endpoint::stream(const json::value& request_id, const std::string& job_id,
                          bool send_task_first) {
  Response response;
  response.headers.emplace_back("Content-Type", "text/event-stream");
  response.headers.emplace_back("X-Accel-Buffering", "no");
  response.stream = [this, request_id, job_id,
                     send_task_first](http::ResponseStream& out) -> awaitable<void> {
    service_.metrics().sse_streams().Increment();
    struct Decrement {
      Metrics& metrics;
      ~Decrement() { metrics.sse_streams().Decrement(); }
    } decrement{service_.metrics()};
    bool open = true;
    auto send = [&](json::value result) -> awaitable<void> {
      std::string event = sse_data(rpc_result(request_id, std::move(result)));
      if (open) open = co_await out.write(std::move(event));
    };
    auto work = [this, job_id] { return service_.store().get(job_id); };
    auto first = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    if (!first.ok() || !first.value()) co_return;
    if (send_task_first) co_await send(task_json(*first.value()));
    // Progress as working status updates; the final one is reported from the job (in full).
    Service::UpdateCallback on_update = [&](const Update& update) -> awaitable<void> {
      if (is_final(update.status) || !open) co_return;
      json::object event = status_update(job_id, "working", progress_text(update),
                                         format_time(update.timestamp), false);
      co_await send(std::move(event));
    };
    Service::IdleCallback on_idle = [&]() -> awaitable<void> {
      std::string keepalive = ": keepalive\n\n";
      if (open) open = co_await out.write(std::move(keepalive));
    };
    std::function<bool()> stop = [&open] { return !open; };
    auto job = co_await service_.wait_final(job_id, std::nullopt, on_update, on_idle,
                                            options_.keepalive, stop);
    if (!open || !job) co_return;
    std::string state = state_of(job_status_name(job->status));
    if (state == "completed") {
      json::object artifact = artifact_update(job_id, job->result_json);
      co_await send(std::move(artifact));
    }
    co_await send(status_update(job_id, state, job->error, format_time(job->updated_at), true));
  };
  return response;
}

}  // namespace asya::gateway::a2a
