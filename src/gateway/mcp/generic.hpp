// The generic MCP features clients probe besides tools (docs/gateway.md, "Generic MCP features"):
//
// - logging/setLevel: the session's level; from then on the session's tools/call streams carry
//   notifications/message for the job's steps (debug: an actor received or is processing the
//   envelope; info: an actor completed, the job succeeded; warning: cancelled; error: failed).
//   No level set: no log notifications (only progress, as before).
// - completion/complete: values for `ref/resource` asya://jobs/{id} (argument `id`: the ids of
//   the session's recent jobs with the typed prefix), for `ref/tool` (an Asya extension: the
//   enum values of the tool's parameter with the typed prefix) and `ref/prompt` (no prompts: no
//   values).
// - resources/list (the session's recent jobs as asya://jobs/{id}), resources/templates/list
//   (asya://jobs/{id}), resources/read (any job of the job store but another caller's MCP task:
//   its GET /envelopes/{id} document as application/json; -32002 for an unknown job).
// - prompts/list (empty: routes.yaml defines no prompts), prompts/get (-32602).
//
// The level and the recent jobs are per session and kept in memory on the replica that served the
// session's requests (at most kMaxRecentJobs per session, kMaxSessions sessions); resources/read
// and the job ids typed in full work on every replica (the job store is shared).
//
// Threading: every method runs on the gateway's io thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <deque>
#include <map>
#include <optional>
#include <string>

#include "gateway/service.hpp"

namespace asya::gateway::mcp {

// A generic method's answer: the result, or a JSON-RPC error (code + message).
struct GenericAnswer {
  std::optional<boost::json::object> result;
  int code = 0;
  std::string message;
};

// MCP log levels, least severe first (RFC 5424 order).
enum class LogLevel { debug, info, notice, warning, error, critical, alert, emergency };

// Parses "debug" ... "emergency"; nullopt for anything else.
std::optional<LogLevel> parse_log_level(std::string_view name);
const char* log_level_name(LogLevel level);
// The level at which an update of a job is logged (see the top of this file).
LogLevel update_log_level(const Update& update);

class GenericFeatures {
 public:
  static constexpr std::size_t kMaxRecentJobs = 100;
  static constexpr std::size_t kMaxSessions = 4096;

  explicit GenericFeatures(Service& service);

  // Adds logging, completions, resources and prompts to an initialize result's capabilities.
  static void add_capabilities(boost::json::object& capabilities);

  // Answers `method` when it is one of the generic methods; nullopt for any other method.
  // `caller` is who asks (Caller, service.hpp): another owner's task reads as unknown, and so
  // does any job of another owner when callers are isolated (several client tokens).
  boost::asio::awaitable<std::optional<GenericAnswer>> answer(const std::string& session_id,
                                                              const Caller& caller,
                                                              const std::string& method,
                                                              const boost::json::object& params);

  // Records a job the session started (for resources/list and job id completion).
  void remember_job(const std::string& session_id, const std::string& job_id,
                    const std::string& tool);
  // Whether the session asked for log notifications (logging/setLevel).
  bool logging(const std::string& session_id) const;
  // notifications/message for the update when the session's level lets it through.
  std::optional<boost::json::object> log_message(const std::string& session_id,
                                                 const std::string& job_id,
                                                 const Update& update) const;
  // Forgets a session (DELETE /mcp).
  void forget(const std::string& session_id) { sessions_.erase(session_id); }

 private:
  struct RecentJob {
    std::string id;
    std::string tool;
  };
  struct SessionState {
    std::optional<LogLevel> level;
    std::deque<RecentJob> recent_jobs;  // newest first
  };
  SessionState& session(const std::string& session_id);
  GenericAnswer complete(const std::string& session_id, const boost::json::object& params) const;
  boost::asio::awaitable<GenericAnswer> read_resource(const boost::json::object& params,
                                                      const Caller& caller);

  Service& service_;
  std::map<std::string, SessionState> sessions_;
};

}  // namespace asya::gateway::mcp
