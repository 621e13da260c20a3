// MCP Tasks (2025-11-25): the pure helpers of tasks.hpp and McpEndpoint's task methods.
#include "gateway/mcp/tasks.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cstdio>

#include "common/log.hpp"
#include "gateway/api.hpp"
#include "gateway/mcp/mcp.hpp"
#include "gateway/mcp/rpc.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;

namespace mcp {

namespace {
constexpr const char* kRelatedTask = "io.modelcontextprotocol/related-task";
constexpr std::string_view kCursorPrefix = "c1.";
}  // namespace

namespace {
// notifications/tasks/status (outside the coroutine lambdas: GCC 12 miscompiles braced
// string-literal initializers inside them).
json::object task_status_notification(json::object task) {
  return json::object{
      {"jsonrpc", "2.0"}, {"method", "notifications/tasks/status"}, {"params", std::move(task)}};
}
// _meta of a tasks/result answer: {"io.modelcontextprotocol/related-task": {"taskId": id}}.
json::object related_task_meta(const std::string& task_id) {
  return json::object{{kRelatedTask, json::object{{"taskId", task_id}}}};
}
}  // namespace

const char* task_status(JobStatus status) {
  switch (status) {
    case JobStatus::succeeded:
      return "completed";
    case JobStatus::failed:
      return "failed";
    case JobStatus::cancelled:
      return "cancelled";
    case JobStatus::pending:
    case JobStatus::running:
      break;
  }
  return "working";
}

std::string task_status_message(const Job& job) {
  if (is_final(job.status) || job.actors.empty()) return job.message;
  int count = static_cast<int>(job.actors.size());
  int index = std::clamp(job.current_actor_idx, 0, count - 1);
  std::string step = "step " + std::to_string(index + 1) + " of " + std::to_string(count) + ": " +
                     job.actors[index];
  if (job.status == JobStatus::pending) return step + ": queued";
  return step + ": " + job.message;
}

json::object task_json(const Job& job) {
  json::object task{{"taskId", job.id},
                    {"status", task_status(job.status)},
                    {"statusMessage", task_status_message(job)},
                    {"createdAt", format_time(job.created_at)},
                    {"lastUpdatedAt", format_time(job.updated_at)},
                    {"pollInterval", kTaskPollInterval.count()}};
  if (job.ttl_ms)
    task["ttl"] = *job.ttl_ms;
  else
    task["ttl"] = nullptr;
  return task;
}

Result<std::optional<std::int64_t>> parse_task_parameter(const json::value& task) {
  if (!task.is_object()) {
    return Error{"params.task must be an object such as {\"ttl\": 60000}, got " +
                 json::serialize(task).substr(0, 100)};
  }
  const json::value* ttl = task.as_object().if_contains("ttl");
  if (!ttl || ttl->is_null()) return std::optional<std::int64_t>();
  if (ttl->is_uint64() && ttl->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return std::optional<std::int64_t>(static_cast<std::int64_t>(ttl->as_uint64()));
  if (ttl->is_int64() && ttl->as_int64() >= 0) return std::optional<std::int64_t>(ttl->as_int64());
  return Error{"params.task.ttl must be a non-negative integer number of milliseconds, got " +
               json::serialize(*ttl).substr(0, 100)};
}

std::string encode_task_cursor(const TaskCursor& cursor) {
  // "<created_ms>.<order>:<task id>" (TaskCursor); earlier versions gave "<created_ms>:<task id>",
  // still accepted.
  std::string plain = std::to_string(cursor.created_ms);
  if (cursor.order) {
    plain += '.';
    plain += std::to_string(*cursor.order);
  }
  plain += ":" + cursor.id;
  std::string out(kCursorPrefix);
  char hex[3];
  for (unsigned char c : plain) {
    std::snprintf(hex, sizeof hex, "%02x", c);
    out += hex;
  }
  return out;
}

std::optional<TaskCursor> decode_task_cursor(std::string_view text) {
  if (text.substr(0, kCursorPrefix.size()) != kCursorPrefix) return std::nullopt;
  text.remove_prefix(kCursorPrefix.size());
  if (text.empty() || text.size() % 2 != 0 || text.size() > 2048) return std::nullopt;
  std::string plain;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    int value = 0;
    for (char c : text.substr(i, 2)) {
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + digit;
    }
    plain += static_cast<char>(value);
  }
  auto colon = plain.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == plain.size()) return std::nullopt;
  // A non-negative number (digits only) in [from, to), or nullopt.
  auto number = [&plain](std::size_t from, std::size_t to) -> std::optional<std::int64_t> {
    std::int64_t value = 0;
    const char* first = plain.data() + from;
    const char* last = plain.data() + to;
    if (first == last || *first < '0' || *first > '9') return std::nullopt;
    auto [end, ec] = std::from_chars(first, last, value);
    if (ec != std::errc() || end != last) return std::nullopt;
    return value;
  };
  const std::size_t dot = plain.find('.');
  const bool ordered = dot < colon;
  auto created_ms = number(0, ordered ? dot : colon);
  if (!created_ms) return std::nullopt;
  TaskCursor cursor{*created_ms, plain.substr(colon + 1)};
  // Task ids are job ids (text): see api::plain_text.
  if (!api::plain_text(cursor.id)) return std::nullopt;
  if (ordered) {
    cursor.order = number(dot + 1, colon);
    if (!cursor.order) return std::nullopt;
  }
  return cursor;
}

std::string task_owner(const std::string& authorization_header, bool tokens_configured) {
  return api::token_owner(authorization_header, tokens_configured);
}

}  // namespace mcp

using mcp::error_outcome;
using mcp::kInternalError;
using mcp::kInvalidParams;
using mcp::ok_outcome;
using mcp::RpcOutcome;

struct McpEndpoint::FoundTask {
  std::optional<Job> job;  // set when found
  RpcOutcome error;        // else the error to answer
};

awaitable<RpcOutcome> McpEndpoint::start_task(const Tool& tool, const json::value& task_parameter,
                                              std::string payload, const std::string& owner) {
  auto ttl = mcp::parse_task_parameter(task_parameter);
  if (!ttl.ok()) co_return error_outcome(kInvalidParams, "Invalid params: " + ttl.error().message);
  CallOrigin origin{owner, true, ttl.value()};
  auto started = co_await service_.start_call(tool, std::move(payload), origin);
  if (!started.ok())
    co_return error_outcome(kInternalError, "the task could not start: " + started.error().message);
  std::string id = started.value();
  auto work = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
  if (!job.ok() || !job.value())
    co_return error_outcome(kInternalError, "task " + id + " started but cannot be read back: " +
                                                (job.ok() ? "gone" : job.error().message));
  spdlog::info("gateway: MCP task {} started (tool {})", id, tool.name);
  co_return ok_outcome(json::object{{"task", mcp::task_json(*job.value())}});
}

awaitable<McpEndpoint::FoundTask> McpEndpoint::find_task(const json::object& params,
                                                         const std::string& owner) {
  FoundTask found;
  const json::value* id = params.if_contains("taskId");
  if (!id || !id->is_string() || id->as_string().empty()) {
    found.error =
        error_outcome(kInvalidParams, "Invalid params: params.taskId (a string) is required");
    co_return found;
  }
  std::string task_id(id->as_string());
  auto work = [this, task_id] { return service_.store().get(task_id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
  if (!job.ok()) {
    found.error = error_outcome(kInternalError, "job store: " + job.error().message);
    co_return found;
  }
  // Another caller's task is reported exactly like a task that does not exist.
  if (!job.value() || !job.value()->task || job.value()->id != task_id ||
      job.value()->owner != owner) {
    found.error = error_outcome(kInvalidParams,
                                "Invalid params: unknown task \"" + task_id +
                                    "\" (task ids come from tools/call with a `task` parameter; "
                                    "tasks/list lists yours)");
    co_return found;
  }
  found.job = std::move(*job.value());
  co_return found;
}

awaitable<std::optional<RpcOutcome>> McpEndpoint::task_method(const std::string& method,
                                                              const json::object& params,
                                                              const std::string& owner,
                                                              Notify notify,
                                                              std::shared_ptr<InFlight> flight) {
  if (method == "tasks/list") {
    std::optional<TaskCursor> after;
    if (const json::value* cursor = params.if_contains("cursor"); cursor && !cursor->is_null()) {
      if (cursor->is_string()) after = mcp::decode_task_cursor(cursor->as_string());
      if (!after) {
        co_return error_outcome(kInvalidParams,
                                "Invalid params: params.cursor " +
                                    json::serialize(*cursor).substr(0, 100) +
                                    " is not a cursor this server gave (pass a nextCursor of an "
                                    "earlier tasks/list answer, or none for the first page)");
      }
    }
    auto work = [this, owner, after] {
      return service_.store().list_tasks(owner, after, mcp::kTasksPageSize);
    };
    auto page = co_await service_.blocking<Result<TaskPage>>(std::move(work));
    if (!page.ok()) co_return error_outcome(kInternalError, "job store: " + page.error().message);
    json::array tasks;
    for (const auto& job : page.value().tasks) tasks.push_back(mcp::task_json(job));
    json::object result{{"tasks", std::move(tasks)}};
    if (page.value().next) result["nextCursor"] = mcp::encode_task_cursor(*page.value().next);
    co_return ok_outcome(std::move(result));
  }
  if (method != "tasks/get" && method != "tasks/result" && method != "tasks/cancel")
    co_return std::nullopt;

  FoundTask found = co_await find_task(params, owner);
  if (!found.job) co_return std::move(found.error);
  Job job = std::move(*found.job);
  if (method == "tasks/get") co_return ok_outcome(mcp::task_json(job));

  if (method == "tasks/cancel") {
    if (is_final(job.status)) {
      co_return error_outcome(kInvalidParams, std::string("Invalid params: task \"") + job.id +
                                                  "\" is already " + mcp::task_status(job.status) +
                                                  " and cannot be cancelled");
    }
    const std::string reason = "cancelled by the client (tasks/cancel)";
    auto cancelled = co_await service_.cancel_job(job.id, reason);
    if (!cancelled.ok())
      co_return error_outcome(kInternalError, "job store: " + cancelled.error().message);
    auto work = [this, id = job.id] { return service_.store().get(id); };
    auto now = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    if (!now.ok() || !now.value())
      co_return error_outcome(kInternalError, "task " + job.id + " cannot be read back");
    if (now.value()->status != JobStatus::cancelled) {
      // It ended on its own just before.
      co_return error_outcome(
          kInvalidParams, std::string("Invalid params: task \"") + job.id + "\" is already " +
                              mcp::task_status(now.value()->status) + " and cannot be cancelled");
    }
    co_return ok_outcome(mcp::task_json(*now.value()));
  }

  // tasks/result: waits for the end (the job's own deadline bounds it), sending
  // notifications/tasks/status on the response stream when the client listens to one.
  std::string last_message;
  Service::UpdateCallback on_update;
  Service::IdleCallback on_idle;
  const std::string task_id = job.id;
  if (notify) {
    // Built from each update (not from a fresh read of the job, which may already be further on),
    // so every step the job went through is told.
    on_update = [&](const Update& update) -> awaitable<void> {
      Job at = job;
      at.status = update.status;
      at.current_actor_idx = update.current_actor_idx;
      at.message = update.message;
      at.updated_at = update.timestamp;
      json::object params = mcp::task_json(at);
      std::string text =
          json::serialize(params.at("status")) + "\n" + json::serialize(params.at("statusMessage"));
      if (text == last_message) co_return;
      last_message = text;
      json::object notification = mcp::task_status_notification(std::move(params));
      co_await notify(notification);
    };
    on_idle = [&]() -> awaitable<void> {
      json::object keepalive;  // empty: written as an SSE comment
      co_await notify(keepalive);
    };
  }
  std::function<bool()> stop;
  if (flight) stop = [flight] { return flight->cancelled; };
  auto final_job = co_await service_.wait_final(task_id, std::nullopt, on_update, on_idle,
                                                options_.keepalive, stop);
  if (flight && flight->cancelled) {
    // Only the wait was cancelled (notifications/cancelled of this request); the task runs on.
    RpcOutcome cancelled = error_outcome(
        mcp::kRequestCancelled, "Request cancelled by the client (notifications/cancelled)");
    cancelled.cancelled = true;
    co_return cancelled;
  }
  if (!final_job) co_return error_outcome(kInternalError, "task " + task_id + " disappeared");
  json::object result = api::call_result(*final_job);
  json::object meta = mcp::related_task_meta(task_id);
  meta[api::kJobIdMetaKey] = final_job->id;
  result["_meta"] = std::move(meta);
  co_return ok_outcome(std::move(result));
}

}  // namespace asya::gateway
