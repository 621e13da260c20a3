// The generic MCP features clients probe: logging/setLevel, completion/complete,
// resources/list, resources/templates/list, resources/read (job results as asya://jobs/{id}) and
// prompts/list (routes.yaml defines no prompts: always empty).
#include <boost/json.hpp>

#include <array>

#include "common/json_text.hpp"
#include "gateway/api.hpp"
#include "gateway/mcp/mcp.hpp"
#include "gateway/mcp/rpc.hpp"
#include "gateway/mcp/tasks.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using mcp::error_outcome;
using mcp::kInternalError;
using mcp::kInvalidParams;
using mcp::ok_outcome;
using mcp::RpcOutcome;

namespace {

// RFC 5424 severities in MCP's order; a session's level is an index into it.
constexpr std::array<const char*, 8> kLevels = {"debug", "info",     "notice", "warning",
                                                "error", "critical", "alert",  "emergency"};
// MCP's "Resource not found" error.
constexpr int kResourceNotFound = -32002;
constexpr std::string_view kJobUriPrefix = "asya://jobs/";

json::object job_resource(const Job& job) {
  return json::object{
      {"uri", std::string(kJobUriPrefix) + job.id},
      {"name", "job " + job.id},
      {"title", job.tool + " job " + job.id + " (" + job_status_name(job.status) + ")"},
      {"mimeType", "application/json"}};
}

json::object job_template() {
  return json::object{
      {"uriTemplate", std::string(kJobUriPrefix) + "{id}"},
      {"name", "job"},
      {"title", "A job of the gateway"},
      {"description", "The job as GET /envelopes/{id} shows it: status, progress, result or error"},
      {"mimeType", "application/json"}};
}

json::object completion(json::array values) {
  return json::object{
      {"completion", json::object{{"values", std::move(values)}, {"hasMore", false}}}};
}

}  // namespace

std::optional<int> McpEndpoint::log_level(const std::string& session_id) const {
  auto found = log_levels_.find(session_id);
  if (found == log_levels_.end()) return std::nullopt;
  return found->second;
}

const char* McpEndpoint::log_level_name(int level) {
  return kLevels.at(static_cast<std::size_t>(level));
}

awaitable<std::optional<RpcOutcome>> McpEndpoint::generic_method(const std::string& method,
                                                                 const json::object& params,
                                                                 const std::string& owner,
                                                                 const std::string& session_id) {
  if (method == "prompts/list") co_return ok_outcome(json::object{{"prompts", json::array{}}});
  if (method == "prompts/get") {
    co_return error_outcome(kInvalidParams, "Invalid params: this server has no prompts");
  }
  if (method == "logging/setLevel") {
    const json::value* level = params.if_contains("level");
    for (std::size_t i = 0; level && level->is_string() && i < kLevels.size(); ++i) {
      if (level->as_string() == kLevels[i]) {
        log_levels_[session_id] = static_cast<int>(i);
        co_return ok_outcome(json::object{});
      }
    }
    co_return error_outcome(kInvalidParams,
                            "Invalid params: params.level must be one of debug, info, notice, "
                            "warning, error, critical, alert, emergency");
  }
  if (method == "resources/templates/list") {
    co_return ok_outcome(json::object{{"resourceTemplates", json::array{job_template()}}});
  }
  if (method == "resources/list") {
    // The caller's tasks, newest pages by the same cursor as tasks/list.
    std::optional<TaskCursor> after;
    if (const json::value* cursor = params.if_contains("cursor"); cursor && !cursor->is_null()) {
      if (cursor->is_string()) after = mcp::decode_task_cursor(cursor->as_string());
      if (!after) co_return error_outcome(kInvalidParams, "Invalid params: unknown cursor");
    }
    auto work = [this, owner, after] {
      return service_.store().list_tasks(owner, after, mcp::kTasksPageSize);
    };
    auto page = co_await service_.blocking<Result<TaskPage>>(std::move(work));
    if (!page.ok()) co_return error_outcome(kInternalError, "job store: " + page.error().message);
    json::array resources;
    for (const auto& job : page.value().tasks) resources.push_back(job_resource(job));
    json::object result{{"resources", std::move(resources)}};
    if (page.value().next) result["nextCursor"] = mcp::encode_task_cursor(*page.value().next);
    co_return ok_outcome(std::move(result));
  }
  if (method == "resources/read") {
    const json::value* uri = params.if_contains("uri");
    if (!uri || !uri->is_string())
      co_return error_outcome(kInvalidParams, "Invalid params: params.uri (a string) is required");
    std::string text(uri->as_string());
    std::string id = text.rfind(kJobUriPrefix, 0) == 0 ? text.substr(kJobUriPrefix.size()) : "";
    // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
    Result<std::optional<Job>> job = std::optional<Job>();
    if (!id.empty()) {
      auto work = [this, id] { return service_.store().get(id); };
      job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    }
    if (!job.ok()) co_return error_outcome(kInternalError, "job store: " + job.error().message);
    // Another caller's task reads like a job that does not exist.
    if (!job.value() || job.value()->id != id ||
        (job.value()->task && job.value()->owner != owner)) {
      RpcOutcome missing =
          error_outcome(kResourceNotFound,
                        "Resource not found: \"" + text + "\" (asya://jobs/{id} with a job id)");
      co_return missing;
    }
    json::object content{{"uri", text},
                         {"mimeType", "application/json"},
                         {"text", to_json_text(api::job_json(*job.value()))}};
    co_return ok_outcome(json::object{{"contents", json::array{std::move(content)}}});
  }
  if (method == "completion/complete") {
    const json::value* ref = params.if_contains("ref");
    const json::value* argument = params.if_contains("argument");
    if (!ref || !ref->is_object() || !argument || !argument->is_object())
      co_return error_outcome(kInvalidParams,
                              "Invalid params: completion/complete needs params.ref and "
                              "params.argument ({name, value})");
    const json::value* type = ref->as_object().if_contains("type");
    const json::value* value = argument->as_object().if_contains("value");
    std::string prefix = value && value->is_string() ? std::string(value->as_string()) : "";
    if (type && *type == "ref/resource") {
      // Job ids of the caller's tasks for asya://jobs/{id}.
      std::optional<TaskCursor> none;
      auto work = [this, owner, none] { return service_.store().list_tasks(owner, none, 100); };
      auto page = co_await service_.blocking<Result<TaskPage>>(std::move(work));
      if (!page.ok()) co_return error_outcome(kInternalError, "job store: " + page.error().message);
      json::array values;
      for (const auto& job : page.value().tasks)
        if (job.id.rfind(prefix, 0) == 0) values.emplace_back(job.id);
      co_return ok_outcome(completion(std::move(values)));
    }
    // No prompts are defined, so a prompt's argument has nothing to complete.
    if (type && *type == "ref/prompt") co_return ok_outcome(completion(json::array{}));
    co_return error_outcome(kInvalidParams,
                            "Invalid params: params.ref.type must be ref/resource or ref/prompt");
  }
  co_return std::nullopt;
}

}  // namespace asya::gateway
