// Resumable MCP SSE streams: the event ids, and GET /mcp (McpEndpoint::open_stream).
#include "gateway/mcp/streams.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/mcp/mcp.hpp"

namespace asya::gateway {

namespace json = boost::json;
namespace asio = boost::asio;
using asio::awaitable;
using http::Response;

namespace mcp {

namespace {

std::string hex_encode(const std::string& text) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

std::optional<std::string> hex_decode(const std::string& hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int high = value(hex[i]);
    int low = value(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

}  // namespace

std::string stream_event_id(const std::string& job_id, const std::string& request_id_json,
                            bool result) {
  return job_id + (result ? "/r/" : "/p/") + hex_encode(request_id_json);
}

std::optional<ResumePoint> parse_stream_event_id(const std::string& event_id) {
  auto first = event_id.find('/');
  if (first == std::string::npos || first == 0 || first + 3 > event_id.size()) return std::nullopt;
  char step = event_id[first + 1];
  if ((step != 'p' && step != 'r') || event_id[first + 2] != '/') return std::nullopt;
  auto request_id = hex_decode(event_id.substr(first + 3));
  if (!request_id) return std::nullopt;
  // Only the ids a JSON-RPC request may have: a string or an integer.
  boost::system::error_code ec;
  json::value id = json::parse(*request_id, ec);
  if (ec || !(id.is_string() || id.is_int64() || id.is_uint64())) return std::nullopt;
  return ResumePoint{event_id.substr(0, first), *request_id, step == 'r'};
}

std::string priming_event(const std::string& event_id, std::chrono::milliseconds retry) {
  return "id: " + event_id + "\nretry: " + std::to_string(retry.count()) + "\ndata: \n\n";
}

}  // namespace mcp

namespace {

Response stream_error(int status, const std::string& message) {
  return Response::json(
      status,
      to_json_text(json::object{{"jsonrpc", "2.0"},
                                {"id", nullptr},
                                {"error", json::object{{"code", -32000}, {"message", message}}}}));
}

// The id of the standalone stream's priming event (resuming it opens a new standalone stream).
constexpr const char* kStandaloneEventId = "session/0";

}  // namespace

awaitable<void> McpEndpoint::detach_after(std::shared_ptr<InFlight> flight,
                                          std::chrono::milliseconds after) {
  asio::steady_timer timer(co_await asio::this_coro::executor, after);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  flight->detached = true;
  if (!flight->job_id.empty()) service_.notifier().notify(flight->job_id);
}

awaitable<Response> McpEndpoint::open_stream(const http::Request& request) {
  std::string accept = request.header("Accept");
  if (accept.find("text/event-stream") == std::string::npos) {
    co_return stream_error(406,
                           "Not Acceptable: GET /mcp opens an SSE stream; Accept must "
                           "include text/event-stream");
  }
  std::string session_id = request.header("Mcp-Session-Id");
  if (session_id.empty()) {
    co_return stream_error(400,
                           "Bad Request: Mcp-Session-Id header is required (call "
                           "initialize first)");
  }
  auto session =
      co_await use_session(session_id, api::caller_of(options_, request.header("Authorization")));
  if (!session.ok()) {
    co_return stream_error(503, "Service Unavailable: MCP sessions: " + session.error().message);
  }
  if (session.value().state != SessionUse::State::active) {
    co_return stream_error(
        404, "Session not found: \"" + session_id + "\" (ended or expired; initialize again)");
  }
  std::string last_event_id = request.header("Last-Event-ID");
  std::optional<mcp::ResumePoint> resume;
  if (!last_event_id.empty() && last_event_id != kStandaloneEventId) {
    resume = mcp::parse_stream_event_id(last_event_id);
    if (!resume) {
      co_return stream_error(400, "Bad Request: Last-Event-ID \"" + last_event_id +
                                      "\" is not an event id this server sent");
    }
    std::string job_id = resume->job_id;
    auto work = [this, job_id] { return service_.store().get(job_id); };
    auto job = co_await service_.blocking<Result<std::optional<Job>>>(std::move(work));
    if (!job.ok())
      co_return stream_error(503, "Service Unavailable: job store: " + job.error().message);
    // Another caller's job (callers isolated: several client tokens) reads as unknown.
    Caller caller = api::caller_of(options_, request.header("Authorization"));
    if (!job.value() || !caller.may_see(*job.value())) {
      co_return stream_error(404, "Not Found: Last-Event-ID \"" + last_event_id +
                                      "\" names job \"" + job_id + "\", which does not exist");
    }
  }

  Response response;
  response.headers.emplace_back("Content-Type", "text/event-stream");
  response.headers.emplace_back("Mcp-Session-Id", session_id);
  response.headers.emplace_back("X-Accel-Buffering", "no");
  response.stream = [this, resume](http::ResponseStream& out) -> awaitable<void> {
    // Counted while it runs. Not decremented by a destructor: at shutdown the io_context destroys
    // a stream still waiting after Metrics and Service are gone (gateway main.cpp's order).
    service_.metrics().sse_streams().Increment();
    auto done = [this] { service_.metrics().sse_streams().Decrement(); };
    auto retry = options_.mcp_poll_after.count() > 0 ? options_.mcp_poll_after
                                                     : std::chrono::milliseconds(1000);
    if (!resume) {
      // The standalone stream: nothing is sent on it but keepalives (no server-initiated
      // requests); it ends when the client goes.
      std::string priming = mcp::priming_event(kStandaloneEventId, retry);
      if (!co_await out.write(std::move(priming))) {
        done();
        co_return;
      }
      asio::steady_timer timer(co_await asio::this_coro::executor);
      for (;;) {
        timer.expires_after(options_.keepalive);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::string keepalive = ": keepalive\n\n";
        if (!co_await out.write(std::move(keepalive))) {
          done();
          co_return;
        }
      }
    }
    if (resume->after_result) {  // the result was delivered already
      done();
      co_return;
    }
    std::string priming = mcp::priming_event(
        mcp::stream_event_id(resume->job_id, resume->request_id_json, false), retry);
    bool open = co_await out.write(std::move(priming));
    Service::UpdateCallback no_updates;
    Service::IdleCallback on_idle = [&]() -> awaitable<void> {
      std::string keepalive = ": keepalive\n\n";
      if (open) open = co_await out.write(std::move(keepalive));
    };
    std::function<bool()> stop = [&open] { return !open; };
    auto job = co_await service_.wait_final(resume->job_id, std::nullopt, no_updates, on_idle,
                                            options_.keepalive, stop);
    if (!open || !job) {
      done();
      co_return;
    }
    json::value request_id = json::parse(resume->request_id_json);
    json::object answer{{"jsonrpc", "2.0"}, {"id", request_id}, {"result", api::call_result(*job)}};
    std::string event =
        "id: " + mcp::stream_event_id(resume->job_id, resume->request_id_json, true) +
        "\nevent: message\ndata: " + to_json_text(answer) + "\n\n";
    co_await out.write(std::move(event));
    done();
  };
  co_return response;
}

}  // namespace asya::gateway
