// The trace endpoints: POST /v1/traces (an OTLP/HTTP JSON receiver for the spans of the gateway's
// jobs; a sidecar endpoint) and GET /envelopes/{id}/trace (a job's spans, ordered).
#include <boost/json.hpp>

#include <map>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "gateway/api.hpp"
#include "gateway/traces/otlp_json.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

// The job a span belongs to: its asya.job_id when that job exists, else the job of its
// asya.envelope_id, else the job whose envelope started its trace (a span with no Asya
// attributes, e.g. a sidecar's runtime-call child span); "" when none is a job of this gateway.
std::string job_of_span(JobStore& store, std::map<std::string, std::string>& known,
                        const traces::ReceivedSpan& span, std::string& store_error) {
  for (const std::string* id : {&span.job_id, &span.envelope_id, &span.trace_id}) {
    if (id->empty()) continue;
    bool by_trace = id == &span.trace_id;
    std::string key = (by_trace ? "trace:" : "id:") + *id;
    auto cached = known.find(key);
    if (cached == known.end()) {
      std::string job_id;
      if (by_trace) {
        auto job = store.job_of_trace(*id);
        if (!job.ok()) {
          store_error = job.error().message;
          return "";
        }
        if (job.value()) job_id = *job.value();
      } else {
        auto job = store.job_id_of(*id);
        if (!job.ok()) {
          store_error = job.error().message;
          return "";
        }
        if (job.value()) job_id = *job.value();
      }
      cached = known.emplace(key, job_id).first;
    }
    if (!cached->second.empty()) return cached->second;
  }
  return "";
}

std::string text_field(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  return v->is_string() ? std::string(v->as_string()) : to_json_text(*v);
}

// Sets "hop_span_id" on every span: the span id of the hop it belongs to (the outermost span one
// sidecar recorded for one delivery of one envelope), or null for a span outside every hop (the
// gateway's call span). A span with an actor starts a hop unless its parent is a span of the same
// actor and envelope; a span without one (a sidecar's runtime call, publish or ack child) belongs
// to its parent's hop.
void mark_hops(json::array& spans) {
  std::map<std::string, const json::object*> by_id;
  for (const auto& v : spans) by_id[text_field(v.as_object(), "span_id")] = &v.as_object();
  for (auto& v : spans) {
    const json::object* span = &v.as_object();
    std::string hop;
    for (int depth = 0; depth < 64; ++depth) {
      auto parent_it = by_id.find(text_field(*span, "parent_span_id"));
      const json::object* parent = parent_it == by_id.end() ? nullptr : parent_it->second;
      std::string actor = text_field(*span, "actor");
      if (!actor.empty()) {
        if (parent && text_field(*parent, "actor") == actor &&
            text_field(*parent, "envelope_id") == text_field(*span, "envelope_id")) {
          span = parent;
          continue;
        }
        hop = text_field(*span, "span_id");
        break;
      }
      if (!parent) break;
      span = parent;
    }
    v.as_object()["hop_span_id"] = hop.empty() ? json::value(nullptr) : json::value(hop);
  }
}

}  // namespace

awaitable<Response> Api::receive_traces(const http::Request& request) {
  std::string encoding = request.header("Content-Encoding");
  if (!encoding.empty() && encoding != "identity") {
    co_return Response::error(415, "Content-Encoding \"" + encoding +
                                       "\" is not supported on /v1/traces: send the "
                                       "ExportTraceServiceRequest as uncompressed JSON");
  }
  auto parsed = traces::parse_export_request(request.body);
  if (!parsed.ok()) co_return Response::error(400, parsed.error().message);
  service_.metrics().report("traces");
  std::vector<std::string> rejected;
  for (const auto& r : parsed.value().rejected) rejected.push_back(r.reason);
  auto spans = std::move(parsed.value().spans);
  SpanLimits limits = options_.span_limits;
  auto work = [this, spans = std::move(spans),
               limits]() -> Result<std::pair<SpanWrite, std::vector<std::string>>> {
    std::map<std::string, std::string> known;
    std::vector<SpanRecord> records;
    std::vector<std::string> refused;  // spans of no job of this gateway, or too large
    for (const auto& span : spans) {
      std::string store_error;
      std::string job_id = job_of_span(service_.store(), known, span, store_error);
      if (!store_error.empty()) return Error{store_error};
      if (job_id.empty()) {
        refused.push_back("span " + span.span_id + ": asya.job_id \"" + span.job_id +
                          "\" / asya.envelope_id \"" + span.envelope_id + "\" / trace " +
                          span.trace_id + " name no job of this gateway");
        continue;
      }
      std::string document = span.document_text(job_id);
      if (document.size() > limits.max_span_bytes) {
        refused.push_back("span " + span.span_id + ": " + std::to_string(document.size()) +
                          " bytes as kept, more than ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES=" +
                          std::to_string(limits.max_span_bytes) +
                          " (an attribute too large for a trace?)");
        continue;
      }
      records.push_back(SpanRecord{std::move(job_id), span.trace_id, span.span_id,
                                   span.start_unix_nano, std::move(document)});
    }
    auto write = service_.store().add_spans(records, limits, Clock::now());
    if (!write.ok()) return write.error();
    return std::make_pair(write.value(), std::move(refused));
  };
  auto stored = co_await service_.blocking<Result<std::pair<SpanWrite, std::vector<std::string>>>>(
      std::move(work));
  // OTLP/HTTP: 503 asks the exporter to retry later.
  if (!stored.ok()) co_return Response::error(503, stored.error().message);
  const auto& [write, refused] = stored.value();
  rejected.insert(rejected.end(), refused.begin(), refused.end());
  if (write.over_limit > 0) {
    rejected.push_back(
        std::to_string(write.over_limit) +
        " span(s) dropped: their job has ASYA_GATEWAY_TRACE_MAX_SPANS spans already");
  }
  std::size_t rejected_count = parsed.value().rejected.size() + refused.size() + write.over_limit;
  // ExportTraceServiceResponse: {} when every span was accepted, else partialSuccess.
  json::object answer;
  if (rejected_count > 0) {
    std::string message;
    for (std::size_t i = 0; i < rejected.size() && i < 5; ++i)
      message += (i ? "; " : "") + rejected[i];
    if (rejected.size() > 5) message += "; and " + std::to_string(rejected.size() - 5) + " more";
    answer["partialSuccess"] =
        json::object{{"rejectedSpans", std::to_string(rejected_count)}, {"errorMessage", message}};
    spdlog::debug("gateway: /v1/traces rejected {} span(s): {}", rejected_count, message);
  }
  co_return Response::json(200, to_json_text(answer));
}

awaitable<Response> Api::get_trace(const std::string& id, const Caller& caller) {
  auto work = [this, id,
               caller]() -> Result<std::pair<std::optional<Job>, std::vector<SpanRecord>>> {
    // The call spans of this gateway are written in the background: those of calls already
    // answered are in the store once this returns.
    service_.call_tracer().flush_local();
    auto job = service_.store().get(id);
    if (!job.ok()) return job.error();
    // Another caller's job reads as unknown (Caller::may_see).
    if (!job.value() || !caller.may_see(*job.value()))
      return std::make_pair(std::optional<Job>(), std::vector<SpanRecord>{});
    auto spans = service_.store().spans(job.value()->id);
    if (!spans.ok()) return spans.error();
    return std::make_pair(job.value(), std::move(spans.value()));
  };
  auto found =
      co_await service_.blocking<Result<std::pair<std::optional<Job>, std::vector<SpanRecord>>>>(
          std::move(work));
  if (!found.ok()) co_return Response::error(503, found.error().message);
  const auto& [job, records] = found.value();
  if (!job) co_return Response::error(404, "no job or envelope with id \"" + id + "\"");
  json::array spans;
  json::array trace_ids;
  std::int64_t first_start = records.empty() ? 0 : records.front().start_unix_nano;
  std::int64_t last_end = first_start;
  for (const auto& record : records) {
    boost::system::error_code ec;
    json::value doc = json::parse(record.document, ec);
    if (ec || !doc.is_object()) continue;
    json::object& span = doc.as_object();
    span["offset_ms"] = static_cast<double>(record.start_unix_nano - first_start) / 1e6;
    if (const auto* end = span.if_contains("end_time_unix_nano"); end && end->is_string())
      last_end = std::max<std::int64_t>(last_end, std::stoll(std::string(end->as_string())));
    if (std::find(trace_ids.begin(), trace_ids.end(), json::value(record.trace_id)) ==
        trace_ids.end())
      trace_ids.push_back(json::string(record.trace_id));
    spans.push_back(std::move(doc));
  }
  mark_hops(spans);
  json::object answer{{"job_id", job->id},
                      {"status", job_status_name(job->status)},
                      {"trace_ids", std::move(trace_ids)},
                      {"start_time_unix_nano", std::to_string(first_start)},
                      {"duration_ms", static_cast<double>(last_end - first_start) / 1e6},
                      {"spans", std::move(spans)}};
  co_return Response::json(200, to_json_text(answer));
}

}  // namespace asya::gateway
