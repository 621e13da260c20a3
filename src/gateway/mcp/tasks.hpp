// MCP Tasks (protocol revision 2025-11-25) over the gateway's jobs: a task is a job started by a
// tools/call carrying a `task` parameter, and its id is the job id. Tasks live in the job store,
// so every gateway replica on the same database answers for every task, also after a restart.
//
// These are the pure parts (no I/O), tested in tasks_test.cpp; the methods themselves
// (tasks/get, tasks/result, tasks/list, tasks/cancel) are McpEndpoint's (tasks.cpp).
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "gateway/store/job_store.hpp"

namespace asya::gateway::mcp {

// How often a client is told to poll tasks/get (the Task's pollInterval).
constexpr std::chrono::milliseconds kTaskPollInterval{1000};
// Tasks per tasks/list page.
constexpr std::size_t kTasksPageSize = 50;

// The MCP task status of a job: pending and running are "working", succeeded "completed", failed
// "failed", cancelled "cancelled".
const char* task_status(JobStatus status);

// The statusMessage of a job's task: while it runs, the current actor and step
// ("step 2 of 3: infer: processing in infer"); at the end the job's message.
std::string task_status_message(const Job& job);

// The Task object (taskId, status, statusMessage, createdAt, lastUpdatedAt, ttl, pollInterval).
// ttl is the one the client asked for (the job is kept at least that long: the gateway deletes no
// job), null when it asked for none.
boost::json::object task_json(const Job& job);

// The `task` parameter of tools/call: an object with an optional non-negative integer `ttl`
// (milliseconds; other members such as pollInterval are accepted and ignored). Returns the ttl
// (nullopt: none asked), or an Error whose message says what is wrong with the parameter.
Result<std::optional<std::int64_t>> parse_task_parameter(const boost::json::value& task);

// tasks/list cursors: opaque to clients ("c1." + hex of "<created_ms>:<id>"). decode returns
// nullopt for anything encode did not produce.
std::string encode_task_cursor(const TaskCursor& cursor);
std::optional<TaskCursor> decode_task_cursor(std::string_view text);

// Who a request comes from, for listing only the caller's tasks: api::token_owner (api.hpp), ""
// when the gateway has no client token (every caller is the same), else "token:" + a 64-bit
// FNV-1a fingerprint (hex) of the bearer token the request presented (the gateway already
// checked it is one of its tokens).
std::string task_owner(const std::string& authorization_header, bool tokens_configured);

}  // namespace asya::gateway::mcp
