// REST and sidecar endpoints (PROTOCOL §7, §8), authentication and request dispatch.
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/a2a/a2a.hpp"
#include "gateway/api.hpp"
#include "gateway/dashboard/assets.hpp"
#include "gateway/mcp/mcp.hpp"
#include "gateway/raw_json.hpp"
#include "gateway/sidecar_reports.hpp"

namespace asya::gateway {

namespace json = boost::json;
namespace asio = boost::asio;
using api::parse_body;
using asio::awaitable;
using http::Response;

namespace {

Response method_not_allowed(const std::string& method, const std::string& path,
                            const std::string& allow) {
  Response r = Response::error(
      405, "method " + method + " not allowed on " + path + " (allowed: " + allow + ")");
  r.headers.emplace_back("Allow", allow);
  return r;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    parts.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  while (!parts.empty() && parts.back().empty()) parts.pop_back();
  return parts;
}

// The /healthz and /readyz body: {"status": status}, plus "instance" when the gateway has one.
std::string probe_answer(std::string_view status, const std::string& instance_id) {
  json::object answer{{"status", status}};
  if (!instance_id.empty()) answer["instance"] = instance_id;
  return to_json_text(answer);
}

}  // namespace

Api::Api(Service& service, ApiOptions options)
    : service_(service),
      options_(std::move(options)),
      mcp_(std::make_unique<McpEndpoint>(service, options_)),
      a2a_(std::make_unique<a2a::Endpoint>(service, options_)),
      actors_(std::make_unique<ActorMonitor>(service, options_.actor_monitor)) {
  actors_->start();
}

Api::~Api() = default;

awaitable<Response> Api::handle(http::Request request) {
  Response response = co_await route(request);
  service_.metrics().http_request(request.method, response.status);
  if (response.status >= 500) {
    spdlog::error("gateway: {} {} -> {}", request.method, request.path, response.status);
  }
  co_return response;
}

awaitable<Response> Api::route(const http::Request& request) {
  const std::string& method = request.method;
  const std::string& path = request.path;
  if (auto refused = refuse_cross_site(request)) co_return *refused;
  if (path == "/healthz") {
    co_return method == "GET" ? Response::json(200, probe_answer("ok", options_.instance_id))
                              : method_not_allowed(method, path, "GET");
  }
  if (path == "/readyz") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    std::string problem = co_await service_.readiness();
    if (!problem.empty()) co_return Response::error(503, problem);
    co_return Response::json(200, probe_answer("ready", options_.instance_id));
  }
  if (path == "/metrics") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    Response r;
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = service_.metrics().serialize();
    co_return r;
  }

  // The dashboard's static files need no token (they hold no data; its API calls do).
  if (auto page = dashboard::serve(request)) co_return std::move(*page);

  auto parts = split_path(path);
  // POST /envelopes... are the sidecars' endpoints, except cancel, which clients call.
  // POST /v1/traces (OTLP spans from sidecars) is one too.
  bool sidecar_endpoint = (parts.size() >= 1 && parts[0] == "envelopes" && method == "POST" &&
                           !(parts.size() == 3 && parts[2] == "cancel")) ||
                          path == "/v1/traces";
  const std::string& token = sidecar_endpoint ? options_.internal_token : options_.token;
  if (!token.empty() && !api::bearer_matches_any(request.header("Authorization"), token)) {
    Response r = Response::error(
        401, std::string("missing or wrong bearer token: send `Authorization: Bearer <") +
                 (sidecar_endpoint ? "ASYA_GATEWAY_INTERNAL_TOKEN" : "ASYA_GATEWAY_TOKEN") + ">`");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    co_return r;
  }
  // Who a client request comes from (meaningless on sidecar endpoints, which never use it).
  const Caller caller = api::caller_of(options_, request.header("Authorization"));

  if (path == "/mcp") co_return co_await mcp_->handle(request);
  if (path == "/a2a" || path == "/.well-known/agent-card.json")
    co_return co_await a2a_->handle(request);
  if (path == "/actors") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    json::object actors = co_await actors_->snapshot();
    co_return Response::json(200, to_json_text(actors));
  }
  if (path == "/tools") {
    co_return method == "GET" ? list_tools() : method_not_allowed(method, path, "GET");
  }
  if (path == "/tools/call") {
    if (method != "POST") co_return method_not_allowed(method, path, "POST");
    co_return co_await call_tool_rest(request, caller);
  }
  if (path == "/v1/traces") {
    if (method != "POST") co_return method_not_allowed(method, path, "POST");
    co_return co_await receive_traces(request);
  }
  if (parts.size() == 1 && parts[0] == "envelopes") {
    if (method == "GET") co_return co_await list_envelopes(request, caller);
    if (method != "POST") co_return method_not_allowed(method, path, "GET, POST");
    co_return co_await add_branch(request);
  }
  if (parts.size() == 2 && parts[0] == "envelopes" && parts[1] == "reports" && method == "POST")
    co_return co_await report_batch(request);  // PROTOCOL §7 (GET is the envelope "reports")
  if (parts.size() == 2 && parts[0] == "envelopes") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    co_return co_await get_envelope(parts[1], caller);
  }
  if (parts.size() == 3 && parts[0] == "envelopes") {
    const std::string& id = parts[1];
    const std::string& action = parts[2];
    if (action == "stream") {
      if (method != "GET") co_return method_not_allowed(method, path, "GET");
      co_return co_await stream_envelope(request, id, caller);
    }
    if (action == "trace") {
      if (method != "GET") co_return method_not_allowed(method, path, "GET");
      co_return co_await get_trace(id, caller);
    }
    if (action == "active") {
      if (method != "GET") co_return method_not_allowed(method, path, "GET");
      co_return co_await envelope_active(id, caller);
    }
    if (action == "progress") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await report_progress(request, id);
    }
    if (action == "final") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await report_final(request, id);
    }
    if (action == "joined") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await report_joined(request, id);
    }
    if (action == "check") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await check_envelope(request, id);
    }
    if (action == "cancel") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await cancel_envelope(request, id, caller);
    }
  }
  co_return Response::error(404, "no such endpoint: " + method + " " + path);
}

std::optional<Response> Api::refuse_cross_site(const http::Request& request) const {
  // /mcp answers in JSON-RPC form, every other endpoint with {"error": ...}.
  auto refuse = [&](int status, const std::string& message) {
    if (request.path != "/mcp") return Response::error(status, message);
    return Response::json(
        status, to_json_text(
                    json::object{{"jsonrpc", "2.0"},
                                 {"id", nullptr},
                                 {"error", json::object{{"code", -32000}, {"message", message}}}}));
  };
  std::string host = request.header("Host");
  if (!api::host_allowed(options_, host)) {
    return refuse(403, "Forbidden: Host \"" + host +
                           "\" is not allowed (IP addresses and localhost are; add the names "
                           "clients use to ASYA_GATEWAY_ALLOWED_HOSTS)");
  }
  std::string origin = request.header("Origin");
  if (!api::origin_allowed(options_, origin) && !api::same_origin(options_, origin, host)) {
    return refuse(403, "Forbidden: Origin \"" + origin +
                           "\" is not allowed (localhost origins are; add others to "
                           "ASYA_GATEWAY_ALLOWED_ORIGINS)");
  }
  // A web page can send a cross-site POST without asking only with a "simple" content type
  // (text/plain, form data); requiring application/json makes the browser ask first (CORS
  // preflight), which this server never grants.
  if (request.method == "POST" && !api::is_json_content_type(request.header("Content-Type"))) {
    std::string given = request.header("Content-Type");
    return refuse(415, "Unsupported Media Type: POST " + request.path +
                           " needs `Content-Type: application/json`, got " +
                           (given.empty() ? std::string("none") : "\"" + given + "\""));
  }
  return std::nullopt;
}

Response Api::list_tools() {
  json::array tools;
  for (const auto& tool : service_.tools().tools) {
    tools.push_back(json::object{{"name", tool.name},
                                 {"description", tool.description},
                                 {"inputSchema", input_schema(tool)}});
  }
  return Response::json(200, to_json_text(tools));
}

awaitable<Response> Api::call_tool_rest(const http::Request& request, const Caller& caller) {
  Response error;
  auto body = parse_body(request.body, error);
  if (!body) co_return error;
  const json::value* name = body->if_contains("name");
  if (!name || !name->is_string())
    co_return Response::error(400, "body needs \"name\": the tool name as a string");
  const Tool* tool = service_.tools().find(name->as_string());
  if (!tool)
    co_return Response::error(
        404, "unknown tool \"" + std::string(name->as_string()) + "\" (GET /tools lists them)");
  json::object arguments;
  if (const json::value* args = body->if_contains("arguments"); args && !args->is_null()) {
    if (!args->is_object()) co_return Response::error(400, "\"arguments\" must be a JSON object");
    arguments = args->as_object();
  }
  auto valid = validate_arguments(*tool, arguments);
  if (!valid.ok()) {
    service_.metrics().tool_call(tool->name, "invalid", 0);
    co_return Response::error(400, valid.error().message);
  }
  auto raw = raw_members(request.body);
  std::string payload = payload_text(valid.value(), arguments, raw["arguments"]);
  auto started_at = std::chrono::steady_clock::now();
  // Named: see McpEndpoint (GCC 12 and temporaries in co_await).
  CallOrigin origin{caller.owner, false, std::nullopt};
  auto started = co_await service_.start_call(*tool, std::move(payload), origin);
  if (!started.ok())
    co_return Response::json(200, to_json_text(api::error_result(started.error().message)));
  // `"async": true` in the body (used by `asya call`) answers the job id at once, as for an
  // async tool, so the caller can follow GET /envelopes/{id}/stream.
  const json::value* async_flag = body->if_contains("async");
  bool answer_now = tool->async || (async_flag && async_flag->is_bool() && async_flag->as_bool());
  if (answer_now) {
    Response answer =
        Response::json(200, to_json_text(api::async_result(started.value(), tool->progress)));
    answer.headers.emplace_back("Asya-Job-Id", started.value());
    co_return answer;
  }
  Service::UpdateCallback no_callback;
  auto job =
      co_await service_.wait_final(started.value(), Clock::now() + tool->timeout, no_callback);
  if (!job)
    co_return Response::error(500, "job " + started.value() + " disappeared from the job store");
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  service_.metrics().tool_call(tool->name, job_status_name(job->status), seconds);
  Response answer = Response::json(200, to_json_text(api::call_result(*job)));
  answer.headers.emplace_back("Asya-Job-Id", job->id);
  co_return answer;
}

awaitable<Api::FoundJob> Api::find_job(const std::string& id, const Caller& caller) {
  auto work = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
  FoundJob found;
  if (!job.ok()) {
    found.error = Response::error(503, job.error().message);
  } else if (!job.value() || !caller.may_see(*job.value())) {
    // Another caller's job (also found by a branch id: a branch belongs to its job's owner) gets
    // the very answer an unknown id gets.
    found.error = Response::error(404, "no job or envelope with id \"" + id + "\"");
  } else {
    found.job = std::move(*job.value());
  }
  co_return found;
}

awaitable<Response> Api::get_envelope(const std::string& id, const Caller& caller) {
  FoundJob found = co_await find_job(id, caller);
  if (!found.job) co_return std::move(found.error);
  co_return Response::json(200, to_json_text(api::job_json(*found.job)));
}

awaitable<Response> Api::envelope_active(const std::string& id, const Caller& caller) {
  FoundJob found = co_await find_job(id, caller);
  if (!found.job) co_return std::move(found.error);
  if (is_final(found.job->status)) co_return Response::json(410, R"({"active":false})");
  co_return Response::json(200, R"({"active":true})");
}

awaitable<Response> Api::stream_envelope(const http::Request& request, const std::string& id,
                                         const Caller& caller) {
  FoundJob found = co_await find_job(id, caller);
  if (!found.job) co_return std::move(found.error);
  std::int64_t after = 0;
  std::string last_event_id = request.header("Last-Event-ID");
  if (!last_event_id.empty()) {
    try {
      after = std::stoll(last_event_id);
    } catch (...) {
      co_return Response::error(
          400, "Last-Event-ID must be an event id (a number), got \"" + last_event_id + "\"");
    }
  }
  std::string job_id = found.job->id;
  Response response;
  response.headers.emplace_back("Content-Type", "text/event-stream");
  response.headers.emplace_back("X-Accel-Buffering", "no");
  response.stream = [this, job_id, after](http::ResponseStream& out) -> awaitable<void> {
    service_.metrics().sse_streams().Increment();
    struct Decrement {
      Metrics& m;
      ~Decrement() { m.sse_streams().Decrement(); }
    } decrement{service_.metrics()};
    auto subscription = service_.notifier().subscribe(job_id);
    std::int64_t last = after;
    auto last_write = std::chrono::steady_clock::now();
    for (;;) {
      auto work_3 = [this, job_id, last] { return service_.store().updates(job_id, last); };
      auto updates = co_await service_.blocking<Result<std::vector<Update>>>(std::move(work_3));
      if (updates.ok()) {
        bool final = false;
        for (const auto& update : updates.value()) {
          last = update.sequence;
          std::string event = api::sse_event(job_id, update);
          if (!co_await out.write(std::move(event))) co_return;
          last_write = std::chrono::steady_clock::now();
          if (is_final(update.status)) final = true;
        }
        if (final) co_return;
      }
      auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - last_write);
      if (since >= options_.keepalive) {
        std::string keepalive = ": keepalive\n\n";
        if (!co_await out.write(std::move(keepalive))) co_return;
        last_write = std::chrono::steady_clock::now();
        since = std::chrono::milliseconds(0);
      }
      co_await subscription->wait(std::min(service_.poll_interval(), options_.keepalive - since));
    }
  };
  co_return response;
}

awaitable<Response> Api::report_final(const http::Request& request, const std::string& id) {
  Response error;
  auto body = parse_body(request.body, error);
  if (!body) co_return error;
  std::string why;
  auto parsed = reports::read_final(*body, request.body, id, why);
  if (!parsed) co_return Response::error(400, why);
  FinalReport report = std::move(*parsed);
  service_.metrics().report("final");
  auto work_5 = [this, report] { return service_.store().finish(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_5));
  if (result.ok() && result.value().outcome == Outcome::applied)
    service_.notifier().notify(result.value().job_id);
  reports::Answer answer = reports::final_answer(result, id);
  co_return Response::json(answer.status, to_json_text(answer.body));
}

awaitable<Response> Api::add_branch(const http::Request& request) {
  Response error;
  auto body = parse_body(request.body, error);
  if (!body) co_return error;
  BranchReport report;
  const json::value* id = body->if_contains("id");
  const json::value* parent = body->if_contains("parent_id");
  if (!id || !id->is_string() || id->as_string().empty())
    co_return Response::error(400, "\"id\" must be a non-empty string");
  if (!parent || !parent->is_string() || parent->as_string().empty()) {
    co_return Response::error(400, "\"parent_id\" must be a non-empty string");
  }
  report.id = id->as_string();
  report.parent_id = parent->as_string();
  if (const json::value* actors = body->if_contains("actors"); actors && actors->is_array()) {
    for (const auto& a : actors->as_array()) {
      if (a.is_string()) report.actors.emplace_back(a.as_string());
    }
  }
  if (const json::value* current = body->if_contains("current"); current && current->is_int64()) {
    report.current = static_cast<int>(current->as_int64());
  }
  service_.metrics().report("branch");
  auto work_6 = [this, report] { return service_.store().add_branch(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_6));
  if (!result.ok()) co_return Response::error(503, result.error().message);
  json::object answer{{"id", report.id}};
  switch (result.value().outcome) {
    case Outcome::not_found:
      co_return Response::error(404, "no job knows parent envelope \"" + report.parent_id + "\"");
    case Outcome::ignored:
      co_return Response::error(409, "the job of \"" + report.parent_id + "\" is already final");
    case Outcome::duplicate:
      answer["status"] = "exists";
      co_return Response::json(200, to_json_text(answer));
    default:
      service_.notifier().notify(result.value().job_id);
      answer["status"] = "created";
      co_return Response::json(201, to_json_text(answer));
  }
}

awaitable<Response> Api::cancel_envelope(const http::Request& request, const std::string& id,
                                         const Caller& caller) {
  std::string reason = "cancelled by a client (POST /envelopes/" + id + "/cancel)";
  if (!request.body.empty()) {
    Response error;
    auto body = parse_body(request.body, error);
    if (!body) co_return error;
    if (const json::value* r = body->if_contains("reason"); r && !r->is_null()) {
      if (!r->is_string()) co_return Response::error(400, "\"reason\" must be a string");
      if (!r->as_string().empty()) reason = "cancelled: " + std::string(r->as_string());
    }
  }
  if (caller.isolated) {
    // Only the caller's own job may be cancelled; another's is unknown (the owner never changes,
    // so checking first leaves no window).
    FoundJob found = co_await find_job(id, caller);
    if (!found.job) co_return std::move(found.error);
  }
  auto cancelled = co_await service_.cancel_job(id, reason);
  if (!cancelled.ok()) co_return Response::error(503, cancelled.error().message);
  const ChangeResult& change = cancelled.value();
  if (change.outcome == Outcome::not_found)
    co_return Response::error(404, "no job or envelope with id \"" + id + "\"");
  if (change.outcome != Outcome::applied) {
    co_return Response::error(409, "job \"" + change.job_id + "\" is already " +
                                       job_status_name(change.job_status) +
                                       "; a finished job cannot be cancelled");
  }
  json::object answer{{"id", change.job_id}, {"status", job_status_name(change.job_status)}};
  co_return Response::json(200, to_json_text(answer));
}

}  // namespace asya::gateway
