#include "sidecar/tracing.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/rfc3339.hpp"
#include "envelope/build.hpp"
#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar {
namespace {

using SystemClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;

thread_local Hop* current_hop = nullptr;
thread_local BatchHops* current_batch = nullptr;

// The job id in route.metadata ({"job_id":"…"}), or "" (a plain scan: the gateway writes it as a
// plain string; anything else is left out of the attributes).
std::string job_id_of(std::string_view metadata) {
  constexpr std::string_view kKey = "\"job_id\"";
  auto at = metadata.find(kKey);
  if (at == std::string_view::npos) return {};
  at = metadata.find_first_not_of(" \t\r\n", at + kKey.size());
  if (at == std::string_view::npos || metadata[at] != ':') return {};
  at = metadata.find_first_not_of(" \t\r\n", at + 1);
  if (at == std::string_view::npos || metadata[at] != '"') return {};
  auto end = metadata.find('"', at + 1);
  if (end == std::string_view::npos) return {};
  std::string_view value = metadata.substr(at + 1, end - at - 1);
  if (value.find('\\') != std::string_view::npos) return {};
  return std::string(value);
}

std::int64_t millis_between(SystemClock::time_point from, SystemClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace

std::string replica_name() {
  std::string host;
  if (const char* env = std::getenv("HOSTNAME"); env && *env) {
    host = env;
  } else {
    char buffer[256] = {};
    if (::gethostname(buffer, sizeof buffer - 1) == 0) host = buffer;
  }
  return fmt::format("{}:{}", host.empty() ? "localhost" : host, ::getpid());
}

Tracing::Tracing(TracingOptions options) : options_(std::move(options)) {
  if (options_.collector) {
    otlp::ExporterOptions o;
    o.settings = *options_.collector;
    o.destination = "collector";
    collector_ = std::make_unique<otlp::Exporter>(std::move(o));
  }
  if (!options_.gateway_url.empty()) {
    otlp::ExporterOptions o;
    o.settings = options_.process;
    o.settings.url = options_.gateway_url + "/v1/traces";
    if (!options_.gateway_token.empty())
      o.settings.headers.emplace_back("Authorization", "Bearer " + options_.gateway_token);
    o.settings.timeout = std::chrono::milliseconds(2000);
    o.destination = "gateway";
    gateway_ = std::make_unique<otlp::Exporter>(std::move(o));
  }
}

Tracing::~Tracing() {
  stop(std::chrono::milliseconds(0));
}

void Tracing::export_spans(std::vector<otlp::Span> spans, bool tracked) {
  if (collector_ && gateway_ && tracked) {
    collector_->add(spans);
    gateway_->add(std::move(spans));
  } else if (collector_) {
    collector_->add(std::move(spans));
  } else if (gateway_ && tracked) {
    gateway_->add(std::move(spans));
  }
}

void Tracing::stop(std::chrono::milliseconds grace) {
  const auto deadline = SteadyClock::now() + grace;
  auto left = [&] {
    return std::max(
        std::chrono::milliseconds(0),
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()));
  };
  // Both flush at once; then each stops within what is left.
  if (collector_) collector_->flush(std::chrono::milliseconds(0));
  if (gateway_) gateway_->flush(std::chrono::milliseconds(0));
  if (collector_) collector_->stop(left());
  if (gateway_) gateway_->stop(left());
}

TracingOptions tracing_options(const Config& config) {
  TracingOptions options;
  options.actor = config.actor_name;
  options.replica = replica_name();
  options.collector = config.trace_collector;
  options.process = config.trace_process;
  options.gateway_url = config.gateway_url;
  options.gateway_token = config.gateway_internal_token;
  return options;
}

Hop::Hop(Tracing& tracing, const envelope::Envelope* in, const transport::Delivery& delivery,
         bool tracked)
    : tracing_(tracing), tracked_(tracked) {
  if (in && tracing.records(tracked)) start(*in, delivery);
}

Hop::Hop(Tracing& tracing, const envelope::Envelope* in, const transport::Delivery& delivery,
         bool tracked, InBatch)
    : tracing_(tracing), batched_(true), tracked_(tracked) {
  if (in && tracing.records(tracked)) start(*in, delivery);
}

Hop::Hop(Tracing& tracing, const transport::Delivery& delivery) : tracing_(tracing) {
  if (!tracing.enabled()) return;
  auto in = envelope::parse(delivery.body);
  if (!in) return;
  tracked_ = tracked_by_gateway(in->route_metadata_raw);
  if (tracing.records(tracked_)) start(*in, delivery);
}

void Hop::start(const envelope::Envelope& envelope, const transport::Delivery& delivery) {
  const envelope::Envelope* in = &envelope;
  active_ = true;
  delivery_ = &delivery;
  envelope_id_.assign(in->id);
  received_wall_ = SystemClock::now();
  received_steady_ = SteadyClock::now();
  auto headers = envelope::string_headers(*in, {"traceparent", "asya-sent-at"});
  if (headers[0]) {
    if (auto parent = otlp::parse_traceparent(*headers[0])) {
      trace_id_ = parent->trace_id;
      parent_span_id_ = parent->span_id;
      sampled_ = parent->sampled;
    }
  }
  if (trace_id_.empty()) trace_id_ = otlp::new_trace_id();
  span_id_ = otlp::new_span_id();
  if (headers[1]) {
    if (auto sent = parse_rfc3339(*headers[1]); sent && *sent <= received_wall_) sent_at_ = *sent;
  }
  const auto& options = tracing_.options();
  attributes_ = {{"asya.actor", options.actor},
                 {"asya.replica", options.replica},
                 {"asya.envelope_id", in->id},
                 {"asya.delivery_count", static_cast<std::int64_t>(delivery.delivery_count)},
                 {"asya.payload_bytes", static_cast<std::int64_t>(in->payload_raw.size())},
                 {"asya.envelope_bytes", static_cast<std::int64_t>(delivery.body.size())},
                 {"asya.route_index", static_cast<std::int64_t>(in->current)},
                 {"messaging.destination.name", delivery.queue}};
  std::string job = job_id_of(in->route_metadata_raw);
  if (!job.empty()) attributes_.push_back({"asya.job_id", job});
  if (in->parent_id) attributes_.push_back({"asya.parent_envelope_id", *in->parent_id});
  // Every span of the hop names it (actor, envelope, delivery), as a receiver groups them so.
  auto common =
      std::make_shared<std::vector<otlp::Attribute>>(attributes_.begin(), attributes_.begin() + 4);
  if (!job.empty()) common->push_back({"asya.job_id", job});
  common_ = std::move(common);
  // The wait is not the hop's own work: an attribute of the hop (a receiver draws it before the
  // hop), not a span of it.
  if (sent_at_)
    attributes_.push_back({"asya.queue_wait_ms", millis_between(*sent_at_, received_wall_)});
  if (batched_) return;  // the items of a batch share the thread: none is its current hop
  previous_ = current_hop;
  current_hop = this;
  log_scope_.emplace(trace_id_, span_id_);
}

Hop::~Hop() {
  if (!active_) return;
  if (!batched_) {
    current_hop = previous_;
    log_scope_.reset();
  }
  const auto end = SystemClock::now();
  otlp::Span hop;
  hop.trace_id = trace_id_;
  hop.span_id = span_id_;
  hop.parent_span_id = parent_span_id_;
  hop.name = "process " + tracing_.options().actor;
  hop.kind = otlp::SpanKind::kConsumer;
  hop.start_unix_nano = otlp::unix_nanos(received_wall_);
  hop.end_unix_nano = otlp::unix_nanos(end);
  hop.attributes = std::move(attributes_);
  hop.attributes.push_back({"asya.outcome", outcome_.empty() ? std::string("unknown") : outcome_});
  if (!failure_.empty()) hop.attributes.push_back({"asya.failure", failure_});
  if (outcome_ == "error") {
    hop.status = otlp::StatusCode::kError;
    hop.status_message = failure_;
  }
  // A publish the transport never confirmed (the hop was abandoned) still names its span: the
  // output may have gone out, so the next hop's parent must exist.
  for (auto& publish : publishes_) {
    if (publish.recorded) continue;
    otlp::Span span =
        child("publish " + publish.queue, otlp::SpanKind::kProducer, publish.stamped, end);
    span.span_id = publish.span_id;
    span.attributes.push_back({"messaging.destination.name", publish.queue});
    span.attributes.push_back({"asya.output_envelope_id", publish.envelope_id});
    span.status = otlp::StatusCode::kError;
    span.status_message = "not confirmed by the transport";
    children_.push_back(std::move(span));
  }
  children_.insert(children_.begin(), std::move(hop));
  tracing_.export_spans(std::move(children_), tracked_);
}

std::chrono::system_clock::time_point Hop::wall(std::chrono::steady_clock::time_point when) const {
  return received_wall_ +
         std::chrono::duration_cast<SystemClock::duration>(when - received_steady_);
}

otlp::Span Hop::child(std::string name, otlp::SpanKind kind, SystemClock::time_point start,
                      SystemClock::time_point end) const {
  otlp::Span span;
  span.trace_id = trace_id_;
  span.span_id = otlp::new_span_id();
  span.parent_span_id = span_id_;
  span.name = std::move(name);
  span.kind = kind;
  span.start_unix_nano = otlp::unix_nanos(start);
  span.end_unix_nano = std::max(span.start_unix_nano, otlp::unix_nanos(end));
  span.shared_attributes = common_;
  return span;
}

void Hop::stamp(Decision& decision) {
  if (!active_) return;
  // Whole microseconds, as asya-sent-at says: the next hop (which starts then) never starts
  // before its parent, the publish span.
  const auto now = std::chrono::time_point_cast<SystemClock::duration>(
      std::chrono::floor<std::chrono::microseconds>(SystemClock::now()));
  const std::string sent_at = format_rfc3339(now, Rfc3339Precision::kMicroseconds);
  for (Outgoing& out : decision.sends) {
    auto parsed = envelope::parse(out.body);
    if (!parsed) continue;  // cannot happen for bodies the router built; sent unchanged
    Publish publish{out.queue, otlp::new_span_id(), parsed->id, now, &out};
    const std::string traceparent =
        otlp::format_traceparent({trace_id_, publish.span_id, sampled_});
    out.body = envelope::with_string_headers(
        *parsed, out.body, {{"traceparent", traceparent}, {"asya-sent-at", sent_at}});
    publishes_.push_back(std::move(publish));
  }
  set_outcome(label(decision.status), decision.failure.label());
}

void Hop::set_outcome(std::string_view outcome, std::string_view failure) {
  outcome_.assign(outcome);
  failure_.assign(failure);
  last_mark_ = std::max(last_mark_, SystemClock::now());
}

void Hop::add_runtime_call(SystemClock::time_point start, double seconds, std::string_view result,
                           std::vector<otlp::Attribute> extra) {
  const auto end = start + std::chrono::duration_cast<SystemClock::duration>(
                               std::chrono::duration<double>(std::max(seconds, 0.0)));
  if (result.empty()) result = "ok";
  otlp::Span span = child("runtime call", otlp::SpanKind::kClient, start, end);
  span.attributes.push_back({"asya.runtime_result", std::string(result)});
  for (auto& attribute : extra) span.attributes.push_back(std::move(attribute));
  if (result != "ok") {
    span.status = otlp::StatusCode::kError;
    span.status_message.assign(result);
  }
  children_.push_back(std::move(span));
}

void Hop::add_publish(std::string_view queue, double seconds, bool ok, Publish* publish) {
  const auto end = SystemClock::now();
  const auto took = std::chrono::duration_cast<SystemClock::duration>(
      std::chrono::duration<double>(std::max(seconds, 0.0)));
  last_mark_ = end;
  // An output the router made during settle (an error envelope replacing one the transport
  // refused as too large) was not stamped: it gets a span of its own.
  otlp::Span span = child("publish " + std::string(queue), otlp::SpanKind::kProducer,
                          publish ? std::min(publish->stamped, end - took) : end - took, end);
  span.attributes.push_back({"messaging.destination.name", std::string(queue)});
  if (publish) {
    publish->recorded = true;
    span.span_id = publish->span_id;
    span.attributes.push_back({"asya.output_envelope_id", publish->envelope_id});
  }
  if (!ok) {
    span.status = otlp::StatusCode::kError;
    span.status_message = "send failed";
  }
  children_.push_back(std::move(span));
}

void Hop::add_settle(bool acked, bool nacked) {
  if (!acked && !nacked) return;
  const auto end = SystemClock::now();
  const auto began = last_mark_ == SystemClock::time_point{} ? end : last_mark_;
  children_.push_back(child(acked ? "ack" : "nack", otlp::SpanKind::kInternal, began, end));
}

BatchHops::BatchHops(Tracing& tracing, std::size_t items)
    : tracing_(tracing),
      hops_(items),
      anchor_wall_(SystemClock::now()),
      anchor_steady_(SteadyClock::now()) {
  attach();
}

BatchHops::~BatchHops() {
  detach();
  hops_.clear();  // each hop exports its spans
}

void BatchHops::attach() {
  if (attached_) return;
  previous_ = current_batch;
  current_batch = this;
  attached_ = true;
}

void BatchHops::detach() {
  if (!attached_) return;
  current_batch = previous_;
  attached_ = false;
}

void BatchHops::start(std::size_t i, const envelope::Envelope* in,
                      const transport::Delivery& delivery, bool tracked) {
  hops_.at(i).reset(new Hop(tracing_, in, delivery, tracked, Hop::InBatch{}));
}

void BatchHops::runtime_call(std::size_t i, SteadyClock::time_point start, double seconds,
                             std::string_view result, std::size_t index, std::size_t size) {
  if (!active(i)) return;
  // One wall-clock time for the call in every item's span (each hop converts its own way).
  const auto wall_start =
      anchor_wall_ + std::chrono::duration_cast<SystemClock::duration>(start - anchor_steady_);
  hops_[i]->add_runtime_call(wall_start, seconds, result,
                             {{"asya.batch_size", static_cast<std::int64_t>(size)},
                              {"asya.batch_index", static_cast<std::int64_t>(index)}});
}

void BatchHops::stamp(std::size_t i, Decision& decision) {
  if (active(i)) hops_[i]->stamp(decision);
}

Hop* BatchHops::hop_of(const Outgoing& out, Hop::Publish** publish) {
  *publish = nullptr;
  for (auto& hop : hops_) {
    if (!hop || !hop->active_) continue;
    for (auto& candidate : hop->publishes_)
      if (!candidate.recorded && candidate.output == &out) {
        *publish = &candidate;
        return hop.get();
      }
  }
  // An output rebuilt during settle (a copy, or an error envelope replacing an output refused as
  // too large) is found by its envelope id: an output's, or the input's own (error-end).
  auto parsed = envelope::parse(out.body);
  if (!parsed) return nullptr;
  for (auto& hop : hops_) {
    if (!hop || !hop->active_) continue;
    for (auto& candidate : hop->publishes_)
      if (!candidate.recorded && candidate.envelope_id == parsed->id &&
          candidate.queue == out.queue) {
        *publish = &candidate;
        return hop.get();
      }
  }
  for (auto& hop : hops_)
    if (hop && hop->active_ && hop->envelope_id_ == parsed->id) return hop.get();
  return nullptr;
}

Hop* BatchHops::hop_of(const transport::Delivery& delivery) {
  for (auto& hop : hops_)
    if (hop && hop->active_ && hop->delivery_ == &delivery) return hop.get();
  return nullptr;
}

void record_runtime_call(SteadyClock::time_point start, double seconds, std::string_view result) {
  if (Hop* hop = current_hop) hop->add_runtime_call(hop->wall(start), seconds, result);
}

void record_publish(std::string_view queue, double seconds, bool ok) {
  Hop* hop = current_hop;
  if (!hop) return;
  Hop::Publish* publish = nullptr;
  for (auto& candidate : hop->publishes_)
    if (!candidate.recorded && candidate.queue == queue) {
      publish = &candidate;
      break;
    }
  hop->add_publish(queue, seconds, ok, publish);
}

void record_publish(const Outgoing& out, double seconds, bool ok) {
  if (!current_batch) return record_publish(out.queue, seconds, ok);
  Hop::Publish* publish = nullptr;
  if (Hop* hop = current_batch->hop_of(out, &publish))
    hop->add_publish(out.queue, seconds, ok, publish);
}

void record_settle(bool acked, bool nacked) {
  if (Hop* hop = current_hop) hop->add_settle(acked, nacked);
}

void record_settle(const transport::Delivery& delivery, bool acked, bool nacked) {
  if (!current_batch) return record_settle(acked, nacked);
  if (Hop* hop = current_batch->hop_of(delivery)) hop->add_settle(acked, nacked);
}

}  // namespace asya::sidecar
