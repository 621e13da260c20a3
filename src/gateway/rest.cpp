// REST and sidecar endpoints (PROTOCOL §7, §8), authentication and request dispatch.
#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include <cctype>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/api.hpp"
#include "gateway/mcp/mcp.hpp"
#include "gateway/raw_json.hpp"

namespace asya::gateway {

namespace json = boost::json;
namespace asio = boost::asio;
using asio::awaitable;
using http::Response;

namespace api {

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

namespace {
std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}
std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  auto end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}
}  // namespace

bool origin_allowed(const ApiOptions& options, const std::string& origin) {
  if (origin.empty()) return true;
  for (const auto& allowed : options.allowed_origins) {
    if (allowed == "*" || lower(allowed) == lower(origin)) return true;
  }
  if (origin == "null") return false;
  for (const char* scheme : {"http://", "https://"}) {
    std::string s = scheme;
    std::string o = lower(origin);
    if (o.rfind(s, 0) != 0) continue;
    std::string host = o.substr(s.size());
    for (const char* local : {"localhost", "127.0.0.1", "[::1]"}) {
      std::string l = local;
      if (host == l || host.rfind(l + ":", 0) == 0) return true;
    }
  }
  return false;
}

bool host_allowed(const ApiOptions& options, const std::string& host_header) {
  std::string host = lower(trim(host_header));
  if (host.empty()) return true;  // HTTP/1.0 clients; browsers always send Host
  // Without the port: "[::1]:8080" -> "::1", "name:8080" -> "name".
  if (host.front() == '[') {
    auto close = host.find(']');
    host = close == std::string::npos ? host : host.substr(1, close - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  // DNS rebinding needs a name the attacker controls; an address needs no check.
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec || host == "localhost") return true;
  for (const auto& allowed : options.allowed_hosts) {
    if (allowed == "*" || lower(allowed) == host) return true;
  }
  return false;
}

bool is_json_content_type(const std::string& content_type) {
  std::string media = lower(trim(content_type.substr(0, content_type.find(';'))));
  return media == "application/json";
}

bool bearer_matches(const std::string& authorization, const std::string& token) {
  std::string header = trim(authorization);
  const std::string scheme = "bearer";
  if (header.size() <= scheme.size() || lower(header.substr(0, scheme.size())) != scheme ||
      (header[scheme.size()] != ' ' && header[scheme.size()] != '\t'))
    return false;
  std::string given = trim(header.substr(scheme.size()));
  if (given.size() != token.size()) return false;
  unsigned char diff = 0;  // constant time for equal lengths
  for (std::size_t i = 0; i < token.size(); ++i) diff |= given[i] ^ token[i];
  return diff == 0;
}

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
    return result;
  }
  json::value value = parse_or_null(job.result_json);
  json::object structured = value.is_object() ? value.as_object() : json::object{{"result", value}};
  return json::object{
      {"content", json::array{json::object{{"type", "text"}, {"text", to_json_text(value)}}}},
      {"structuredContent", std::move(structured)},
      {"isError", false}};
}

json::object async_result(const std::string& job_id, bool progress) {
  json::object info{{"job_id", job_id}, {"status_url", "/envelopes/" + job_id}};
  if (progress) info["stream_url"] = "/envelopes/" + job_id + "/stream";
  return json::object{
      {"content", json::array{json::object{{"type", "text"}, {"text", to_json_text(info)}}}},
      {"structuredContent", info},
      {"isError", false}};
}

}  // namespace api

namespace {

Response method_not_allowed(const std::string& method, const std::string& path,
                            const std::string& allow) {
  Response r = Response::error(
      405, "method " + method + " not allowed on " + path + " (allowed: " + allow + ")");
  r.headers.emplace_back("Allow", allow);
  return r;
}

// Parses a JSON object body; on failure sets `error` to a 400 response.
std::optional<json::object> parse_body(const std::string& body, Response& error) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    error = Response::error(400, "body is not valid JSON: " + ec.message());
    return std::nullopt;
  }
  if (!v.is_object()) {
    error =
        Response::error(400, "body must be a JSON object, got " + to_json_text(v).substr(0, 100));
    return std::nullopt;
  }
  return std::move(v.as_object());
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

}  // namespace

Api::Api(Service& service, ApiOptions options)
    : service_(service),
      options_(std::move(options)),
      mcp_(std::make_unique<McpEndpoint>(service, options_)) {}

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
    co_return method == "GET" ? Response::json(200, R"({"status":"ok"})")
                              : method_not_allowed(method, path, "GET");
  }
  if (path == "/readyz") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    std::string problem = co_await service_.readiness();
    if (!problem.empty()) co_return Response::error(503, problem);
    co_return Response::json(200, R"({"status":"ready"})");
  }
  if (path == "/metrics") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    Response r;
    r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = service_.metrics().serialize();
    co_return r;
  }

  auto parts = split_path(path);
  bool sidecar_endpoint = parts.size() >= 1 && parts[0] == "envelopes" && method == "POST";
  const std::string& token = sidecar_endpoint ? options_.internal_token : options_.token;
  if (!token.empty() && !api::bearer_matches(request.header("Authorization"), token)) {
    Response r = Response::error(
        401, std::string("missing or wrong bearer token: send `Authorization: Bearer <") +
                 (sidecar_endpoint ? "ASYA_GATEWAY_INTERNAL_TOKEN" : "ASYA_GATEWAY_TOKEN") + ">`");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    co_return r;
  }

  if (path == "/mcp") co_return co_await mcp_->handle(request);
  if (path == "/tools") {
    co_return method == "GET" ? list_tools() : method_not_allowed(method, path, "GET");
  }
  if (path == "/tools/call") {
    if (method != "POST") co_return method_not_allowed(method, path, "POST");
    co_return co_await call_tool_rest(request);
  }
  if (parts.size() == 1 && parts[0] == "envelopes") {
    if (method != "POST") co_return method_not_allowed(method, path, "POST");
    co_return co_await add_branch(request);
  }
  if (parts.size() == 2 && parts[0] == "envelopes") {
    if (method != "GET") co_return method_not_allowed(method, path, "GET");
    co_return co_await get_envelope(parts[1]);
  }
  if (parts.size() == 3 && parts[0] == "envelopes") {
    const std::string& id = parts[1];
    const std::string& action = parts[2];
    if (action == "stream") {
      if (method != "GET") co_return method_not_allowed(method, path, "GET");
      co_return co_await stream_envelope(request, id);
    }
    if (action == "active") {
      if (method != "GET") co_return method_not_allowed(method, path, "GET");
      co_return co_await envelope_active(id);
    }
    if (action == "progress") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await report_progress(request, id);
    }
    if (action == "final") {
      if (method != "POST") co_return method_not_allowed(method, path, "POST");
      co_return co_await report_final(request, id);
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
  if (!api::origin_allowed(options_, origin)) {
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

awaitable<Response> Api::call_tool_rest(const http::Request& request) {
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
  auto started = co_await service_.start_call(*tool, std::move(payload));
  if (!started.ok())
    co_return Response::json(200, to_json_text(api::error_result(started.error().message)));
  // `"async": true` in the body (used by `asya call`) answers the job id at once, as for an
  // async tool, so the caller can follow GET /envelopes/{id}/stream.
  const json::value* async_flag = body->if_contains("async");
  bool answer_now = tool->async || (async_flag && async_flag->is_bool() && async_flag->as_bool());
  if (answer_now)
    co_return Response::json(200, to_json_text(api::async_result(started.value(), tool->progress)));
  Service::UpdateCallback no_callback;
  auto job =
      co_await service_.wait_final(started.value(), Clock::now() + tool->timeout, no_callback);
  if (!job)
    co_return Response::error(500, "job " + started.value() + " disappeared from the job store");
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  service_.metrics().tool_call(tool->name, job_status_name(job->status), seconds);
  co_return Response::json(200, to_json_text(api::call_result(*job)));
}

awaitable<Response> Api::get_envelope(const std::string& id) {
  auto work_0 = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work_0));
  if (!job.ok()) co_return Response::error(503, job.error().message);
  if (!job.value()) co_return Response::error(404, "no job or envelope with id \"" + id + "\"");
  co_return Response::json(200, to_json_text(api::job_json(*job.value())));
}

awaitable<Response> Api::envelope_active(const std::string& id) {
  auto work_1 = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work_1));
  if (!job.ok()) co_return Response::error(503, job.error().message);
  if (!job.value()) co_return Response::error(404, "no job or envelope with id \"" + id + "\"");
  if (is_final(job.value()->status)) co_return Response::json(410, R"({"active":false})");
  co_return Response::json(200, R"({"active":true})");
}

awaitable<Response> Api::stream_envelope(const http::Request& request, const std::string& id) {
  auto work_2 = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work_2));
  if (!job.ok()) co_return Response::error(503, job.error().message);
  if (!job.value()) co_return Response::error(404, "no job or envelope with id \"" + id + "\"");
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
  std::string job_id = job.value()->id;
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

awaitable<Response> Api::report_progress(const http::Request& request, const std::string& id) {
  Response error;
  auto body = parse_body(request.body, error);
  if (!body) co_return error;
  ProgressReport report;
  report.envelope_id = id;
  const json::value* status = body->if_contains("status");
  if (!status || !status->is_string() ||
      (status->as_string() != "received" && status->as_string() != "processing" &&
       status->as_string() != "completed")) {
    co_return Response::error(
        400, "\"status\" must be \"received\", \"processing\" or \"completed\", got " +
                 (status ? to_json_text(*status) : std::string("nothing")));
  }
  report.state = status->as_string();
  const json::value* index = body->if_contains("current_actor_idx");
  if (!index || !index->is_int64() || index->as_int64() < 0) {
    co_return Response::error(400, "\"current_actor_idx\" must be a non-negative integer, got " +
                                       (index ? to_json_text(*index) : std::string("nothing")));
  }
  report.current_actor_idx = static_cast<int>(index->as_int64());
  if (const json::value* actors = body->if_contains("actors"); actors && !actors->is_null()) {
    if (!actors->is_array())
      co_return Response::error(400, "\"actors\" must be an array of actor names");
    for (const auto& a : actors->as_array()) {
      if (!a.is_string())
        co_return Response::error(400, "\"actors\" must be an array of actor names");
      report.actors.emplace_back(a.as_string());
    }
  }
  if (const json::value* message = body->if_contains("message"); message && message->is_string()) {
    report.message = message->as_string();
  }
  service_.metrics().report("progress");
  auto work_4 = [this, report] { return service_.store().progress(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_4));
  if (!result.ok()) co_return Response::error(503, result.error().message);
  if (result.value().outcome == Outcome::not_found)
    co_return Response::error(404, "no job knows envelope \"" + id + "\"");
  if (result.value().outcome == Outcome::applied)
    service_.notifier().notify(result.value().job_id, result.value().job_final);
  json::object answer{{"status", "ok"}, {"progress_percent", result.value().progress_percent}};
  if (result.value().outcome == Outcome::ignored) answer["ignored"] = true;
  co_return Response::json(200, to_json_text(answer));
}

awaitable<Response> Api::report_final(const http::Request& request, const std::string& id) {
  Response error;
  auto body = parse_body(request.body, error);
  if (!body) co_return error;
  FinalReport report;
  report.envelope_id = id;
  const json::value* status = body->if_contains("status");
  if (!status || !status->is_string() ||
      (status->as_string() != "succeeded" && status->as_string() != "failed")) {
    co_return Response::error(400, "\"status\" must be \"succeeded\" or \"failed\", got " +
                                       (status ? to_json_text(*status) : std::string("nothing")));
  }
  report.status = status->as_string() == "succeeded" ? JobStatus::succeeded : JobStatus::failed;
  // The result and error details are kept as the sidecar sent them (numbers keep their spelling).
  auto raw = raw_members(request.body);
  if (body->if_contains("result")) report.result_json = std::string(raw["result"]);
  if (const json::value* e = body->if_contains("error"); e && !e->is_null()) {
    report.error = e->is_string() ? std::string(e->as_string()) : to_json_text(*e);
  }
  if (const json::value* details = body->if_contains("error_details");
      details && !details->is_null()) {
    report.error_details_json = std::string(raw["error_details"]);
    if (report.error.empty() && details->is_object()) {
      if (const json::value* m = details->as_object().if_contains("message"); m && m->is_string()) {
        report.error = m->as_string();
      }
    }
  }
  if (const json::value* index = body->if_contains("current_actor_idx");
      index && index->is_int64()) {
    report.current_actor_idx = static_cast<int>(index->as_int64());
  }
  service_.metrics().report("final");
  auto work_5 = [this, report] { return service_.store().finish(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work_5));
  if (!result.ok()) co_return Response::error(503, result.error().message);
  switch (result.value().outcome) {
    case Outcome::not_found:
      co_return Response::error(404, "no job knows envelope \"" + id + "\"");
    case Outcome::conflict:
      co_return Response::error(409, "envelope \"" + id +
                                         "\" is already final with a different status; a final "
                                         "status never changes");
    case Outcome::applied:
      service_.notifier().notify(result.value().job_id);
      break;
    default:
      break;
  }
  co_return Response::json(200, R"({"status":"ok"})");
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

}  // namespace asya::gateway
