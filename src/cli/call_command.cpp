#include "cli/call_command.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/call_arguments.hpp"
#include "cli/call_progress.hpp"
#include "cli/client.hpp"
#include "cli/target_check.hpp"
#include "common/http/client.hpp"
#include "common/json_text.hpp"
#include "local/state.hpp"
#include "local/status_document.hpp"

namespace asya::cli {
namespace {

namespace json = boost::json;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;
constexpr int kTimeout = 3;

struct CallArgs {
  std::string tool;
  std::vector<std::string> pairs;
  std::string args_json;
  std::string gateway;
  std::string state_dir;
  std::string token;
  double timeout = 0;  // seconds; 0: the tool's own timeout (the gateway fails the job)
  bool quiet = false;
  bool list = false;
  bool force = false;  // call even when a tool's actor is not run by the local supervisor
};

struct Failure {
  int code;
  std::string message;
};

[[noreturn]] void fail(int code, std::string message) {
  throw Failure{code, std::move(message)};
}

// The gateway URL (cli/client.hpp's rule), failing with this command's Failure.
std::string gateway_url(const CallArgs& a) {
  try {
    return resolve_gateway_url(a.gateway, a.state_dir);
  } catch (const Exit& e) {
    throw Failure{e.code, e.message};
  }
}

// ---- HTTP to the gateway
struct Gateway {
  std::string base, token;
  http::Client client{};
};

using Reply = http::Response;

// A request to the gateway: its URL, one header plus the bearer token when there is one, a 10 s
// connect timeout.
http::Request gateway_request(const Gateway& gateway, const std::string& path,
                              std::pair<std::string, std::string> header) {
  http::Request request;
  request.url = gateway.base + path;
  request.headers.push_back(std::move(header));
  if (!gateway.token.empty())
    request.headers.emplace_back("Authorization", "Bearer " + gateway.token);
  request.connect_timeout = std::chrono::seconds(10);
  return request;
}

Reply request(Gateway& gateway, const std::string& path, const std::string* post_body) {
  http::Request request = gateway_request(gateway, path, {"Content-Type", "application/json"});
  request.timeout = std::chrono::seconds(60);
  if (post_body) {
    request.method = "POST";
    request.body = *post_body;
  }
  auto reply = gateway.client.perform(request);
  if (!reply) fail(kTimeout, "gateway not reachable: " + reply.error().message);
  return std::move(*reply);
}

std::string error_text(const Reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (auto* e = v.as_object().if_contains("error"); e && e->is_string())
      return std::string(e->as_string());
  return r.body;
}

// ---- progress drawing
struct Progress {
  bool tty = ::isatty(2) != 0;
  bool quiet = false;
  ProgressOrder order;
  std::string last_line;  // plain mode: a repeat (e.g. a redelivered step) is not printed again
  bool drawn = false;

  void show(std::int64_t sequence, const json::object& data) {
    ProgressEvent event = ProgressEvent::from_json(data);
    if (!order.accept(sequence, event) || quiet) return;
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", bar_progress_line(event).c_str());
      std::fflush(stderr);
      drawn = true;
    } else {
      std::string line = plain_progress_line(event);
      if (line != last_line) std::fprintf(stderr, "%s\n", line.c_str());
      last_line = std::move(line);
    }
  }
  void finish() {
    if (tty && drawn) std::fprintf(stderr, "\n");
    drawn = false;
  }
};

// ---- SSE following
struct Stream {
  Progress* progress;
  std::string data;  // the data: lines of the event being read
  bool final_seen = false;
  std::chrono::steady_clock::time_point deadline;
  bool has_deadline = false;
  bool timed_out = false;
  std::int64_t sequence = 0;                  // the id: of the event being read (0: none)
  const std::atomic<bool>* cancel = nullptr;  // stops following (a target actor is unavailable)
};

void handle_line(Stream& s, const std::string& line) {
  if (line.empty()) {  // end of an event
    if (!s.data.empty()) {
      boost::system::error_code ec;
      auto v = json::parse(s.data, ec);
      if (!ec && v.is_object()) {
        s.progress->show(s.sequence, v.as_object());
        if (auto* st = v.as_object().if_contains("status"); st && st->is_string()) {
          auto status = st->as_string();
          if (status == "succeeded" || status == "failed") s.final_seen = true;
        }
      }
    }
    s.data.clear();
    s.sequence = 0;
    return;
  }
  if (line.rfind("id:", 0) == 0) {
    s.sequence = std::strtoll(line.c_str() + 3, nullptr, 10);
    return;
  }
  if (line.rfind("data:", 0) == 0) {
    std::string part = line.substr(5);
    if (!part.empty() && part[0] == ' ') part.erase(0, 1);
    if (!s.data.empty()) s.data += "\n";
    s.data += part;
  }
}

// Follows the job's SSE stream until its final event (or the stream ends, or the deadline).
void follow(Gateway& gateway, const std::string& job_id, Stream& s) {
  http::Request request =
      gateway_request(gateway, "/envelopes/" + job_id + "/stream", {"Accept", "text/event-stream"});
  // Followed again after a break: from the event after the last one shown.
  if (s.progress->order.last_sequence() > 0)
    request.headers.emplace_back("Last-Event-ID",
                                 std::to_string(s.progress->order.last_sequence()));
  request.timeout = std::chrono::milliseconds(0);  // the gateway closes it after the final event
  request.cancel = s.cancel;
  if (s.has_deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        s.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      s.timed_out = true;
      return;
    }
    request.timeout = left;
  }
  // A stream that breaks or cannot connect is followed again by the caller (or the GET after it
  // reports the gateway unreachable); only the deadline matters here.
  (void)gateway.client.stream(request, [&s](std::string_view line) {
    handle_line(s, std::string(line));
    return http::StreamControl::kContinue;
  });
  if (s.has_deadline && std::chrono::steady_clock::now() >= s.deadline) s.timed_out = true;
}

// GET /tools: the gateway's tools with their input schemas.
json::array list_tools(Gateway& gateway) {
  Reply reply = request(gateway, "/tools", nullptr);
  if (reply.status != 200)
    fail(kFailed, "GET /tools answered " + std::to_string(reply.status) + ": " + error_text(reply));
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (ec || !v.is_array()) fail(kFailed, "GET /tools answered no JSON array: " + reply.body);
  return std::move(v.as_array());
}

// The input schema of `tool` (fail(kUsage) naming the tools there are when it is unknown).
json::object tool_schema(const json::array& tools, const std::string& tool,
                         const std::string& gateway_base) {
  std::string names;
  for (const json::value& t : tools) {
    if (!t.is_object()) continue;
    const json::value* name = t.as_object().if_contains("name");
    if (!name || !name->is_string()) continue;
    if (name->as_string() == tool) {
      const json::value* schema = t.as_object().if_contains("inputSchema");
      return schema && schema->is_object() ? schema->as_object() : json::object{};
    }
    names += (names.empty() ? "" : ", ") + std::string(name->as_string());
  }
  fail(kUsage, "unknown tool \"" + tool + "\": the gateway at " + gateway_base +
                   (names.empty() ? " has no tools" : " has " + names) +
                   " (`asya call --list` describes them)");
}

int run(const CallArgs& a) {
  Gateway gateway{gateway_url(a), a.token};
  json::array tools = list_tools(gateway);
  if (a.list) {
    std::cout << format_tool_list(tools);
    return kOk;
  }
  if (a.tool.empty())
    fail(kUsage, "which tool? `asya call TOOL key=value ...` (`asya call --list` lists them)");
  auto built =
      build_call_arguments(tool_schema(tools, a.tool, gateway.base), a.tool, a.args_json, a.pairs);
  if (!built) fail(kUsage, built.error().message);
  json::object arguments = std::move(*built);
  // Fail fast (target_check.hpp): before the call, and while it waits.
  const local::StatePaths paths(local::resolve_state_dir(a.state_dir));
  const std::vector<std::string> targets = tool_actors(paths, gateway.base, a.tool);
  if (auto why = unavailable_actor(paths, targets, a.force))
    fail(kUsage, "tool " + a.tool + ": " + why->message + "\n  nothing was called");
  AvailabilityWatch watch(paths, targets, a.force);
  std::string body =
      to_json_text(json::object{{"name", a.tool}, {"arguments", arguments}, {"async", true}});
  Reply started = request(gateway, "/tools/call", &body);
  if (started.status == 404 || started.status == 400)
    fail(kUsage, "tool " + a.tool + ": " + error_text(started));
  if (started.status != 200)
    fail(kFailed, "POST /tools/call answered " + std::to_string(started.status) + ": " +
                      error_text(started));
  boost::system::error_code ec;
  auto v = json::parse(started.body, ec);
  if (ec || !v.is_object()) fail(kFailed, "POST /tools/call answered no JSON: " + started.body);
  // The answer is a CallToolResult whose structuredContent holds {job_id, status_url, ...}.
  const json::value* id = v.as_object().if_contains("job_id");
  if (auto* sc = v.as_object().if_contains("structuredContent"); !id && sc && sc->is_object())
    id = sc->as_object().if_contains("job_id");
  if (!id || !id->is_string()) {  // the call could not start: a CallToolResult with isError
    std::cout << started.body << "\n";
    return kFailed;
  }
  std::string job_id(id->as_string());

  Progress progress;
  progress.quiet = a.quiet;
  Stream stream{&progress, {}, false, {}, a.timeout > 0, false, 0, watch.cancel_flag()};
  if (a.timeout > 0)
    stream.deadline = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  // The stream may end without a final event (a dropped connection): follow it again, after the
  // last event shown (Last-Event-ID), until the job is final or the deadline passes.
  json::object job;
  for (int attempt = 0;; ++attempt) {
    follow(gateway, job_id, stream);
    if (auto why = watch.unavailable()) {
      progress.finish();
      fail(kUsage, "tool " + a.tool + ": " + why->message + "\n  job " + job_id +
                       " waits until the actor works (GET /envelopes/" + job_id + ")");
    }
    if (stream.timed_out) {
      progress.finish();
      fail(kTimeout, "job " + job_id + " is not final after " + std::to_string(a.timeout) +
                         " s (--timeout); see GET /envelopes/" + job_id);
    }
    Reply got = request(gateway, "/envelopes/" + job_id, nullptr);
    if (got.status != 200)
      fail(kFailed, "GET /envelopes/" + job_id + " answered " + std::to_string(got.status) + ": " +
                        error_text(got));
    auto jv = json::parse(got.body, ec);
    if (ec || !jv.is_object()) fail(kFailed, "GET /envelopes/" + job_id + ": no JSON");
    job = jv.as_object();
    auto status = job["status"].is_string() ? std::string(job["status"].as_string()) : "";
    if (status == "succeeded" || status == "failed") break;
    if (attempt >= 100) fail(kFailed, "the stream of job " + job_id + " keeps ending early");
  }
  progress.finish();
  if (job["status"].as_string() == "succeeded") {
    std::cout << to_json_text(job["result"]) << "\n";
    return kOk;
  }
  std::string error =
      job["error"].is_string() ? std::string(job["error"].as_string()) : to_json_text(job["error"]);
  // error_message: what failed where (type, message, actor); older gateways have only error.
  std::string shown =
      job["error_message"].is_string() ? std::string(job["error_message"].as_string()) : error;
  std::cerr << "asya: job " << job_id << " failed: " << shown << "\n";
  // The handler's traceback (where in the user's file), indented under that line.
  if (const json::value* details = job.if_contains("error_details");
      details && details->is_object())
    if (const json::value* tb = details->as_object().if_contains("traceback");
        tb && tb->is_string() && !tb->as_string().empty()) {
      std::string text(tb->as_string());
      while (!text.empty() && text.back() == '\n') text.pop_back();
      std::string::size_type start = 0;
      while (start <= text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::cerr << "  " << std::string_view(text).substr(start, end - start) << "\n";
        start = end + 1;
      }
    }
  return error.find("timed out") != std::string::npos ? kTimeout : kFailed;
}

}  // namespace

void add_call_command(CLI::App& app) {
  auto args = std::make_shared<CallArgs>();
  CLI::App* cmd = app.add_subcommand(
      "call", "Call a gateway tool with key=value arguments, show its progress, print the result");
  cmd->add_option("tool", args->tool, "Tool name (--list lists them)");
  cmd->add_option("arguments", args->pairs,
                  "key=value, read as the parameter's type (text=5 is the string \"5\", n=5 "
                  "the integer 5 when n is an integer); key:=JSON passes JSON as is");
  cmd->add_flag("-l,--list", args->list,
                "List the gateway's tools with their parameters and descriptions");
  cmd->add_option("--args", args->args_json, "All arguments as one JSON object");
  cmd->add_option("--gateway", args->gateway,
                  "Gateway URL (default: $ASYA_GATEWAY_URL, else the running supervisor's)");
  cmd->add_option("--state-dir", args->state_dir,
                  "State directory (default: $ASYA_STATE_DIR, else ./.asya)");
  cmd->add_option("--token", args->token, "Bearer token (default: $ASYA_GATEWAY_TOKEN)");
  cmd->add_option("--timeout", args->timeout,
                  "Give up waiting after this many seconds (default: the tool's timeout)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress output");
  cmd->add_flag("--force", args->force,
                "Call even when the tool routes to an actor the running `asya up` does not run "
                "(it runs elsewhere)");
  cmd->callback([args, &app] {
    // `asya --state-dir DIR call ...`: the global option, unless given after the command.
    apply_gateway_defaults(app, args->state_dir, args->token);
    int code = kFailed;
    try {
      code = run(*args);
    } catch (const Failure& f) {
      std::cerr << "asya: " << f.message << "\n";
      code = f.code;
    }
    std::cout.flush();
    if (code != 0) std::exit(code);
  });
}

}  // namespace asya::cli
