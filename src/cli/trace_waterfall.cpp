#include "cli/trace_waterfall.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>

namespace asya::cli {

namespace json = boost::json;

namespace {

std::string text_of(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  return json::serialize(*v);
}

double number_of(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_number()) return v->to_number<double>();
  if (v->is_string()) {
    try {
      return std::stod(std::string(v->as_string()));
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

bool name_starts(const std::string& name, const char* prefix) {
  return name.rfind(prefix, 0) == 0;
}

std::string ms(double value) {
  return fmt::format("{:.1f}ms", value);
}

}  // namespace

TraceWaterfall waterfall_of(const json::value& trace) {
  TraceWaterfall out;
  if (!trace.is_object()) return out;
  const json::object& t = trace.as_object();
  out.job_id = text_of(t, "job_id");
  out.status = text_of(t, "status");
  out.duration_ms = number_of(t, "duration_ms");
  if (const auto* ids = t.if_contains("trace_ids"); ids && ids->is_array())
    for (const auto& id : ids->as_array())
      if (id.is_string()) out.trace_ids.emplace_back(id.as_string());
  const json::value* spans = t.if_contains("spans");
  if (!spans || !spans->is_array()) return out;
  std::map<std::string, std::size_t> index;  // hop span id -> hop
  std::vector<double> ends;
  // The hop spans first (they name the hop), then every span of a hop adds its times.
  for (const auto& value : spans->as_array()) {
    if (!value.is_object()) continue;
    const json::object& span = value.as_object();
    std::string hop_id = text_of(span, "hop_span_id");
    if (hop_id.empty() || hop_id != text_of(span, "span_id")) continue;
    TraceHop hop;
    hop.actor = text_of(span, "actor");
    hop.envelope_id = text_of(span, "envelope_id");
    hop.replica = text_of(span, "replica");
    hop.delivery_count = static_cast<long long>(number_of(span, "delivery_count"));
    hop.start_offset_ms = number_of(span, "offset_ms");
    hop.queue_wait_ms = number_of(span, "queue_wait_ms");
    hop.outcome = text_of(span, "outcome");
    if (hop.outcome.empty()) {
      if (const auto* st = span.if_contains("status");
          st && st->is_object() && text_of(st->as_object(), "code") == "error")
        hop.outcome = "error";
    }
    index.emplace(hop_id, out.hops.size());
    out.hops.push_back(hop);
    ends.push_back(hop.start_offset_ms);
  }
  for (const auto& value : spans->as_array()) {
    if (!value.is_object()) continue;
    const json::object& span = value.as_object();
    auto it = index.find(text_of(span, "hop_span_id"));
    if (it == index.end()) continue;
    TraceHop& hop = out.hops[it->second];
    double& hop_end = ends[it->second];
    double start = number_of(span, "offset_ms");
    double end = start + number_of(span, "duration_ms");
    hop.start_offset_ms = std::min(hop.start_offset_ms, start);
    hop_end = std::max(hop_end, end);
    hop.duration_ms = hop_end - hop.start_offset_ms;
    std::string kind = text_of(span, "kind");
    std::string name = text_of(span, "name");
    if (kind == "client" || name_starts(name, "runtime") || name_starts(name, "handler"))
      hop.handler_ms += number_of(span, "duration_ms");
    else if (kind == "producer" || name_starts(name, "publish"))
      hop.publish_ms += number_of(span, "duration_ms");
  }
  std::stable_sort(out.hops.begin(), out.hops.end(), [](const TraceHop& a, const TraceHop& b) {
    return a.start_offset_ms < b.start_offset_ms;
  });
  return out;
}

std::string render_waterfall(const TraceWaterfall& w, int width) {
  std::string out = fmt::format("job {} ({}), trace {}, {} hop{}, {}\n", w.job_id, w.status,
                                w.trace_ids.empty() ? std::string("-") : w.trace_ids.front(),
                                w.hops.size(), w.hops.size() == 1 ? "" : "s", ms(w.duration_ms));
  if (w.hops.empty()) {
    return out +
           "no spans yet (sidecars export them when ASYA_GATEWAY_URL or an OTLP endpoint "
           "is set; see docs/dashboard.md)\n";
  }
  std::size_t actor_width = 5, envelope_width = 8;
  for (const auto& h : w.hops) {
    actor_width = std::max(actor_width, h.actor.size());
    envelope_width = std::max(envelope_width, h.envelope_id.size());
  }
  // The axis starts at the earliest queue wait (it precedes the first hop's start).
  double axis_start = 0, axis_end = w.duration_ms;
  for (const auto& h : w.hops) {
    axis_start = std::min(axis_start, h.start_offset_ms - h.queue_wait_ms);
    axis_end = std::max(axis_end, h.start_offset_ms + h.duration_ms);
  }
  double span = std::max(axis_end - axis_start, 1e-9);
  out += fmt::format("{:<{}}  {:<{}}  {:>9}  {:>9}  {:>9}  {:>9}  {:<8}  {}\n", "ACTOR",
                     actor_width, "ENVELOPE", envelope_width, "START", "WAIT", "HANDLER", "PUBLISH",
                     "OUTCOME", "TIMELINE");
  for (const auto& h : w.hops) {
    auto column = [&](double at) {
      return std::clamp(static_cast<int>((at - axis_start) / span * width), 0, width);
    };
    int wait_from = column(h.start_offset_ms - h.queue_wait_ms);
    int from = column(h.start_offset_ms);
    int to = std::max(from + 1, column(h.start_offset_ms + h.duration_ms));
    std::string bar(static_cast<std::size_t>(width), ' ');
    for (int i = wait_from; i < from && i < width; ++i) bar[static_cast<std::size_t>(i)] = '.';
    for (int i = from; i < to && i < width; ++i) bar[static_cast<std::size_t>(i)] = '#';
    out += fmt::format("{:<{}}  {:<{}}  {:>9}  {:>9}  {:>9}  {:>9}  {:<8}  |{}|\n", h.actor,
                       actor_width, h.envelope_id, envelope_width, ms(h.start_offset_ms),
                       ms(h.queue_wait_ms), ms(h.handler_ms), ms(h.publish_ms),
                       h.outcome.empty() ? "-" : h.outcome, bar);
  }
  return out;
}

json::object waterfall_json(const TraceWaterfall& w) {
  json::array hops;
  for (const auto& h : w.hops) {
    hops.push_back(json::object{{"actor", h.actor},
                                {"envelope_id", h.envelope_id},
                                {"replica", h.replica},
                                {"delivery_count", h.delivery_count},
                                {"start_offset_ms", h.start_offset_ms},
                                {"duration_ms", h.duration_ms},
                                {"queue_wait_ms", h.queue_wait_ms},
                                {"handler_ms", h.handler_ms},
                                {"publish_ms", h.publish_ms},
                                {"outcome", h.outcome}});
  }
  json::array ids;
  for (const auto& id : w.trace_ids) ids.push_back(json::string(id));
  return json::object{{"job_id", w.job_id},
                      {"status", w.status},
                      {"trace_ids", ids},
                      {"duration_ms", w.duration_ms},
                      {"hops", std::move(hops)}};
}

}  // namespace asya::cli
