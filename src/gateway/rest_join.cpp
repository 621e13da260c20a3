// POST /envelopes/{id}/joined: a join actor's sidecar reports the fan-out group it joined
// (PROTOCOL §4a, §7), so the job finishes with the join's one result instead of waiting for
// branches that ended in the join.
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

awaitable<Response> Api::report_joined(const http::Request& request, const std::string& id) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec || !body.is_object())
    co_return Response::error(400,
                              "body must be a JSON object {\"group\", \"count\", "
                              "\"children\": [ids]}");
  const json::object& o = body.as_object();
  JoinReport report;
  report.envelope_id = id;
  const json::value* count = o.if_contains("count");
  const json::value* children = o.if_contains("children");
  if (!count || !count->is_int64() || count->as_int64() < 1)
    co_return Response::error(400, "\"count\" must be a positive integer");
  if (!children || !children->is_array())
    co_return Response::error(400, "\"children\" must be an array of envelope ids");
  report.count = static_cast<std::size_t>(count->as_int64());
  for (const json::value& child : children->as_array()) {
    if (!child.is_string() || child.as_string().empty())
      co_return Response::error(400, "\"children\" must hold non-empty strings, got " +
                                         to_json_text(child).substr(0, 100));
    report.children.emplace_back(child.as_string());
  }
  auto size_of = [&](const char* key) -> std::size_t {
    const json::value* v = o.if_contains(key);
    return v && v->is_int64() && v->as_int64() > 0 ? static_cast<std::size_t>(v->as_int64()) : 0;
  };
  report.failed = size_of("failed");
  report.missing = size_of("missing");
  service_.metrics().report("joined");
  auto work = [this, report] { return service_.store().join(report); };
  auto result = co_await service_.blocking<Result<ChangeResult>>(std::move(work));
  if (!result.ok()) co_return Response::error(503, result.error().message);
  if (result.value().outcome == Outcome::not_found)
    co_return Response::error(404, "no job knows envelope \"" + id + "\"");
  if (result.value().outcome == Outcome::applied) service_.notifier().notify(result.value().job_id);
  co_return Response::json(
      200, to_json_text(json::object{{"status", "ok"},
                                     {"job_status", job_status_name(result.value().job_status)}}));
}

}  // namespace asya::gateway
