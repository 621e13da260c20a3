// POST /envelopes/reports: many sidecar reports in one request (PROTOCOL §7). Each report means
// and is answered exactly what its single endpoint (/envelopes/{id}/progress, /final) would; the
// batch only saves requests and, on the job store, transactions (one for the batch, each report
// in a savepoint, in order).
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "gateway/api.hpp"
#include "gateway/raw_json.hpp"
#include "gateway/sidecar_reports.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

const char* kBatchShape =
    "send a JSON array of reports, [{\"id\": envelope id, \"kind\": \"progress\" | \"final\", "
    "\"report\": {the body of the single endpoint}}, ...]";

const char* kind_of(const json::value& value) {
  switch (value.kind()) {
    case json::kind::object:
      return "an object";
    case json::kind::array:
      return "an array";
    case json::kind::string:
      return "a string";
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    default:
      return "a number";
  }
}

enum class Kind { progress, final };

// One item of the batch, read: its report, or the 400 it gets.
struct Item {
  std::string id;
  Kind kind = Kind::progress;
  std::optional<SidecarReport> report;
  std::string error;  // when !report
};

Item read_item(const json::value& value, std::string_view raw, std::size_t index) {
  Item item;
  auto fail = [&](const std::string& why) {
    item.error = "report " + std::to_string(index) + ": " + why;
    return item;
  };
  if (!value.is_object())
    return fail(std::string("must be an object {\"id\", \"kind\", \"report\"}, got ") +
                kind_of(value));
  const json::object& object = value.as_object();
  const json::value* id = object.if_contains("id");
  if (!id || !id->is_string() || id->as_string().empty())
    return fail("\"id\" must be a non-empty string (the envelope id), got " +
                (id ? to_json_text(*id) : std::string("nothing")));
  item.id = id->as_string();
  const json::value* kind = object.if_contains("kind");
  if (!kind || !kind->is_string() ||
      (kind->as_string() != "progress" && kind->as_string() != "final"))
    return fail("\"kind\" must be \"progress\" or \"final\", got " +
                (kind ? to_json_text(*kind) : std::string("nothing")));
  item.kind = kind->as_string() == "progress" ? Kind::progress : Kind::final;
  const json::value* body = object.if_contains("report");
  if (!body || !body->is_object())
    return fail("\"report\" must be the report (an object), got " +
                (body ? to_json_text(*body) : std::string("nothing")));
  std::string why;
  if (item.kind == Kind::progress) {
    if (auto report = reports::read_progress(body->as_object(), item.id, why))
      item.report = std::move(*report);
  } else {
    auto raw_report = raw_members(raw)["report"];
    if (auto report = reports::read_final(body->as_object(), raw_report, item.id, why))
      item.report = std::move(*report);
  }
  if (!item.report) return fail(why);
  return item;
}

json::object item_result(int status, json::object answer) {
  return json::object{{"status", status}, {"answer", std::move(answer)}};
}

}  // namespace

namespace reports {

std::optional<std::vector<SidecarReport>> read_carried(const json::value& array,
                                                       std::string_view array_text,
                                                       std::string& error) {
  if (!array.is_array() || array.as_array().empty() || array.as_array().size() > kMaxBatchReports) {
    error = "\"reports\" must be an array of 1 to " + std::to_string(kMaxBatchReports) +
            " reports, got " +
            (array.is_array() ? std::to_string(array.as_array().size()) + " items"
                              : std::string(kind_of(array))) +
            ": " + kBatchShape;
    return std::nullopt;
  }
  const std::vector<std::string_view> raw = raw_elements(array_text);
  if (raw.size() != array.as_array().size()) {
    error = "could not read the elements of \"reports\"";
    return std::nullopt;
  }
  std::vector<SidecarReport> out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    Item item = read_item(array.as_array()[i], raw[i], i);
    if (!item.report) {
      error = item.error;
      return std::nullopt;
    }
    out.push_back(std::move(*item.report));
  }
  return out;
}

}  // namespace reports

awaitable<Response> Api::report_batch(const http::Request& request) {
  boost::system::error_code ec;
  json::value root = json::parse(request.body, ec);
  if (ec)
    co_return Response::error(
        400, "the body is not valid JSON (" + ec.message() + "): " + std::string(kBatchShape));
  if (!root.is_array())
    co_return Response::error(400, std::string("the body must be a JSON array, got ") +
                                       kind_of(root) + ": " + kBatchShape);
  const json::array& array = root.as_array();
  if (array.empty())
    co_return Response::error(400, std::string("the array of reports is empty: ") + kBatchShape);
  if (array.size() > reports::kMaxBatchReports)
    co_return Response::error(400, "at most " + std::to_string(reports::kMaxBatchReports) +
                                       " reports per request, got " + std::to_string(array.size()) +
                                       ": send them in parts");
  const std::vector<std::string_view> raw = raw_elements(request.body);
  if (raw.size() != array.size())  // a scanner bug, not a client mistake
    co_return Response::error(500, "could not read the elements of the array");

  service_.metrics().report("batch");
  std::vector<json::object> results(array.size());
  std::vector<Item> items;
  items.reserve(array.size());
  std::vector<SidecarReport> valid;
  std::vector<std::size_t> slot_of;  // index in `items` of each report in `valid`
  for (std::size_t i = 0; i < array.size(); ++i) {
    items.push_back(read_item(array[i], raw[i], i));
    Item& item = items.back();
    if (!item.report) {
      results[i] = item_result(400, json::object{{"error", item.error}});
      continue;
    }
    service_.metrics().report(item.kind == Kind::progress ? "progress" : "final");
    valid.push_back(std::move(*item.report));
    slot_of.push_back(i);
  }
  if (!valid.empty()) {
    auto work = [this, reports = std::move(valid)] { return service_.store().apply(reports); };
    auto applied = co_await service_.blocking<std::vector<Result<ChangeResult>>>(std::move(work));
    for (std::size_t k = 0; k < applied.size() && k < slot_of.size(); ++k) {
      const Item& item = items[slot_of[k]];
      const Result<ChangeResult>& result = applied[k];
      if (result.ok() && result.value().outcome == Outcome::applied) {
        if (item.kind == Kind::progress)
          service_.notifier().notify(result.value().job_id, result.value().job_final);
        else
          service_.notifier().notify(result.value().job_id);
      }
      reports::Answer answer = item.kind == Kind::progress
                                   ? reports::progress_answer(result, item.id)
                                   : reports::final_answer(result, item.id);
      results[slot_of[k]] = item_result(answer.status, std::move(answer.body));
    }
  }
  json::array out;
  out.reserve(results.size());
  for (json::object& r : results) out.emplace_back(std::move(r));
  co_return Response::json(200, to_json_text(json::object{{"results", std::move(out)}}));
}

}  // namespace asya::gateway
