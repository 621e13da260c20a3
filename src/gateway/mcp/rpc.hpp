// Internal to gateway/mcp: JSON-RPC 2.0 messages and error codes, and what a dispatched request
// produced. Shared by mcp.cpp (the transport and the tools), tasks.cpp (MCP Tasks) and the A2A
// endpoint (a2a/a2a.cpp, JSON-RPC too).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>

namespace asya::gateway::mcp {

// JSON-RPC error codes.
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kServerError = -32000;
// The request was cancelled by the client (notifications/cancelled); the code LSP uses.
constexpr int kRequestCancelled = -32800;

inline boost::json::object rpc_error(const boost::json::value& id, int code,
                                     const std::string& message) {
  return boost::json::object{{"jsonrpc", "2.0"},
                             {"id", id},
                             {"error", boost::json::object{{"code", code}, {"message", message}}}};
}
inline boost::json::object rpc_result(const boost::json::value& id, boost::json::value result) {
  return boost::json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

// What a dispatched request produced: a result or an error (code + message).
struct RpcOutcome {
  std::optional<boost::json::object> result;
  int code = 0;
  std::string message;
  bool cancelled = false;  // the client cancelled the request: no result is reported
};
inline RpcOutcome ok_outcome(boost::json::object result) {
  return RpcOutcome{std::move(result), 0, "", false};
}
inline RpcOutcome error_outcome(int code, std::string message) {
  return RpcOutcome{std::nullopt, code, std::move(message), false};
}

}  // namespace asya::gateway::mcp
