#include "gateway/mcp/generic.hpp"

#include <boost/json.hpp>

#include <array>

#include "common/json_text.hpp"
#include "gateway/api.hpp"

namespace asya::gateway::mcp {

namespace json = boost::json;
using boost::asio::awaitable;

namespace {

constexpr std::array<const char*, 8> kLevelNames = {"debug", "info",     "notice", "warning",
                                                    "error", "critical", "alert",  "emergency"};
constexpr const char* kJobUriPrefix = "asya://jobs/";
constexpr const char* kJobUriTemplate = "asya://jobs/{id}";
// JSON-RPC codes (the MCP spec's; -32002 is its "Resource not found").
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kResourceNotFound = -32002;
constexpr std::size_t kMaxCompletionValues = 100;  // the spec's limit per answer

GenericAnswer ok(json::object result) {
  return GenericAnswer{std::move(result), 0, ""};
}
GenericAnswer invalid(std::string message) {
  return GenericAnswer{std::nullopt, kInvalidParams, "Invalid params: " + std::move(message)};
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string string_member(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

json::object completion(const std::vector<std::string>& matches) {
  json::array values;
  for (std::size_t i = 0; i < matches.size() && i < kMaxCompletionValues; ++i)
    values.emplace_back(matches[i]);
  return json::object{
      {"completion", json::object{{"values", std::move(values)},
                                  {"total", matches.size()},
                                  {"hasMore", matches.size() > kMaxCompletionValues}}}};
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i) {
    if (name == kLevelNames[i]) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

const char* log_level_name(LogLevel level) {
  return kLevelNames[static_cast<std::size_t>(level)];
}

LogLevel update_log_level(const Update& update) {
  const std::string& state = update.envelope_state;
  if (update.status == JobStatus::failed || state == "failed") return LogLevel::error;
  if (update.status == JobStatus::cancelled || state == "cancelled") return LogLevel::warning;
  if (update.status == JobStatus::succeeded || state == "succeeded" || state == "completed")
    return LogLevel::info;
  return LogLevel::debug;
}

GenericFeatures::GenericFeatures(Service& service) : service_(service) {}

void GenericFeatures::add_capabilities(json::object& capabilities) {
  capabilities["logging"] = json::object{};
  capabilities["completions"] = json::object{};
  capabilities["resources"] = json::object{{"subscribe", false}, {"listChanged", false}};
  capabilities["prompts"] = json::object{{"listChanged", false}};
}

GenericFeatures::SessionState& GenericFeatures::session(const std::string& session_id) {
  auto found = sessions_.find(session_id);
  if (found != sessions_.end()) return found->second;
  // Bounded: sessions that ended without DELETE are forgotten (in id order, i.e. at random).
  if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
  return sessions_[session_id];
}

void GenericFeatures::remember_job(const std::string& session_id, const std::string& job_id,
                                   const std::string& tool) {
  auto& jobs = session(session_id).recent_jobs;
  jobs.push_front(RecentJob{job_id, tool});
  if (jobs.size() > kMaxRecentJobs) jobs.pop_back();
}

bool GenericFeatures::logging(const std::string& session_id) const {
  auto found = sessions_.find(session_id);
  return found != sessions_.end() && found->second.level.has_value();
}

std::optional<json::object> GenericFeatures::log_message(const std::string& session_id,
                                                         const std::string& job_id,
                                                         const Update& update) const {
  auto found = sessions_.find(session_id);
  if (found == sessions_.end() || !found->second.level) return std::nullopt;
  LogLevel level = update_log_level(update);
  if (level < *found->second.level) return std::nullopt;
  json::object data = api::update_json(job_id, update);
  json::object params{{"level", log_level_name(level)}, {"logger", "asya"}, {"data", data}};
  return json::object{{"jsonrpc", "2.0"}, {"method", "notifications/message"}, {"params", params}};
}

awaitable<std::optional<GenericAnswer>> GenericFeatures::answer(const std::string& session_id,
                                                                const Caller& caller,
                                                                const std::string& method,
                                                                const json::object& params) {
  if (method == "logging/setLevel") {
    const json::value* level = params.if_contains("level");
    std::optional<LogLevel> parsed;
    if (level && level->is_string()) parsed = parse_log_level(level->as_string());
    if (!parsed) {
      co_return invalid(
          "logging/setLevel needs params.level, one of debug, info, notice, "
          "warning, error, critical, alert, emergency; got " +
          (level ? to_json_text(*level) : std::string("nothing")));
    }
    session(session_id).level = parsed;
    co_return ok(json::object{});
  }
  if (method == "completion/complete") co_return complete(session_id, params);
  if (method == "resources/list") {
    json::array resources;
    auto found = sessions_.find(session_id);
    if (found != sessions_.end()) {
      for (const auto& job : found->second.recent_jobs) {
        resources.push_back(json::object{
            {"uri", kJobUriPrefix + job.id},
            {"name", "job " + job.id},
            {"description", "Status and result of a call of the tool \"" + job.tool + "\""},
            {"mimeType", "application/json"}});
      }
    }
    co_return ok(json::object{{"resources", std::move(resources)}});
  }
  if (method == "resources/templates/list") {
    json::object job_template{
        {"uriTemplate", kJobUriTemplate},
        {"name", "job"},
        {"description",
         "Status, progress and result of an Asya job (a tool call) by its job id; the document "
         "of GET /envelopes/{id}"},
        {"mimeType", "application/json"}};
    co_return ok(json::object{{"resourceTemplates", json::array{job_template}}});
  }
  if (method == "resources/read") co_return co_await read_resource(params, caller);
  if (method == "prompts/list") co_return ok(json::object{{"prompts", json::array{}}});
  if (method == "prompts/get") {
    co_return invalid("unknown prompt " +
                      to_json_text(params.contains("name") ? params.at("name") : json::value()) +
                      " (this gateway defines no prompts; prompts/list is empty)");
  }
  co_return std::nullopt;
}

GenericAnswer GenericFeatures::complete(const std::string& session_id,
                                        const json::object& params) const {
  const json::value* ref_value = params.if_contains("ref");
  const json::value* argument_value = params.if_contains("argument");
  if (!ref_value || !ref_value->is_object())
    return invalid("completion/complete needs params.ref (an object)");
  if (!argument_value || !argument_value->is_object())
    return invalid("completion/complete needs params.argument ({\"name\", \"value\"})");
  const json::object& ref = ref_value->as_object();
  const json::object& argument = argument_value->as_object();
  std::string type = string_member(ref, "type");
  std::string name = string_member(argument, "name");
  std::string typed = string_member(argument, "value");
  std::vector<std::string> matches;
  if (type == "ref/prompt") return ok(completion(matches));  // no prompts: nothing to complete
  if (type == "ref/resource") {
    std::string uri = string_member(ref, "uri");
    if (uri != kJobUriTemplate) {
      return invalid("unknown resource template \"" + uri + "\" (this gateway has \"" +
                     kJobUriTemplate + "\")");
    }
    if (name != "id") return ok(completion(matches));
    auto found = sessions_.find(session_id);
    if (found != sessions_.end()) {
      for (const auto& job : found->second.recent_jobs) {
        if (starts_with(job.id, typed)) matches.push_back(job.id);
      }
    }
    return ok(completion(matches));
  }
  if (type == "ref/tool") {
    std::string tool_name = string_member(ref, "name");
    const Tool* tool = service_.tools().find(tool_name);
    if (!tool) return invalid("unknown tool \"" + tool_name + "\" in params.ref.name");
    for (const auto& parameter : tool->parameters) {
      if (parameter.name != name) continue;
      for (const auto& value : parameter.enum_values) {
        std::string text = value.is_string() ? std::string(value.as_string()) : to_json_text(value);
        if (starts_with(text, typed)) matches.push_back(text);
      }
      return ok(completion(matches));
    }
    return invalid("tool \"" + tool_name + "\" has no parameter \"" + name + "\"");
  }
  return invalid("params.ref.type must be \"ref/prompt\", \"ref/resource\" or \"ref/tool\", got " +
                 to_json_text(ref.contains("type") ? ref.at("type") : json::value()));
}

awaitable<GenericAnswer> GenericFeatures::read_resource(const json::object& params,
                                                        const Caller& caller) {
  std::string uri = string_member(params, "uri");
  if (!starts_with(uri, kJobUriPrefix) || uri.size() == std::string(kJobUriPrefix).size()) {
    co_return invalid("resources/read needs params.uri of the form asya://jobs/{id}, got " +
                      to_json_text(params.contains("uri") ? params.at("uri") : json::value()));
  }
  std::string id = uri.substr(std::string(kJobUriPrefix).size());
  auto work = [this, id] { return service_.store().get(id); };
  auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
  if (!job.ok()) co_return GenericAnswer{std::nullopt, kInternalError, job.error().message};
  // Another caller's task reads like a job that does not exist; with isolated callers, so does
  // any job of another caller.
  if (!job.value() || (job.value()->task && job.value()->owner != caller.owner) ||
      !caller.may_see(*job.value())) {
    GenericAnswer missing{std::nullopt, kResourceNotFound,
                          "Resource not found: \"" + uri + "\" (no job with id \"" + id + "\")"};
    co_return missing;
  }
  json::object content{{"uri", uri},
                       {"mimeType", "application/json"},
                       {"text", to_json_text(api::job_json(*job.value()))}};
  co_return ok(json::object{{"contents", json::array{content}}});
}

}  // namespace asya::gateway::mcp
