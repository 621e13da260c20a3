#include "sidecar/tracing.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

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
// plain string; anything else is left out of the attributes). A view into `metadata`.
std::string_view job_id_of(std::string_view metadata) {
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
  return value;
}

std::int64_t millis_between(SystemClock::time_point from, SystemClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// The buffers of the thread's finished hops (their capacity; a hop's spans are copied into the
// exporters' queues), taken again by the next hops: no allocation per message for them.
constexpr std::size_t kPooledBuffers = 16;
constexpr std::size_t kLargestPooledBuffer = 64 * 1024;
thread_local std::vector<std::string> buffer_pool;

std::string take_buffer(std::size_t reserve) {
  if (buffer_pool.empty()) {
    std::string buffer;
    buffer.reserve(reserve);
    return buffer;
  }
  std::string buffer = std::move(buffer_pool.back());
  buffer_pool.pop_back();
  buffer.clear();
  return buffer;
}

void give_buffer(std::string&& buffer) {
  if (buffer.capacity() > kLargestPooledBuffer || buffer_pool.size() >= kPooledBuffers) return;
  buffer_pool.push_back(std::move(buffer));
}

// Writes `when` (whole microseconds) as asya-sent-at's RFC 3339 text
// ("2026-12-07T05:27:00.123456Z", 27 characters). The part up to the second is formatted once per
// second and thread, and only the microseconds after that: a hop stamps its outputs so once per
// message.
void write_sent_at(SystemClock::time_point when, char (&into)[27]) {
  struct Second {
    std::chrono::sys_seconds second{};
    std::string text;  // format_rfc3339 of that second (microseconds precision)
  };
  thread_local Second last;
  const auto micros = std::chrono::floor<std::chrono::microseconds>(when);
  const auto second = std::chrono::floor<std::chrono::seconds>(micros);
  if (last.text.size() != sizeof into || second != last.second) {
    last.second = second;
    last.text = format_rfc3339(micros, Rfc3339Precision::kMicroseconds);
  }
  std::memcpy(into, last.text.data(), 20);  // "YYYY-MM-DDTHH:MM:SS."
  auto fraction = static_cast<unsigned>((micros - second).count());
  for (int i = 25; i >= 20; --i, fraction /= 10) into[i] = static_cast<char>('0' + fraction % 10);
  into[26] = 'Z';
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
  // The actor and replica are the same for every span of the process: resource attributes, once
  // per export request, rather than attributes of each span.
  auto add_process = [this](otlp::ExportSettings& settings) {
    auto& attributes = settings.resource.attributes;
    std::erase_if(attributes, [](const otlp::Attribute& a) {
      return a.key == "asya.actor" || a.key == "asya.replica";
    });
    attributes.push_back({"asya.actor", options_.actor});
    attributes.push_back({"asya.replica", options_.replica});
  };
  if (options_.collector) {
    otlp::ExporterOptions o;
    o.settings = *options_.collector;
    add_process(o.settings);
    o.destination = "collector";
    collector_ = std::make_unique<otlp::Exporter>(std::move(o));
  }
  if (!options_.gateway_url.empty()) {
    otlp::ExporterOptions o;
    o.settings = options_.process;
    add_process(o.settings);
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

void Tracing::export_spans(const otlp::EncodedSpans& spans, bool tracked) {
  if (collector_) collector_->add(spans);
  if (gateway_ && tracked) gateway_->add(spans);
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
  static constexpr std::string_view kNames[] = {"traceparent", "asya-sent-at"};
  std::optional<std::string_view> headers[2];
  envelope::string_header_views(*in, kNames, headers);
  has_parent_ =
      headers[0] && otlp::parse_traceparent_into(*headers[0], trace_id_, parent_span_id_, sampled_);
  if (!has_parent_) trace_id_ = otlp::new_trace_id_text();
  span_id_ = otlp::new_span_id_text();
  if (headers[1]) {
    if (auto sent = parse_rfc3339(*headers[1]); sent && *sent <= received_wall_) sent_at_ = *sent;
  }
  // Every span of the hop names it (envelope, delivery, job), as a receiver groups them so.
  attributes_ = take_buffer(512);
  otlp::append_attribute(attributes_, "asya.envelope_id", in->id);
  otlp::append_attribute(attributes_, "asya.delivery_count",
                         static_cast<std::int64_t>(delivery.delivery_count));
  const std::string_view job = job_id_of(in->route_metadata_raw);
  if (!job.empty()) otlp::append_attribute(attributes_, "asya.job_id", job);
  common_size_ = attributes_.size();
  // The hop span's own, after them.
  otlp::append_attribute(attributes_, "asya.payload_bytes",
                         static_cast<std::int64_t>(in->payload_raw.size()));
  otlp::append_attribute(attributes_, "asya.envelope_bytes",
                         static_cast<std::int64_t>(delivery.body.size()));
  otlp::append_attribute(attributes_, "asya.route_index", static_cast<std::int64_t>(in->current));
  otlp::append_attribute(attributes_, "messaging.destination.name", delivery.queue);
  if (in->parent_id) otlp::append_attribute(attributes_, "asya.parent_envelope_id", *in->parent_id);
  // The wait is not the hop's own work: an attribute of the hop (a receiver draws it before the
  // hop), not a span of it.
  if (sent_at_)
    otlp::append_attribute(attributes_, "asya.queue_wait_ms",
                           millis_between(*sent_at_, received_wall_));
  spans_.json = take_buffer(4096);
  if (batched_) return;  // the items of a batch share the thread: none is its current hop
  previous_ = current_hop;
  current_hop = this;
  log_scope_.emplace(trace_id_.view(), span_id_.view());
}

void Hop::leave_thread() {
  if (!active_ || batched_) return;
  current_hop = previous_;
  log_scope_.reset();
  batched_ = true;
}

Hop::~Hop() {
  if (!active_) return;
  if (!batched_) {
    current_hop = previous_;
    log_scope_.reset();
  }
  const auto end = SystemClock::now();
  // A publish the transport never confirmed (the hop was abandoned) still names its span: the
  // output may have gone out, so the next hop's parent must exist.
  for (auto& publish : publishes_) {
    if (publish.recorded) continue;
    child("publish ", publish.queue, otlp::SpanKind::kProducer, publish.stamped, end,
          &publish.span_id)
        .attribute("messaging.destination.name", publish.queue)
        .attribute("asya.output_envelope_id", publish.envelope_id)
        .end(otlp::StatusCode::kError, "not confirmed by the transport");
  }
  const bool error = outcome_ == "error";
  otlp::SpanWriter hop(spans_);
  hop.begin(trace_id_.view(), span_id_.view(), parent_span_id(), "process ",
            tracing_.options().actor, otlp::SpanKind::kConsumer, otlp::unix_nanos(received_wall_),
            otlp::unix_nanos(end))
      .attributes(attributes_)  // the common ones and the hop's own
      .attribute("asya.outcome", outcome_.empty() ? std::string_view("unknown") : outcome_);
  if (!failure_.empty()) hop.attribute("asya.failure", failure_);
  hop.end(error ? otlp::StatusCode::kError : otlp::StatusCode::kUnset, failure_);
  tracing_.export_spans(spans_, tracked_);
  give_buffer(std::move(spans_.json));
  give_buffer(std::move(attributes_));
}

std::chrono::system_clock::time_point Hop::wall(std::chrono::steady_clock::time_point when) const {
  return received_wall_ +
         std::chrono::duration_cast<SystemClock::duration>(when - received_steady_);
}

otlp::SpanWriter Hop::child(std::string_view name, std::string_view name_suffix,
                            otlp::SpanKind kind, SystemClock::time_point start,
                            SystemClock::time_point end, const otlp::SpanIdText* span_id) {
  const otlp::SpanIdText id = span_id ? *span_id : otlp::new_span_id_text();
  otlp::SpanWriter writer(spans_);
  writer
      .begin(trace_id_.view(), id.view(), span_id_.view(), name, name_suffix, kind,
             otlp::unix_nanos(start), otlp::unix_nanos(end))
      .attributes(std::string_view(attributes_).substr(0, common_size_));
  return writer;
}

SystemClock::time_point Hop::sent_at_instant() {
  if (!stamped_at_) {
    // Whole microseconds, as asya-sent-at says: the next hop (which starts then) never starts
    // before its parent, the publish span.
    stamped_at_ = std::chrono::time_point_cast<SystemClock::duration>(
        std::chrono::floor<std::chrono::microseconds>(SystemClock::now()));
    write_sent_at(*stamped_at_, stamped_at_text_);
  }
  return *stamped_at_;
}

void Hop::write_traceparent(const otlp::SpanIdText& span_id, char (&into)[55]) const {
  std::memcpy(into, "00-", 3);
  std::memcpy(into + 3, trace_id_.digits, sizeof trace_id_.digits);
  into[35] = '-';
  std::memcpy(into + 36, span_id.digits, sizeof span_id.digits);
  std::memcpy(into + 52, sampled_ ? "-01" : "-00", 3);
}

std::uint64_t Hop::stamp(std::string_view envelope_id, std::string_view queue,
                         std::span<const envelope::StringHeader>& headers) {
  headers = {};
  if (!active_) return 0;
  const auto now = sent_at_instant();
  Publish publish{std::string(queue), otlp::new_span_id_text(), std::string(envelope_id), now,
                  nullptr};
  publish.number = ++stamps_;
  write_traceparent(publish.span_id, stamp_traceparent_);
  stamp_headers_[0] = {"traceparent", std::string_view(stamp_traceparent_, 55)};
  stamp_headers_[1] = {"asya-sent-at", sent_at_text()};
  headers = stamp_headers_;
  publishes_.push_back(std::move(publish));
  return stamps_;
}

void Hop::stamp(Decision& decision) {
  if (!active_) return;
  const auto now = sent_at_instant();
  for (Outgoing& out : decision.sends) {
    if (out.trace_stamp != 0) {
      auto built = std::find_if(publishes_.begin(), publishes_.end(), [&](const Publish& p) {
        return p.number == out.trace_stamp && p.output == nullptr;
      });
      if (built != publishes_.end()) {
        built->output = &out;
        continue;
      }
    }
    out.join_parts();  // rewritten whole: an output in parts (body_parts.hpp) is joined first
    auto parsed = envelope::parse(out.body);
    if (!parsed) continue;  // cannot happen for bodies the router built; sent unchanged
    Publish publish{out.queue, otlp::new_span_id_text(), parsed->id, now, &out};
    char traceparent[55];
    write_traceparent(publish.span_id, traceparent);
    const envelope::StringHeader set[] = {{"traceparent", std::string_view(traceparent, 55)},
                                          {"asya-sent-at", sent_at_text()}};
    out.body = envelope::with_string_headers(*parsed, out.body, set);
    publishes_.push_back(std::move(publish));
  }
  // Stamped as built for outputs the decision does not send (it was replaced, e.g. by an
  // error-end for an output too large): never sent, so no span.
  std::erase_if(publishes_, [](const Publish& p) { return p.output == nullptr; });
  set_outcome(label(decision.status), decision.failure.label());
}

void Hop::set_outcome(std::string_view outcome, std::string_view failure) {
  outcome_.assign(outcome);
  failure_.assign(failure);
  last_mark_ = std::max(last_mark_, SystemClock::now());
}

void Hop::add_runtime_call(SystemClock::time_point start, double seconds, std::string_view result,
                           std::int64_t batch_size, std::int64_t batch_index) {
  const auto end = start + std::chrono::duration_cast<SystemClock::duration>(
                               std::chrono::duration<double>(std::max(seconds, 0.0)));
  if (result.empty()) result = "ok";
  otlp::SpanWriter span = child("runtime call", {}, otlp::SpanKind::kClient, start, end);
  span.attribute("asya.runtime_result", result);
  if (batch_size > 0)
    span.attribute("asya.batch_size", batch_size).attribute("asya.batch_index", batch_index);
  if (result != "ok")
    span.end(otlp::StatusCode::kError, result);
  else
    span.end();
}

void Hop::add_publish(std::string_view queue, double seconds, bool ok, Publish* publish) {
  const auto end = SystemClock::now();
  const auto took = std::chrono::duration_cast<SystemClock::duration>(
      std::chrono::duration<double>(std::max(seconds, 0.0)));
  last_mark_ = end;
  // An output the router made during settle (an error envelope replacing one the transport
  // refused as too large) was not stamped: it gets a span of its own.
  otlp::SpanWriter span = child("publish ", queue, otlp::SpanKind::kProducer,
                                publish ? std::min(publish->stamped, end - took) : end - took, end,
                                publish ? &publish->span_id : nullptr);
  span.attribute("messaging.destination.name", queue);
  if (publish) {
    publish->recorded = true;
    span.attribute("asya.output_envelope_id", publish->envelope_id);
  }
  if (!ok)
    span.end(otlp::StatusCode::kError, "send failed");
  else
    span.end();
}

void Hop::add_settle(bool acked, bool nacked) {
  if (!acked && !nacked) return;
  const auto end = SystemClock::now();
  const auto began = last_mark_ == SystemClock::time_point{} ? end : last_mark_;
  child(acked ? "ack" : "nack", {}, otlp::SpanKind::kInternal, began, end).end();
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

void BatchHops::adopt(std::unique_ptr<Hop> hop) {
  hops_.push_back(std::move(hop));
}

void BatchHops::runtime_call(std::size_t i, SteadyClock::time_point start, double seconds,
                             std::string_view result, std::size_t index, std::size_t size) {
  if (!active(i)) return;
  // One wall-clock time for the call in every item's span (each hop converts its own way).
  const auto wall_start =
      anchor_wall_ + std::chrono::duration_cast<SystemClock::duration>(start - anchor_steady_);
  hops_[i]->add_runtime_call(wall_start, seconds, result, static_cast<std::int64_t>(size),
                             static_cast<std::int64_t>(index));
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

OutputTrace* current_output_trace() {
  return current_hop;
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
