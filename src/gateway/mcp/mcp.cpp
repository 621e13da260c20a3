#include "gateway/mcp/mcp.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/mcp/rpc.hpp"
#include "gateway/mcp/streams.hpp"
#include "gateway/mcp/tasks.hpp"
#include "gateway/raw_json.hpp"

namespace asya::gateway {

using namespace mcp;  // NOLINT: the JSON-RPC vocabulary of rpc.hpp

namespace json = boost::json;
namespace asio = boost::asio;
using asio::awaitable;
using http::Response;

namespace {

constexpr std::array<const char*, 4> kVersions = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                  "2024-11-05"};
constexpr const char* kLatest = "2025-11-25";

bool supported(const std::string& version) {
  return std::find(kVersions.begin(), kVersions.end(), version) != kVersions.end();
}

Response http_rpc_error(int status, int code, const std::string& message) {
  return Response::json(status, to_json_text(rpc_error(nullptr, code, message)));
}

// The job store (which keeps the sessions) failed.
Response store_unavailable(const std::string& why) {
  return http_rpc_error(503, kInternalError, "Service Unavailable: MCP sessions: " + why);
}

// notifications/progress for one update (outside the coroutine lambdas: GCC 12 miscompiles
// braced string-literal initializers inside them).
json::object progress_notification(const json::value& token, const Update& update) {
  json::object p{{"progressToken", token}, {"progress", update.progress_percent}, {"total", 100}};
  if (!update.message.empty()) p["message"] = update.message;
  return json::object{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", p}};
}

std::string sse_message(const json::object& message) {
  return "event: message\ndata: " + to_json_text(message) + "\n\n";
}

}  // namespace

McpEndpoint::McpEndpoint(Service& service, const ApiOptions& options)
    : service_(service), options_(options), generic_(service) {}

std::string McpEndpoint::new_session_id(const Caller& caller) {
  std::string id = new_uuid();
  // owner is "token:<fingerprint>" with client tokens, "" without.
  if (const auto colon = caller.owner.find(':'); colon != std::string::npos)
    id += "." + caller.owner.substr(colon + 1);
  return id;
}

bool McpEndpoint::may_use_session(const std::string& id, const Caller& caller) {
  if (!caller.isolated) return true;
  const auto colon = caller.owner.find(':');
  if (colon == std::string::npos) return false;
  const std::string_view tag = std::string_view(caller.owner).substr(colon + 1);
  return id.size() > tag.size() && id.ends_with(tag) && id[id.size() - tag.size() - 1] == '.';
}

awaitable<Result<SessionUse>> McpEndpoint::use_session(const std::string& id,
                                                       const Caller& caller) {
  if (!may_use_session(id, caller)) co_return SessionUse{};  // unknown to this caller
  auto now = Clock::now();
  auto timeout = options_.mcp_session_timeout;
  auto work = [this, id, now, timeout] { return service_.store().use_session(id, now, timeout); };
  auto used = co_await service_.blocking<Result<SessionUse>>(std::move(work));
  auto steady = std::chrono::steady_clock::now();
  bool expired = used.ok() && used.value().state == SessionUse::State::expired;
  if (expired) {
    spdlog::info("gateway: MCP session {} expired (unused for {} ms or more)", id,
                 options_.mcp_session_timeout.count());
  }
  // Every other expired session goes now and then (and the gauge follows).
  if (expired || steady >= next_sweep_) {
    next_sweep_ = steady + std::min<std::chrono::steady_clock::duration>(
                               options_.mcp_session_timeout, std::chrono::minutes(1));
    co_await sweep_sessions();
  }
  co_return used;
}

awaitable<void> McpEndpoint::sweep_sessions() {
  auto now = Clock::now();
  auto timeout = options_.mcp_session_timeout;
  auto work = [this, now, timeout] { return service_.store().sweep_sessions(now, timeout); };
  auto left = co_await service_.blocking<Result<std::int64_t>>(std::move(work));
  if (!left.ok()) {
    spdlog::warn("gateway: removing expired MCP sessions failed: {}", left.error().message);
    co_return;
  }
  service_.metrics().mcp_sessions().Set(static_cast<double>(left.value()));
}

awaitable<Response> McpEndpoint::handle(const http::Request& request) {
  // Host, Origin and Content-Type were checked for every endpoint (Api::refuse_cross_site).
  std::string version = request.header("MCP-Protocol-Version");
  if (!version.empty() && !supported(version)) {
    co_return http_rpc_error(400, kInvalidRequest,
                             "Bad Request: unsupported MCP-Protocol-Version \"" + version +
                                 "\" (supported: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05)");
  }
  if (request.method == "POST") co_return co_await post(request);
  if (request.method == "DELETE") co_return co_await end_session(request);
  if (request.method == "GET") co_return co_await open_stream(request);
  Response r =
      http_rpc_error(405, kServerError,
                     "Method Not Allowed: " + request.method + " /mcp (use POST, GET or DELETE)");
  r.headers.emplace_back("Allow", "GET, POST, DELETE");
  co_return r;
}

void McpEndpoint::cancel(const std::string& session_id, const json::object& notification) {
  if (notification.at("method") != "notifications/cancelled") return;
  const json::value* params = notification.if_contains("params");
  const json::value* request_id =
      params && params->is_object() ? params->as_object().if_contains("requestId") : nullptr;
  if (!request_id) return;
  auto found = in_flight_->find(session_id + "\n" + to_json_text(*request_id));
  if (found == in_flight_->end()) return;  // finished already, or running on another replica
  InFlight& flight = *found->second;
  flight.cancelled = true;
  if (const json::value* reason = params->as_object().if_contains("reason");
      reason && reason->is_string())
    flight.reason = reason->as_string();
  if (!flight.job_id.empty()) service_.notifier().notify(flight.job_id);
}

awaitable<Response> McpEndpoint::end_session(const http::Request& request) {
  std::string id = request.header("Mcp-Session-Id");
  if (id.empty())
    co_return http_rpc_error(400, kServerError, "Bad Request: Mcp-Session-Id header is required");
  if (!may_use_session(id, api::caller_of(options_, request.header("Authorization"))))
    co_return http_rpc_error(404, kServerError, "Session not found: \"" + id + "\"");
  auto work = [this, id] { return service_.store().end_session(id); };
  auto ended = co_await service_.blocking<Result<bool>>(std::move(work));
  if (!ended.ok()) co_return store_unavailable(ended.error().message);
  if (!ended.value())
    co_return http_rpc_error(404, kServerError, "Session not found: \"" + id + "\"");
  generic_.forget(id);
  co_await sweep_sessions();
  co_return Response::json(200, "{}");
}

awaitable<Response> McpEndpoint::post(const http::Request& request) {
  std::string accept = request.header("Accept");
  bool accepts_sse = accept.find("text/event-stream") != std::string::npos;
  if (!accept.empty() && accept.find("application/json") == std::string::npos && !accepts_sse &&
      accept.find("*/*") == std::string::npos) {
    co_return http_rpc_error(
        406, kServerError,
        "Not Acceptable: Accept must include application/json and text/event-stream");
  }
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec) co_return http_rpc_error(400, kParseError, "Parse error: " + ec.message());

  // Validates one message; returns an error response object or nullopt.
  auto invalid = [](const json::value& m) -> std::optional<json::object> {
    if (!m.is_object())
      return rpc_error(nullptr, kInvalidRequest, "Invalid Request: a message must be an object");
    const auto& o = m.as_object();
    json::value id = o.contains("id") ? o.at("id") : json::value(nullptr);
    if (!o.contains("jsonrpc") || o.at("jsonrpc") != "2.0") {
      return rpc_error(id, kInvalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    }
    bool is_response = o.contains("result") || o.contains("error");
    if (!is_response && (!o.contains("method") || !o.at("method").is_string())) {
      return rpc_error(id, kInvalidRequest, "Invalid Request: \"method\" must be a string");
    }
    if (o.contains("id") && !o.at("id").is_string() && !o.at("id").is_int64() &&
        !o.at("id").is_uint64()) {
      return rpc_error(nullptr, kInvalidRequest,
                       "Invalid Request: \"id\" must be a string or an integer");
    }
    return std::nullopt;
  };

  // initialize: creates a session.
  if (body.is_object() && body.as_object().if_contains("method") &&
      body.as_object().at("method") == "initialize") {
    const auto& m = body.as_object();
    if (auto bad = invalid(body)) co_return Response::json(400, to_json_text(*bad));
    json::value id = m.contains("id") ? m.at("id") : json::value(nullptr);
    const json::value* params = m.if_contains("params");
    const json::value* requested = params && params->is_object()
                                       ? params->as_object().if_contains("protocolVersion")
                                       : nullptr;
    if (!requested || !requested->is_string()) {
      co_return Response::json(
          200, to_json_text(rpc_error(id, kInvalidParams,
                                      "Invalid params: initialize needs params.protocolVersion")));
    }
    std::string version = supported(std::string(requested->as_string()))
                              ? std::string(requested->as_string())
                              : kLatest;
    std::string session_id =
        new_session_id(api::caller_of(options_, request.header("Authorization")));
    auto now = Clock::now();
    auto work = [this, session_id, version, now] {
      return service_.store().create_session(session_id, version, now);
    };
    Status created = co_await service_.blocking<Status>(std::move(work));
    if (!created.ok()) co_return store_unavailable(created.message());
    co_await sweep_sessions();
    json::object capabilities{{"tools", json::object{{"listChanged", false}}}};
    mcp::GenericFeatures::add_capabilities(capabilities);
    // Tasks are part of the 2025-11-25 revision.
    if (version == "2025-11-25") {
      capabilities["tasks"] = json::object{
          {"list", json::object{}},
          {"cancel", json::object{}},
          {"requests", json::object{{"tools", json::object{{"call", json::object{}}}}}}};
    }
    json::object result{
        {"protocolVersion", version},
        {"capabilities", std::move(capabilities)},
        {"serverInfo", json::object{{"name", "asya-gateway"}, {"version", "0.1.0"}}},
        {"instructions",
         "Each tool runs an Asya pipeline; calls of tools with progress enabled report "
         "progress when you send a progressToken."}};
    Response r = Response::json(200, to_json_text(rpc_result(id, std::move(result))));
    r.headers.emplace_back("Mcp-Session-Id", session_id);
    co_return r;
  }

  std::string session_id = request.header("Mcp-Session-Id");
  if (session_id.empty()) {
    co_return http_rpc_error(
        400, kServerError,
        "Bad Request: Mcp-Session-Id header is required (call initialize first)");
  }
  const Caller caller = api::caller_of(options_, request.header("Authorization"));
  auto session = co_await use_session(session_id, caller);
  if (!session.ok()) co_return store_unavailable(session.error().message);
  if (session.value().state != SessionUse::State::active) {
    co_return http_rpc_error(
        404, kServerError,
        "Session not found: \"" + session_id + "\" (ended or expired; initialize again)");
  }
  std::string session_version = session.value().protocol_version;
  // The header, when sent, was checked to name a supported version (handle()); the session keeps
  // the version negotiated at initialize. The transport spec says a client SHOULD (not MUST) send
  // the negotiated one, and the official conformance suite (server-sse-multiple-streams) sends
  // 2025-03-26 in a 2025-11-25 session, so another supported version is accepted.
  const std::string owner = caller.owner;
  const bool tasks_enabled = session_version == "2025-11-25";
  // Handles one request; `notify` (may be empty) sends notifications on the response stream.
  // `raw_arguments` is the text of params.arguments as sent ("" for a batch: printed again);
  // `flight` (may be null) is where notifications/cancelled marks this request.
  auto dispatch = [this, caller, owner, tasks_enabled, session_id](
                      const json::object& m, Notify notify, std::string raw_arguments,
                      std::shared_ptr<InFlight> flight) -> awaitable<RpcOutcome> {
    std::string method(m.at("method").as_string());
    const json::value* params_value = m.if_contains("params");
    json::object params =
        params_value && params_value->is_object() ? params_value->as_object() : json::object{};
    if (method == "ping") co_return ok_outcome(json::object{});
    if (method == "initialize")
      co_return RpcOutcome{std::nullopt, kInvalidRequest, "Invalid Request: already initialized"};
    if (method == "tools/list") {
      json::array tools;
      for (const auto& tool : service_.tools().tools) {
        json::object t{{"name", tool.name}, {"inputSchema", input_schema(tool)}};
        if (!tool.description.empty()) t["description"] = tool.description;
        if (tasks_enabled) {
          t["execution"] = json::object{{"taskSupport", task_support_name(tool.task_support)}};
        }
        tools.push_back(std::move(t));
      }
      co_return ok_outcome(json::object{{"tools", std::move(tools)}});
    }
    if (tasks_enabled) {
      auto answered = co_await task_method(method, params, owner, notify, flight);
      if (answered) co_return std::move(*answered);
    }
    if (auto generic = co_await generic_.answer(session_id, caller, method, params))
      co_return RpcOutcome{std::move(generic->result), generic->code, generic->message};
    if (method != "tools/call") {
      co_return RpcOutcome{std::nullopt, kMethodNotFound, "Method not found: \"" + method + "\""};
    }
    const json::value* name = params.if_contains("name");
    if (!name || !name->is_string()) {
      co_return RpcOutcome{std::nullopt, kInvalidParams,
                           "Invalid params: tools/call needs params.name (a string)"};
    }
    const Tool* tool = service_.tools().find(name->as_string());
    if (!tool) {
      co_return RpcOutcome{std::nullopt, kInvalidParams,
                           "Unknown tool: \"" + std::string(name->as_string()) + "\""};
    }
    json::object arguments;
    if (const json::value* args = params.if_contains("arguments"); args && !args->is_null()) {
      if (!args->is_object()) {
        co_return RpcOutcome{std::nullopt, kInvalidParams,
                             "Invalid params: params.arguments must be an object"};
      }
      arguments = args->as_object();
    }
    const json::value* task = tasks_enabled ? params.if_contains("task") : nullptr;
    if (task && tool->task_support == TaskSupport::forbidden) {
      co_return error_outcome(kMethodNotFound,
                              "Method not found: tool \"" + tool->name +
                                  "\" does not run as a task (routes.yaml task_support: "
                                  "forbidden); call it without params.task");
    }
    if (!task && tasks_enabled && tool->task_support == TaskSupport::required) {
      co_return error_outcome(kMethodNotFound,
                              "Method not found: tool \"" + tool->name +
                                  "\" runs only as a task (routes.yaml task_support: required); "
                                  "call it with params.task");
    }
    auto valid = validate_arguments(*tool, arguments);
    if (!valid.ok()) {
      service_.metrics().tool_call(tool->name, "invalid", 0);
      // A task-augmented caller expects a CreateTaskResult or an error, never a tool result.
      if (task) co_return error_outcome(kInvalidParams, "Invalid params: " + valid.error().message);
      co_return ok_outcome(api::error_result(valid.error().message));
    }
    std::string payload = payload_text(valid.value(), arguments, raw_arguments);
    if (task) {
      RpcOutcome created = co_await start_task(*tool, *task, std::move(payload), owner);
      // The task is one of the session's jobs too (resources/list, completion/complete).
      if (created.result) {
        const json::value* id = created.result->contains("task")
                                    ? created.result->at("task").as_object().if_contains("taskId")
                                    : nullptr;
        if (id && id->is_string())
          generic_.remember_job(session_id, std::string(id->as_string()), tool->name);
      }
      co_return created;
    }
    auto started_at = std::chrono::steady_clock::now();
    // Named first: GCC 12 destroys twice a temporary with non-trivial members created inside a
    // co_await expression.
    CallOrigin origin{owner, false, std::nullopt};
    auto started = co_await service_.start_call(*tool, std::move(payload), origin);
    if (!started.ok()) co_return ok_outcome(api::error_result(started.error().message));
    if (flight) flight->job_id = started.value();
    generic_.remember_job(session_id, started.value(), tool->name);
    if (flight && flight->on_started) co_await flight->on_started(started.value());
    if (tool->async) co_return ok_outcome(api::async_result(started.value(), tool->progress));

    json::value token = nullptr;
    if (const json::value* meta = params.if_contains("_meta"); meta && meta->is_object()) {
      if (const json::value* t = meta->as_object().if_contains("progressToken")) token = *t;
    }
    int last_sent = -1;
    Service::UpdateCallback on_update;
    // `progress: false` (the tool's or defaults'): no notifications/progress, only the result.
    bool send_progress = !token.is_null() && tool->progress;
    if (notify && (send_progress || generic_.logging(session_id))) {
      on_update = [&](const Update& update) -> awaitable<void> {
        // notifications/message at the session's level (logging/setLevel), see generic.hpp.
        if (auto log = generic_.log_message(session_id, started.value(), update))
          co_await notify(*log);
        // Progress must increase with each notification.
        if (!send_progress || update.progress_percent <= last_sent) co_return;
        last_sent = update.progress_percent;
        json::object notification = progress_notification(token, update);
        co_await notify(notification);
      };
    }
    Service::IdleCallback on_idle;
    if (notify) {
      on_idle = [&]() -> awaitable<void> {
        json::object keepalive;  // empty: written as an SSE comment
        co_await notify(keepalive);
      };
    }
    std::function<bool()> stop;
    if (flight) stop = [flight] { return flight->cancelled || flight->detached; };
    auto job = co_await service_.wait_final(started.value(), Clock::now() + tool->timeout,
                                            on_update, on_idle, options_.keepalive, stop);
    if (flight && flight->detached && !flight->cancelled) {
      // Closed for polling: the client gets the result on GET with Last-Event-ID (streams.hpp).
      RpcOutcome closed{std::nullopt, kRequestCancelled, "stream closed for polling"};
      closed.cancelled = true;
      co_return closed;
    }
    if (flight && flight->cancelled) {
      // The job is cancelled too (its remaining actors skip it); the client is told nothing more.
      std::string reason = flight->reason.empty() ? std::string("no reason given") : flight->reason;
      spdlog::info("gateway: MCP request for job {} cancelled by the client: {}", started.value(),
                   reason);
      std::string why = "cancelled by the client (notifications/cancelled): " + reason;
      co_await service_.cancel_job(started.value(), why);
      RpcOutcome cancelled{std::nullopt, kRequestCancelled,
                           "Request cancelled by the client (notifications/cancelled)"};
      cancelled.cancelled = true;
      co_return cancelled;
    }
    if (!job)
      co_return RpcOutcome{std::nullopt, kInternalError, "job " + started.value() + " disappeared"};
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    service_.metrics().tool_call(tool->name, job_status_name(job->status), seconds);
    co_return ok_outcome(api::call_result(*job));
  };

  auto answer = [](const json::value& id, const RpcOutcome& outcome) {
    return outcome.result ? rpc_result(id, *outcome.result)
                          : rpc_error(id, outcome.code, outcome.message);
  };

  if (body.is_array()) {
    // Batches (2025-03-26 only): answered together as one JSON array, without progress streaming.
    if (session_version != "2025-03-26") {
      co_return Response::json(
          400, to_json_text(rpc_error(nullptr, kInvalidRequest,
                                      "Invalid Request: JSON-RPC batches are not part of MCP "
                                      "protocol version " +
                                          session_version +
                                          " (only 2025-03-26 has them); send one message per "
                                          "request")));
    }
    if (body.as_array().empty()) {
      co_return Response::json(
          400, to_json_text(rpc_error(nullptr, kInvalidRequest, "Invalid Request: empty batch")));
    }
    json::array responses;
    for (const auto& item : body.as_array()) {
      if (auto bad = invalid(item)) {
        responses.push_back(*bad);
        continue;
      }
      const auto& m = item.as_object();
      if (!m.contains("id") && m.contains("method")) cancel(session_id, m);
      if (!m.contains("id") || !m.contains("method")) continue;  // notification or response
      Notify none;
      RpcOutcome outcome = co_await dispatch(m, none, "", nullptr);
      responses.push_back(answer(m.at("id"), outcome));
    }
    if (responses.empty()) co_return Response{202, {}, "", nullptr};
    co_return Response::json(200, to_json_text(responses));
  }

  if (auto bad = invalid(body)) co_return Response::json(400, to_json_text(*bad));
  const auto& m = body.as_object();
  if (!m.contains("id") && m.contains("method")) cancel(session_id, m);
  if (!m.contains("id") || !m.contains("method")) co_return Response{202, {}, "", nullptr};

  std::string raw_arguments;
  if (auto raw_params = raw_members(request.body)["params"]; !raw_params.empty())
    raw_arguments = std::string(raw_members(raw_params)["arguments"]);
  // Registered while the request runs, so notifications/cancelled (another POST) can find it.
  std::string flight_key = session_id + "\n" + to_json_text(m.at("id"));
  auto flight = std::make_shared<InFlight>();
  (*in_flight_)[flight_key] = flight;
  // Weak: a response may outlive this endpoint when the io_context is torn down.
  struct Unregister {
    std::weak_ptr<InFlightMap> weak_map;
    std::string key;
    std::shared_ptr<InFlight> flight;
    ~Unregister() {
      auto map = weak_map.lock();
      if (!map) return;
      auto found = map->find(key);
      if (found != map->end() && found->second == flight) map->erase(found);
    }
  };

  // Priming events (and so resumption) are part of 2025-11-25 (SEP-1699); older clients may not
  // expect an event with empty data.
  bool resumable = session_version == "2025-11-25";
  bool polling = options_.mcp_poll_after.count() > 0 && resumable;
  bool wants_progress = false;
  // tasks/result may wait long: as a stream it carries keepalives and notifications/tasks/status.
  if (m.at("method") == "tasks/result" && session_version == "2025-11-25") wants_progress = true;
  if (m.at("method") == "tools/call") {
    const json::value* params = m.if_contains("params");
    if (params && params->is_object()) {
      const json::value* meta = params->as_object().if_contains("_meta");
      wants_progress = meta && meta->is_object() && meta->as_object().contains("progressToken");
    }
    // A session that set a log level gets its log notifications on the call's stream; with
    // polling on, a 2025-11-25 session's call answers as a resumable stream (streams.hpp).
    wants_progress = wants_progress || generic_.logging(session_id) || polling;
  }
  if (!(wants_progress && accepts_sse)) {
    Unregister unregister{in_flight_, flight_key, flight};
    Notify none;
    RpcOutcome outcome = co_await dispatch(m, none, raw_arguments, flight);
    co_return Response::json(200, to_json_text(answer(m.at("id"), outcome)));
  }

  Response response;
  response.headers.emplace_back("Content-Type", "text/event-stream");
  response.headers.emplace_back("Mcp-Session-Id", session_id);
  // Unregistered when the response is gone, whether or not its stream ever ran.
  // (Not make_shared: a temporary Unregister would unregister at once.)
  std::shared_ptr<Unregister> unregister(new Unregister{in_flight_, flight_key, flight});
  response.stream = [this, message = m, dispatch, answer, raw_arguments, flight, unregister,
                     polling, resumable](http::ResponseStream& out) -> awaitable<void> {
    service_.metrics().sse_streams().Increment();
    bool open = true;
    // The priming event (an id to resume from) once the job exists; then, with polling on, the
    // stream closes after ASYA_GATEWAY_MCP_POLL_AFTER (streams.hpp).
    std::string request_id = to_json_text(message.at("id"));
    if (resumable)
      flight->on_started = [&, this](const std::string& job_id) -> awaitable<void> {
        auto retry = polling ? options_.mcp_poll_after : std::chrono::milliseconds(1000);
        std::string priming =
            mcp::priming_event(mcp::stream_event_id(job_id, request_id, false), retry);
        if (open) open = co_await out.write(std::move(priming));
        if (polling) {
          asio::co_spawn(co_await asio::this_coro::executor,
                         detach_after(flight, options_.mcp_poll_after), asio::detached);
        }
      };
    // An empty object is a keepalive: an SSE comment, which clients ignore.
    Notify notify = [&](const json::object& notification) -> awaitable<void> {
      std::string event =
          notification.empty() ? std::string(": keepalive\n\n") : sse_message(notification);
      if (open) open = co_await out.write(std::move(event));
    };
    RpcOutcome outcome = co_await dispatch(message, notify, raw_arguments, flight);
    // A cancelled request ends its stream without a response (the client has stopped waiting).
    std::string event = "id: " + mcp::stream_event_id(flight->job_id, request_id, true) + "\n" +
                        sse_message(answer(message.at("id"), outcome));
    if (flight->job_id.empty()) event = sse_message(answer(message.at("id"), outcome));
    if (open && !outcome.cancelled) co_await out.write(std::move(event));
    service_.metrics().sse_streams().Decrement();
  };
  co_return response;
}

}  // namespace asya::gateway
