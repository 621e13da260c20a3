// Resumable MCP SSE streams (SEP-1699, MCP 2025-11-25), the helpers of McpEndpoint::open_stream
// (GET /mcp, streams.cpp) and of the tools/call stream in mcp.cpp.
//
// A tools/call SSE answer starts, once its job exists, with a priming event: an event id, a
// `retry` field and empty data. With ASYA_GATEWAY_MCP_POLL_AFTER set, a 2025-11-25 session's
// stream is then closed after that long without the result; the client reconnects with
// `GET /mcp` and `Last-Event-ID` and gets the result there (keepalives until the job ends).
// The event id names the job and the JSON-RPC request id, so any replica sharing the job store
// resumes any stream: "<job id>/<step>/<hex of the request id's JSON text>", step `p` for the
// priming event and `r` for the result.
//
// GET /mcp without Last-Event-ID opens the session's standalone stream: a priming event, then
// keepalives until the client goes (the gateway sends no server-initiated requests).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace asya::gateway::mcp {

struct ResumePoint {
  std::string job_id;
  std::string request_id_json;  // the JSON-RPC id as JSON text (`7`, `"abc"`)
  bool after_result = false;    // the result was already delivered
};

// "<job id>/p/<hex>" (priming) or "<job id>/r/<hex>" (result).
std::string stream_event_id(const std::string& job_id, const std::string& request_id_json,
                            bool result);
// Parses an id made by stream_event_id; nullopt for anything else.
std::optional<ResumePoint> parse_stream_event_id(const std::string& event_id);

// "id: <id>\nretry: <ms>\ndata: \n\n".
std::string priming_event(const std::string& event_id, std::chrono::milliseconds retry);

}  // namespace asya::gateway::mcp
