// The gateway's HTTP API: REST and sidecar endpoints (PROTOCOL §7, §8, rest.cpp; shared checks in
// api_security.cpp, shared bodies in api_json.cpp) and MCP Streamable HTTP at /mcp (mcp/). One
// object answers every request.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/actors/actor_monitor.hpp"
#include "gateway/http/http.hpp"
#include "gateway/service.hpp"

namespace asya::gateway {

struct ApiOptions {
  // ASYA_GATEWAY_TOKEN: required on client endpoints when set; one token or several separated by
  // commas (each identifies one caller: MCP tasks/list lists only that caller's tasks).
  std::string token;
  std::string
      internal_token;  // ASYA_GATEWAY_INTERNAL_TOKEN: required on sidecar endpoints when set
  // Origins accepted (on every endpoint) besides http(s)://localhost, 127.0.0.1 and [::1] (any
  // port); "*" accepts any. A request without Origin (not from a browser) is always accepted.
  std::vector<std::string> allowed_origins;
  // Host header names accepted besides IP literals and localhost (ASYA_GATEWAY_ALLOWED_HOSTS);
  // "*" accepts any, which main() sets when the gateway listens on a wildcard address and the
  // variable is not set. Against DNS rebinding.
  std::vector<std::string> allowed_hosts;
  // SSE `: keepalive` comment after this long without an event (REST streams and MCP tools/call
  // streams).
  std::chrono::milliseconds keepalive{std::chrono::seconds(15)};
  // An MCP session unused this long ends (later requests with its id get 404).
  std::chrono::milliseconds mcp_session_timeout{std::chrono::hours(1)};
  // ASYA_GATEWAY_MCP_POLL_AFTER: a tools/call SSE answer in a 2025-11-25 session is closed this
  // long after its priming event; the client resumes with GET /mcp and Last-Event-ID (SEP-1699).
  // 0: streams stay open to the end.
  std::chrono::milliseconds mcp_poll_after{0};
  // ASYA_GATEWAY_INSTANCE_ID: repeated as "instance" in the /healthz and /readyz answers, so the
  // process that started this gateway knows it reached this one (empty: not included).
  std::string instance_id;
  // ASYA_GATEWAY_TRACE_MAX_SPANS, ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES and
  // ASYA_GATEWAY_TRACE_RETENTION: how many spans of its jobs the gateway keeps, how large, and how
  // long (POST /v1/traces).
  SpanLimits span_limits;
  // GET /actors sampling (actors/actor_monitor.hpp); status_file from ASYA_GATEWAY_STATUS_FILE.
  ActorMonitorOptions actor_monitor;
};

class McpEndpoint;
namespace a2a {
class Endpoint;
}

class Api {
 public:
  // Starts sampling the actors (GET /actors) on the service's io_context.
  Api(Service& service, ApiOptions options);
  ~Api();

  boost::asio::awaitable<http::Response> handle(http::Request request);

 private:
  boost::asio::awaitable<http::Response> route(const http::Request& request);
  // 403 for a Host or Origin that is not allowed, 415 for a POST whose body is not declared
  // application/json; nullopt when the request may go on.
  std::optional<http::Response> refuse_cross_site(const http::Request& request) const;
  // The client endpoints take the caller (Caller, service.hpp): a job started records its owner,
  // and another caller's job is answered exactly like an unknown id (404) when callers are
  // isolated, so its id is not even confirmed.
  boost::asio::awaitable<http::Response> call_tool_rest(const http::Request& request,
                                                        const Caller& caller);
  // The job of `id` (a job or branch envelope id) when it exists and `caller` may see it; else
  // the 404 (or 503) to answer. Shared by the per-job client endpoints.
  struct FoundJob {
    std::optional<Job> job;  // set when found and visible to the caller
    http::Response error;    // else the answer: 404 (unknown or another caller's) or 503
  };
  boost::asio::awaitable<FoundJob> find_job(const std::string& id, const Caller& caller);
  boost::asio::awaitable<http::Response> get_envelope(const std::string& id, const Caller& caller);
  boost::asio::awaitable<http::Response> stream_envelope(const http::Request& request,
                                                         const std::string& id,
                                                         const Caller& caller);
  boost::asio::awaitable<http::Response> envelope_active(const std::string& id,
                                                         const Caller& caller);
  boost::asio::awaitable<http::Response> report_progress(const http::Request& request,
                                                         const std::string& id);
  boost::asio::awaitable<http::Response> report_final(const http::Request& request,
                                                      const std::string& id);
  // POST /envelopes/reports (a sidecar endpoint, rest_reports.cpp): a JSON array of progress and
  // final reports applied in order in one store transaction; answers 200 {"results": [...]}, one
  // per report, each with the status and answer its single endpoint would give (PROTOCOL §7); a
  // malformed array is a 400 for the whole request.
  boost::asio::awaitable<http::Response> report_batch(const http::Request& request);
  boost::asio::awaitable<http::Response> add_branch(const http::Request& request);
  // POST /envelopes/{id}/joined (a sidecar endpoint, rest_join.cpp): {"group", "count",
  // "children": [ids], "failed"?, "missing"?} from a join actor (PROTOCOL §4a, §7).
  boost::asio::awaitable<http::Response> report_joined(const http::Request& request,
                                                       const std::string& id);
  // POST /envelopes/{id}/check (a sidecar endpoint): {"job_status", "cancelled"}; {"cancelled":
  // false} for an id no job knows. A body {"progress": <progress report>} is applied after the
  // answer (not awaited) and the answer then says "progress": "accepted".
  // Applies reports carried by a check (in order, one store call) and wakes their waiters; runs
  // on the blocking pool after the check was answered.
  void apply_carried(const std::vector<SidecarReport>& reports);
  boost::asio::awaitable<http::Response> check_envelope(const http::Request& request,
                                                        const std::string& id);
  // POST /envelopes/{id}/cancel (a client endpoint): cancels the job; 409 when it is final.
  boost::asio::awaitable<http::Response> cancel_envelope(const http::Request& request,
                                                         const std::string& id,
                                                         const Caller& caller);
  http::Response list_tools();
  // POST /v1/traces (rest_traces.cpp): OTLP/HTTP JSON spans of this gateway's jobs, kept in the
  // job store; answers an ExportTraceServiceResponse (partialSuccess names rejected spans).
  boost::asio::awaitable<http::Response> receive_traces(const http::Request& request);
  // GET /envelopes/{id}/trace (rest_traces.cpp): the job's spans ordered by start.
  boost::asio::awaitable<http::Response> get_trace(const std::string& id, const Caller& caller);
  // GET /envelopes?status=&tool=&limit=&cursor= (rest_jobs.cpp): recent jobs, newest first (only
  // the caller's own when callers are isolated).
  boost::asio::awaitable<http::Response> list_envelopes(const http::Request& request,
                                                        const Caller& caller);

  Service& service_;
  ApiOptions options_;
  std::unique_ptr<McpEndpoint> mcp_;
  std::unique_ptr<a2a::Endpoint> a2a_;    // /a2a and the agent card (a2a/a2a.hpp)
  std::unique_ptr<ActorMonitor> actors_;  // GET /actors
};

// Shared by REST and MCP.
namespace api {

// Whether a request with this Origin header may be served: no Origin, a localhost origin, or one
// listed in options.allowed_origins.
bool origin_allowed(const ApiOptions& options, const std::string& origin);
// Whether `origin` is the origin of the page the request came from on this very server:
// "http(s)://" + the Host header, for a Host that is an IP literal, localhost or a name listed in
// options.allowed_hosts (not merely accepted by "*": a DNS-rebinding page would pass that). So
// the dashboard works on any name the gateway is reached by, without ALLOWED_ORIGINS.
bool same_origin(const ApiOptions& options, const std::string& origin, const std::string& host);
// Whether a request with this Host header may be served: none, an IP literal, localhost, or a
// name in options.allowed_hosts (port ignored, case-insensitive).
bool host_allowed(const ApiOptions& options, const std::string& host);
// Whether a Content-Type header names application/json (parameters such as charset allowed).
bool is_json_content_type(const std::string& content_type);
// Whether an Authorization header carries `Bearer <token>` (scheme case-insensitive, RFC 7235);
// compared in constant time.
bool bearer_matches(const std::string& authorization, const std::string& token);
// Whether it carries one of the comma-separated `tokens`.
bool bearer_matches_any(const std::string& authorization, const std::string& tokens);
// The distinct non-empty tokens of a comma-separated list (ASYA_GATEWAY_TOKEN).
std::size_t distinct_token_count(const std::string& tokens);
// The owner a job started with this Authorization header records: "" when `tokens_configured` is
// false (every caller is the same), else "token:" + a 64-bit FNV-1a fingerprint (hex) of the
// bearer token (the store keeps the fingerprint, never the token). Call it only for a header
// already checked against the tokens.
std::string token_owner(const std::string& authorization, bool tokens_configured);
// The caller of a client request (service.hpp, Caller): its owner, and isolated when
// options.token lists two or more distinct tokens.
Caller caller_of(const ApiOptions& options, const std::string& authorization);

// GET /envelopes/{id} body (PROTOCOL §8).
boost::json::object job_json(const Job& job);
// The `data` of an SSE update event (PROTOCOL §8).
boost::json::object update_json(const std::string& job_id, const Update& update);
// "id: <seq>\nevent: update\ndata: <json>\n\n".
std::string sse_event(const std::string& job_id, const Update& update);
// MCP CallToolResult for a final job: structuredContent (the result; a non-object result is
// wrapped as {"result": value}) plus one text item; isError with the error text on failure.
boost::json::object call_result(const Job& job);
boost::json::object error_result(const std::string& message);
// The `_meta` key naming the job of a tool call answer (MCP CallToolResult, REST body), so a
// client can follow it (GET /envelopes/{id}, /trace); REST also sends the Asya-Job-Id header.
inline constexpr const char* kJobIdMetaKey = "asya.sh/job_id";
// {"asya.sh/job_id": job_id}.
boost::json::object job_meta(const std::string& job_id);
// The answer of an async tool: text JSON {"job_id", "status_url", "stream_url"}; "stream_url"
// (GET /envelopes/{id}/stream) is advertised only for a tool with `progress: true`, as in the
// published design (the endpoint itself serves every job).
boost::json::object async_result(const std::string& job_id, bool progress);

// Whether a value a client sent to name a job, task or tool (a cursor's id, a `tool` filter) can
// name one: valid UTF-8 without control characters. Others are refused with 400 before a lookup:
// PostgreSQL refuses invalid UTF-8 in a parameter (the error would read as the store failing)
// and cuts text at a NUL.
bool plain_text(std::string_view text);

// Parses a request body that must be a JSON object; on failure sets `error` to a 400 response
// saying why (not JSON, or what it was instead).
std::optional<boost::json::object> parse_body(const std::string& body, http::Response& error);

}  // namespace api
}  // namespace asya::gateway
