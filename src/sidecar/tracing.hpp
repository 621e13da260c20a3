// Trace spans of a sidecar (docs/tracing.md): for every envelope one hop span
// "process <actor>" (kind CONSUMER, child of the span named by the envelope's `traceparent`,
// from the receive to the ack), with children "runtime call" (CLIENT), "publish <queue>" (one per
// output, PRODUCER) and "ack"/"nack". The queue wait, from the sender's asya-sent-at to the
// receive, is the hop's attribute asya.queue_wait_ms. Each output gets its own
// publish span as its new parent: before it is sent, its `traceparent` is rewritten to this trace
// and that span, and `asya-sent-at` is set (PROTOCOL §1), so the next hop links to it.
//
// Spans go to the collector of ASYA_OTLP_ENDPOINT (all envelopes) and, when ASYA_GATEWAY_URL is
// set, to the gateway's POST /v1/traces (only envelopes the gateway tracks), each through its own
// otlp::Exporter: asynchronous and bounded, so tracing never delays or loses a message. With
// neither, nothing is recorded and envelopes pass through unchanged.
//
// Thread model: one Tracing per process (thread-safe); one Hop per message, on the worker thread
// that handles it. While a Hop is alive it is its thread's current hop: the record_* hooks called
// from deep in the runner record into it (they do nothing on a thread without one), and every log
// line of the thread carries its trace_id and span_id. A batch (ASYA_BATCH_MAX_SIZE > 1) has one
// Hop per item, owned by a BatchHops that is its thread's current batch instead: the hooks find
// the item's hop by the output or the delivery they are given.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/otlp/exporter.hpp"
#include "common/otlp/otlp_json.hpp"
#include "common/otlp/span.hpp"
#include "envelope/envelope.hpp"
#include "sidecar/config.hpp"
#include "sidecar/router.hpp"
#include "transport/transport.hpp"

namespace asya::sidecar {

struct TracingOptions {
  std::string actor;
  std::string replica;  // asya.replica: "<host name>:<pid>" by default (replica_name())
  std::optional<otlp::ExportSettings> collector;  // nullopt: no collector
  otlp::ExportSettings process;                   // resource and limits for the gateway export
  std::string gateway_url;                        // empty: no gateway export
  std::string gateway_token;                      // Authorization: Bearer for the gateway export
};

// The options of a sidecar configured by `config`.
TracingOptions tracing_options(const Config& config);

// "<host name>:<pid>" ($HOSTNAME, the pod name in Kubernetes, else gethostname()).
std::string replica_name();

class Tracing {
 public:
  explicit Tracing(TracingOptions options);
  ~Tracing();  // stop(0)
  Tracing(const Tracing&) = delete;
  Tracing& operator=(const Tracing&) = delete;

  // Whether spans of an envelope are recorded: a collector is set, or the gateway tracks it.
  bool records(bool tracked) const { return collector_ || (gateway_ && tracked); }
  // Whether any envelope may be recorded (an exporter exists).
  bool enabled() const { return collector_ || gateway_; }

  // Hands finished spans to the exporters (the gateway's only when `tracked`): each copies them
  // into its queue. Never blocks.
  void export_spans(const otlp::EncodedSpans& spans, bool tracked);

  // Sends what is queued for at most `grace` in total, then stops the exporters. Idempotent.
  void stop(std::chrono::milliseconds grace);

  const TracingOptions& options() const { return options_; }

 private:
  TracingOptions options_;
  std::unique_ptr<otlp::Exporter> collector_;
  std::unique_ptr<otlp::Exporter> gateway_;
};

// The spans of one message on one worker thread (see the thread model above). Records nothing
// when tracing is off for it (Tracing::records), or the body is not an envelope.
class Hop : public OutputTrace {
 public:
  // `in`: the parsed envelope (nullptr when the body is not one); `tracked`: the gateway tracks
  // it. Call right after the message was received and parsed.
  Hop(Tracing& tracing, const envelope::Envelope* in, const transport::Delivery& delivery,
      bool tracked);
  // For an end actor, which does not parse the body itself: parses it when tracing is enabled
  // (the gateway tracks it when route.metadata has a job_id).
  Hop(Tracing& tracing, const transport::Delivery& delivery);
  // Finishes the hop span and exports every span of the hop.
  ~Hop() override;
  Hop(const Hop&) = delete;
  Hop& operator=(const Hop&) = delete;

  bool active() const { return active_; }
  // Stops being its thread's current hop (the innermost: call it before a hop created later on
  // this thread ends), so it can outlive the step that made it: a message whose settling is
  // deferred (sidecar/runner_defer.cpp) is given to a BatchHops (adopt) to record its publish and
  // ack spans, and exports them when it goes.
  void leave_thread();
  std::string_view trace_id() const { return trace_id_.view(); }
  std::string_view span_id() const { return span_id_.view(); }

  // Gives every send of `decision` its own publish span: an output the router built with this
  // hop's trace context (OutputTrace below) already names its span, and is left as it is (in
  // parts, when it is); any other output is joined, parsed and its traceparent rewritten to this
  // trace and a new span, and asya-sent-at set. A span the
  // router stamped for an output the decision does not send is forgotten. Also takes the hop's
  // outcome from the decision (set_outcome).
  void stamp(Decision& decision);
  // OutputTrace: the traceparent of a new publish span of this hop for output `envelope_id` to
  // `queue`, and asya-sent-at (microseconds, RFC 3339; one instant for every output of the hop,
  // when the first is stamped).
  std::uint64_t stamp(std::string_view envelope_id, std::string_view queue,
                      std::span<const envelope::StringHeader>& headers) override;
  // asya.outcome (and the span status: error for "error").
  void set_outcome(std::string_view outcome, std::string_view failure);

 private:
  struct Publish {
    std::string queue;
    otlp::SpanIdText span_id;
    std::string envelope_id;
    std::chrono::system_clock::time_point stamped;
    const Outgoing* output = nullptr;  // the send it was stamped on (found again by address)
    bool recorded = false;
    std::uint64_t number = 0;  // OutputTrace::stamp's number (0: stamped by Hop::stamp)
  };
  // The instant every output of the hop is sent at (set by the first stamp), and its text.
  std::chrono::system_clock::time_point sent_at_instant();
  // "00-<trace id>-<span_id>-<flags>" (55 characters).
  void write_traceparent(const otlp::SpanIdText& span_id, char (&into)[55]) const;
  std::string_view parent_span_id() const {
    return has_parent_ ? parent_span_id_.view() : std::string_view();
  }

  friend class BatchHops;
  friend void record_runtime_call(std::chrono::steady_clock::time_point, double, std::string_view);
  friend void record_publish(std::string_view, double, bool);
  friend void record_publish(const Outgoing&, double, bool);
  friend void record_settle(bool, bool);
  friend void record_settle(const transport::Delivery&, bool, bool);
  // A hop of a batch item: never its thread's current hop (BatchHops finds it).
  struct InBatch {};
  Hop(Tracing& tracing, const envelope::Envelope* in, const transport::Delivery& delivery,
      bool tracked, InBatch);
  void start(const envelope::Envelope& in, const transport::Delivery& delivery);
  // The "runtime call" child span (from `start`, wall clock); a batch's call (`batch_size` > 0)
  // also names the batch's size and this item's index in it.
  void add_runtime_call(std::chrono::system_clock::time_point start, double seconds,
                        std::string_view result, std::int64_t batch_size = 0,
                        std::int64_t batch_index = 0);
  // The publish span of a send that took `seconds` and ended now: the stamped output `publish`
  // (nullptr: an output made during settle, which gets a span of its own).
  void add_publish(std::string_view queue, double seconds, bool ok, Publish* publish);
  void add_settle(bool acked, bool nacked);
  // Writes the head of a child span (span id `span_id`, or a new one) and the hop's common
  // attributes into spans_; the caller adds its own attributes and ends it.
  otlp::SpanWriter child(std::string_view name, std::string_view name_suffix, otlp::SpanKind kind,
                         std::chrono::system_clock::time_point start,
                         std::chrono::system_clock::time_point end,
                         const otlp::SpanIdText* span_id = nullptr);
  std::chrono::system_clock::time_point wall(std::chrono::steady_clock::time_point when) const;

  Tracing& tracing_;
  bool batched_ = false;  // a batch item's hop: not the thread's current hop
  const transport::Delivery* delivery_ = nullptr;
  std::string envelope_id_;
  bool active_ = false;
  bool tracked_ = false;
  bool has_parent_ = false;
  bool sampled_ = true;
  otlp::TraceIdText trace_id_;
  otlp::SpanIdText span_id_, parent_span_id_;
  std::chrono::system_clock::time_point received_wall_;
  std::chrono::steady_clock::time_point received_steady_;
  std::optional<std::chrono::system_clock::time_point> sent_at_;
  // Attributes written once as OTLP JSON (otlp::append_attribute): first those of every span of
  // the hop (envelope id, delivery count, job id; its first common_size_ bytes), then the hop
  // span's own. The actor and replica are the exporters' resource attributes.
  std::string attributes_;
  std::size_t common_size_ = 0;
  std::vector<Publish> publishes_;
  // The hop's finished spans, written as they end (otlp::SpanWriter); the hop span last. Its
  // buffer and attributes_' are the thread's, reused from hop to hop (their capacity).
  otlp::EncodedSpans spans_;
  // When the last step ended (stamp, outcome, publish): where the ack span starts.
  std::chrono::system_clock::time_point last_mark_{};
  std::string outcome_, failure_;
  std::optional<std::chrono::system_clock::time_point> stamped_at_;
  char stamped_at_text_[27];  // asya-sent-at: RFC 3339, microseconds
  std::string_view sent_at_text() const { return {stamped_at_text_, sizeof stamped_at_text_}; }
  char stamp_traceparent_[55];  // the last OutputTrace::stamp's
  envelope::StringHeader stamp_headers_[2];
  std::uint64_t stamps_ = 0;
  Hop* previous_ = nullptr;
  std::optional<log::TraceScope> log_scope_;
};

// The hops of one batch (ASYA_BATCH_MAX_SIZE > 1; docs/tracing.md "Batches"), on the worker thread
// that runs it: one Hop per item, each the child of its own item's traceparent, so every item of a
// batch gets the spans a single message gets and its outputs their own trace context. While alive
// it is its thread's current batch: record_publish(const Outgoing&) and
// record_settle(const Delivery&) record into the hop of the item the output or delivery belongs
// to. The batch's one runtime call is recorded in each sent item's hop as a "runtime call" span of
// its own (same start and end for all, with asya.batch_size and asya.batch_index), so every trace
// is complete on its own and a waterfall shows each hop's handler time. Not thread-safe; not
// copyable. Destroying it finishes and exports every hop.
class BatchHops {
 public:
  BatchHops(Tracing& tracing, std::size_t items);
  ~BatchHops();
  BatchHops(const BatchHops&) = delete;
  BatchHops& operator=(const BatchHops&) = delete;

  // Starts the hop of item `i` (< items) received as `delivery`; `in`: its parsed envelope
  // (nullptr: not an envelope, nothing recorded); `tracked`: the gateway tracks it.
  void start(std::size_t i, const envelope::Envelope* in, const transport::Delivery& delivery,
             bool tracked);
  // The batch's runtime call, in the hop of item `i`: began at `start`, took `seconds`, with the
  // item's result (the failure label; empty: ok); the item was at `index` of `size` envelopes.
  void runtime_call(std::size_t i, std::chrono::steady_clock::time_point start, double seconds,
                    std::string_view result, std::size_t index, std::size_t size);
  // Hop::stamp for item `i`'s decision.
  void stamp(std::size_t i, Decision& decision);

  // Adds a hop that left its thread (Hop::leave_thread) as the next item.
  void adopt(std::unique_ptr<Hop> hop);

  bool active(std::size_t i) const { return hops_.at(i) && hops_[i]->active(); }
  const Hop* hop(std::size_t i) const { return hops_.at(i).get(); }

  // The constructor makes it the constructing thread's current batch. A batch settled on another
  // thread (sidecar/batch_settler.hpp) is detached from the worker before it is handed over and
  // attached by the thread that settles it, which then destroys it. Each call on its own thread.
  void attach();
  void detach();

 private:
  friend void record_publish(const Outgoing&, double, bool);
  friend void record_settle(const transport::Delivery&, bool, bool);
  Hop* hop_of(const Outgoing& out, Hop::Publish** publish);
  Hop* hop_of(const transport::Delivery& delivery);

  Tracing& tracing_;
  std::vector<std::unique_ptr<Hop>> hops_;
  std::chrono::system_clock::time_point anchor_wall_;  // = anchor_steady_, for runtime_call
  std::chrono::steady_clock::time_point anchor_steady_;
  BatchHops* previous_ = nullptr;
  bool attached_ = false;
};

// The calling thread's current hop as the OutputTrace of the outputs the router builds for it
// (nullptr without one: the router builds them as they are).
OutputTrace* current_output_trace();

// Hooks into the calling thread's current Hop (no-ops without one):
// the runtime call that began at `start` and took `seconds`, with its result (the failure label;
// empty: ok);
void record_runtime_call(std::chrono::steady_clock::time_point start, double seconds,
                         std::string_view result);
// a send to `queue` that took `seconds` and ended now (matched to the stamped output);
void record_publish(std::string_view queue, double seconds, bool ok);
// the send of `out`, as above; with a current batch, in the hop of the item `out` belongs to.
void record_publish(const Outgoing& out, double seconds, bool ok);
// the ack (or nack) of the input, from the end of the step before it (the last publish, or the
// decision) until now; nothing when neither was done.
void record_settle(bool acked, bool nacked);
// the same for `delivery`; with a current batch, in the hop of the item it delivered.
void record_settle(const transport::Delivery& delivery, bool acked, bool nacked);

}  // namespace asya::sidecar
