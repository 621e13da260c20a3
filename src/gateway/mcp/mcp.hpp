// MCP Streamable HTTP at /mcp (protocol versions 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25).
//
// - POST carries one JSON-RPC message (or, for 2025-03-26 clients, a batch). `initialize` creates
//   a session (Mcp-Session-Id response header); every later request must send that header:
//   missing -> 400, unknown or ended -> 404. Notifications and responses get 202. With several
//   client tokens a session belongs to the caller (token) that opened it: another caller's
//   requests with its id (POST, GET, DELETE) are answered as for an unknown session (404).
// - DELETE ends the session; a session unused for ASYA_GATEWAY_MCP_SESSION_TIMEOUT ends too.
//   Sessions are kept in the job store, so every gateway replica sharing the database (or the
//   SQLite file) accepts them.
//   GET opens the session's standalone SSE stream, or with Last-Event-ID resumes a tools/call
//   stream (streams.hpp).
// - Batches (JSON arrays) only in sessions of protocol version 2025-03-26, the one version that
//   has them; otherwise -32600.
// - MCP-Protocol-Version, when sent, must be a supported version (else 400); absent, the version
//   negotiated at initialize is assumed.
// - logging/setLevel, completion/complete, resources/*, prompts/* are answered by
//   GenericFeatures (generic.hpp).
// - Host, Origin and Content-Type are checked for every endpoint by Api (docs/gateway.md,
//   Security).
// - notifications/cancelled for a tools/call in progress (on this replica) ends that request
//   (an SSE response stream ends without the result, a JSON response is a -32800 error) and
//   cancels its job (Service::cancel_job). A client that merely disconnects cancels nothing: the
//   job runs on and its result stays readable (GET /envelopes/{id}, tasks/result).
// - MCP Tasks (2025-11-25 sessions; mcp/tasks.hpp): the `tasks` capability for tools/call; each
//   tool's execution.taskSupport in tools/list (routes.yaml task_support); tools/call with a
//   `task` parameter answers a CreateTaskResult at once; tasks/get, tasks/result (waits for the
//   end; as an SSE stream with notifications/tasks/status when the client accepts one),
//   tasks/list (the caller's tasks, paginated), tasks/cancel.
// - tools/call answers as an SSE stream when the request carries params._meta.progressToken and
//   the client accepts text/event-stream (with a `: keepalive` comment after
//   ASYA_GATEWAY_KEEPALIVE without a notification); otherwise as JSON. The stream carries
//   notifications/progress only for a tool with `progress: true` (per tool or in `defaults`);
//   for any other tool only keepalives and the result.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gateway/api.hpp"
#include "gateway/mcp/generic.hpp"

namespace asya::gateway {

namespace mcp {
struct RpcOutcome;
}

class McpEndpoint {
 public:
  McpEndpoint(Service& service, const ApiOptions& options);
  boost::asio::awaitable<http::Response> handle(const http::Request& request);

 private:
  // Looks the session up in the job store (shared by every replica) and marks it used. Another
  // caller's session (several client tokens) reads as unknown and is not touched.
  boost::asio::awaitable<Result<SessionUse>> use_session(const std::string& id,
                                                         const Caller& caller);
  // A new session id: a UUID, then (with client tokens) "." and the fingerprint of the caller's
  // token, so the session belongs to the caller that opened it.
  static std::string new_session_id(const Caller& caller);
  // Whether `caller` may use session `id`: always with one client token or none (every caller is
  // the same); with several, only the caller that opened it.
  static bool may_use_session(const std::string& id, const Caller& caller);
  // Removes expired sessions from the store and sets the asya_gateway_mcp_sessions gauge to the
  // number left (a store failure is logged).
  boost::asio::awaitable<void> sweep_sessions();
  boost::asio::awaitable<http::Response> post(const http::Request& request);
  boost::asio::awaitable<http::Response> end_session(const http::Request& request);
  // notifications/cancelled: marks the session's request with params.requestId as cancelled
  // (when it runs on this replica) and wakes it; other notifications are ignored.
  void cancel(const std::string& session_id, const boost::json::object& notification);

  // A tools/call in progress; `cancelled` stops its wait and suppresses its result.
  struct InFlight {
    bool cancelled = false;
    std::string reason;
    std::string job_id;  // set once the job is started
    // The SSE answer was closed for polling (ASYA_GATEWAY_MCP_POLL_AFTER): the wait ends without
    // a result; the client resumes with GET (streams.hpp).
    bool detached = false;
    // Called once the job is started (an SSE answer sends its priming event then).
    std::function<boost::asio::awaitable<void>(const std::string& job_id)> on_started;
  };
  // GET /mcp (streams.cpp).
  boost::asio::awaitable<http::Response> open_stream(const http::Request& request);
  // Marks the flight detached after `after` and wakes its wait (streams.cpp).
  boost::asio::awaitable<void> detach_after(std::shared_ptr<InFlight> flight,
                                            std::chrono::milliseconds after);

  // Sends one notification on the request's SSE stream (an empty object: a keepalive comment).
  using Notify = std::function<boost::asio::awaitable<void>(const boost::json::object&)>;

  // ---- MCP Tasks (tasks.cpp) ----
  // tools/call with `task`: starts the job as a task of `owner` and answers CreateTaskResult;
  // -32602 for a malformed `task` parameter, -32603 when the job cannot start.
  boost::asio::awaitable<mcp::RpcOutcome> start_task(const Tool& tool,
                                                     const boost::json::value& task_parameter,
                                                     std::string payload, const std::string& owner);
  // tasks/get, tasks/result, tasks/list, tasks/cancel; nullopt for any other method. A task id
  // that is unknown, not a task or another owner's is -32602; so is cancelling a finished task
  // and a tasks/list cursor this server did not give.
  boost::asio::awaitable<std::optional<mcp::RpcOutcome>> task_method(
      const std::string& method, const boost::json::object& params, const std::string& owner,
      Notify notify, std::shared_ptr<InFlight> flight);
  struct FoundTask;

  boost::asio::awaitable<FoundTask> find_task(const boost::json::object& params,
                                              const std::string& owner);

  Service& service_;
  const ApiOptions& options_;
  mcp::GenericFeatures generic_;  // logging, completion, resources, prompts (generic.hpp)
  // Requests in progress by session id + "\n" + JSON id; only touched on the io thread.
  using InFlightMap = std::map<std::string, std::shared_ptr<InFlight>>;
  std::shared_ptr<InFlightMap> in_flight_ = std::make_shared<InFlightMap>();
  std::chrono::steady_clock::time_point next_sweep_{};  // only touched on the io thread
};

}  // namespace asya::gateway
