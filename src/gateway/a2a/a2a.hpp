// Agent2Agent (A2A protocol 0.3, JSON-RPC transport) for the gateway's tools
// (docs/gateway.md, "A2A clients"):
//
// - GET /.well-known/agent-card.json: the agent card; every tool is a skill (id = tool name).
// - POST /a2a: JSON-RPC 2.0 with
//   - message/send: starts the skill named by message.metadata.skill (or params.metadata.skill;
//     not needed when there is one tool) with the arguments of the message's data part (or a
//     text part holding a JSON object, or plain text for a tool with one string parameter) and
//     returns a Task whose id is the job id; with configuration.blocking it returns once the job
//     is final (or the tool's timeout passed).
//   - message/stream: the same as SSE: the Task, a status-update (working) per progress report,
//     an artifact-update with the result, and a final status-update.
//   - tasks/get, tasks/resubscribe (SSE from the current state), tasks/cancel (cancels the job,
//     Service::cancel_job: the task becomes canceled; a task that already ended: -32002).
//   Errors: -32700 parse, -32600 invalid request, -32601 unknown method, -32602 invalid params
//   (names what is wrong), -32001 task not found, -32002 task not cancelable, -32003 push
//   notifications not supported.
// Job states map to task states: pending submitted, running working, succeeded completed, failed
// failed (cancelled canceled). A task's contextId is its job id (a client's contextId is not
// kept). Tokens: as every client endpoint (ASYA_GATEWAY_TOKEN), checked by Api.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <optional>
#include <string>

#include "common/result.hpp"
#include "gateway/api.hpp"

namespace asya::gateway::a2a {

// The A2A Task for a job (status, and the result as an artifact once succeeded).
boost::json::object task_json(const Job& job);
// "submitted", "working", "completed", "failed", "canceled".
std::string task_state(JobStatus status);
// The tool arguments a message carries (see the top of this file); the Error names what is
// wrong with the message.
Result<boost::json::object> message_arguments(const Tool& tool, const boost::json::object& message);

class Endpoint {
 public:
  Endpoint(Service& service, const ApiOptions& options);
  // GET /.well-known/agent-card.json and POST /a2a.
  boost::asio::awaitable<http::Response> handle(const http::Request& request);

 private:
  http::Response agent_card(const http::Request& request) const;
  boost::asio::awaitable<http::Response> rpc(const http::Request& request);
  // message/stream and tasks/resubscribe: SSE of the job's updates until it is final.
  http::Response stream(const boost::json::value& request_id, const std::string& job_id,
                        bool send_task_first);

  Service& service_;
  const ApiOptions& options_;
};

}  // namespace asya::gateway::a2a
