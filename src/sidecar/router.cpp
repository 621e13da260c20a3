#include "sidecar/router.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "common/failpoint.hpp"
#include "envelope/build.hpp"
#include "envelope/fanout.hpp"
#include "envelope/response.hpp"

namespace asya::sidecar {

std::string_view message_type_label(MessageType type) {
  switch (type) {
    case MessageType::kRoute:
      return "routing";
    case MessageType::kHappyEnd:
      return "happy_end";
    case MessageType::kErrorEnd:
      return "error_end";
    case MessageType::kRetry:
      return "retry";
  }
  return "routing";
}

namespace {

double default_jitter() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

// Sends one output: send() with its body, or send_many() with its parts (Outgoing::message).
Status send_one(transport::Transport& transport, const Outgoing& out) {
  if (!out.parts) return transport.send(out.queue, out.body, out.delay);
  MessageStorage storage;
  transport::OutgoingMessage message = out.message(transport, storage);
  return std::move(transport.send_many(std::span(&message, 1)).front());
}

Outgoing outgoing(std::string queue, std::string body, std::chrono::milliseconds delay,
                  MessageType type) {
  Outgoing out;
  out.queue = std::move(queue);
  out.body = std::move(body);
  out.delay = delay;
  out.type = type;
  return out;
}

// The first `count` actor names as a JSON array, e.g. ["a","b"].
std::string actors_text(const std::vector<std::string>& actors, std::size_t count) {
  std::string text = "[";
  for (std::size_t i = 0; i < count && i < actors.size(); ++i) {
    if (i > 0) text += ',';
    text += '"' + actors[i] + '"';
  }
  return text + "]";
}

bool is_retryable(FailureCode code, bool retry_on_processing_error) {
  return code == FailureCode::kRuntimeUnavailable || code == FailureCode::kRuntimeTimeout ||
         code == FailureCode::kRuntimeProtocolError ||
         (retry_on_processing_error && code == FailureCode::kProcessingError);
}

}  // namespace

Router::Router(RouterOptions options) : options_(std::move(options)) {
  if (!options_.jitter) options_.jitter = default_jitter;
}

std::chrono::milliseconds Router::backoff(int attempt) const {
  using std::chrono::milliseconds;
  std::int64_t base = options_.retry_backoff.count();
  std::int64_t cap = options_.retry_backoff_max.count();
  std::int64_t delay = base;
  for (int i = 1; i < attempt && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  double factor = 0.5 + 0.5 * std::clamp(options_.jitter(), 0.0, 1.0);
  return milliseconds(static_cast<std::int64_t>(static_cast<double>(delay) * factor));
}

std::string Router::error_body(const envelope::Envelope& in, const envelope::ErrorInfo& info,
                               std::size_t limit) const {
  if (limit == 0) limit = options_.max_message_bytes;
  std::string body = envelope::build_error(in, options_.actor, info);
  if (body.size() <= limit) return body;
  // Too large with the original payload (an input close to the limit): say how large it was
  // instead, so the error still reaches error-end rather than failing every send forever.
  const std::size_t payload_bytes = in.payload_raw.size();
  const std::string truncated =
      fmt::format(R"({{"truncated":true,"size_bytes":{}}})", payload_bytes);
  envelope::Envelope smaller = in;
  smaller.payload_raw = truncated;
  envelope::ErrorInfo noted = info;
  noted.message += fmt::format(
      " (original_payload of {} bytes replaced by {{\"truncated\": true, \"size_bytes\": {}}}: "
      "the error envelope was {} bytes, more than the transport's limit of {} bytes)",
      payload_bytes, payload_bytes, body.size(), limit);
  body = envelope::build_error(smaller, options_.actor, noted);
  if (body.size() <= limit) return body;
  // Still too large: the headers or unknown fields are what is big. Keep id, route and deadline.
  std::size_t before = body.size();
  smaller.headers_raw = {};
  smaller.unknown_fields.clear();
  noted.message += fmt::format(
      "; headers and unknown fields dropped too (the envelope was still {} bytes)", before);
  return envelope::build_error(smaller, options_.actor, noted);
}

Outgoing Router::error_outgoing(const envelope::Envelope& in, envelope::ErrorInfo info) const {
  // PROTOCOL §4a: a failing branch of a fan-out completes its slot at the join instead.
  if (info.code != label(FailureCode::kRouteMismatch)) {
    if (auto branch = envelope::build_failed_branch(in, options_.actor, info)) {
      return outgoing(options_.queue_prefix + in.actors[in.current + 1], std::move(*branch),
                      std::chrono::milliseconds(0), MessageType::kRoute);
    }
  }
  Outgoing out = outgoing(options_.error_end_queue, error_body(in, info),
                          std::chrono::milliseconds(0), MessageType::kErrorEnd);
  out.error = std::move(info);
  return out;
}

Decision Router::to_error_end(const envelope::Envelope& in, FailureCode code,
                              std::string message) const {
  const std::string text(label(code));
  envelope::ErrorInfo info{text, message, text, ""};
  Decision d;
  d.sends.push_back(error_outgoing(in, std::move(info)));
  d.status = ProcessedStatus::kError;
  d.failure = code;
  d.failure_message = std::move(message);
  return d;
}

std::optional<Decision> Router::before_runtime(const transport::Delivery& delivery,
                                               const Result<envelope::Envelope>& parsed,
                                               std::chrono::system_clock::time_point now) const {
  if (!parsed) {
    // Never loops: the wrapped envelope goes straight to error-end, whose end actor never routes.
    Decision d;
    d.sends.push_back(
        outgoing(options_.error_end_queue,
                 envelope::wrap_unparseable(delivery.body, options_.actor, parsed.error().message),
                 std::chrono::milliseconds(0), MessageType::kErrorEnd));
    d.status = ProcessedStatus::kError;
    d.failure = FailureCode::kMsgParsingError;
    return d;
  }
  const envelope::Envelope& in = *parsed;
  if (delivery.delivery_count > static_cast<std::uint32_t>(options_.max_deliveries))
    return to_error_end(in, FailureCode::kMaxDeliveriesExceeded,
                        fmt::format("delivered {} times, more than ASYA_MAX_DELIVERIES={}",
                                    delivery.delivery_count, options_.max_deliveries));
  if (envelope::deadline_passed(in, now))
    return to_error_end(in, FailureCode::kDeadlineExceeded,
                        fmt::format("deadline {} passed before actor {} started",
                                    in.deadline.value_or(""), options_.actor));
  if (in.route_done() || in.current_actor() != options_.actor)
    return to_error_end(
        in, FailureCode::kRouteMismatch,
        in.route_done()
            ? fmt::format(
                  "route is done (current={} of {} actors) but the envelope reached actor {}",
                  in.current, in.actors.size(), options_.actor)
            : fmt::format("route points at actor {} (current={}) but the envelope reached actor {}",
                          in.current_actor(), in.current, options_.actor));
  return std::nullopt;
}

Decision Router::failure_with_retry(const envelope::Envelope& in, Failure failure,
                                    std::string message, std::string type,
                                    std::string traceback) const {
  int attempt = envelope::attempt_of(in);
  if (is_retryable(failure.code(), options_.retry_on_processing_error) &&
      attempt < options_.retry_max_attempts) {
    Decision d;
    d.sends.push_back(outgoing(own_queue(), envelope::with_attempt(in, attempt + 1),
                               backoff(attempt), MessageType::kRetry));
    d.status = ProcessedStatus::kRetry;
    d.failure = std::move(failure);
    d.failure_message = std::move(message);
    d.retried = true;
    return d;
  }
  const std::string code(failure.label());
  envelope::ErrorInfo info{code, message, type.empty() ? code : std::move(type),
                           std::move(traceback)};
  Decision d;
  d.sends.push_back(error_outgoing(in, std::move(info)));
  d.status = ProcessedStatus::kError;
  d.failure = std::move(failure);
  d.failure_message = std::move(message);
  return d;
}

Decision Router::after_runtime(const envelope::Envelope& in, const transport::Delivery& delivery,
                               const wire::CallResult& call, std::string_view response,
                               bool response_padded, PayloadOffload* offload,
                               std::size_t parts_above, OutputTrace* trace) const {
  switch (call.status) {
    case wire::CallStatus::kTimeout: {
      Decision d = failure_with_retry(in, FailureCode::kRuntimeTimeout, call.error, "", "");
      d.runtime_unhealthy = true;
      return d;
    }
    case wire::CallStatus::kUnavailable: {
      // Nacked rather than re-enqueued: the delivery count grows, so a message that kills the
      // runtime every time is stopped by ASYA_MAX_DELIVERIES.
      Decision d;
      d.then = Then::kNack;
      d.nack_delay = backoff(static_cast<int>(delivery.delivery_count));
      d.status = ProcessedStatus::kRequeued;
      d.failure = FailureCode::kRuntimeUnavailable;
      d.failure_message = call.error;
      d.wait_for_runtime = true;
      d.runtime_not_ready = call.runtime_not_ready;
      return d;
    }
    case wire::CallStatus::kProtocol:
      if (call.too_large) return to_error_end(in, FailureCode::kMessageTooLarge, call.error);
      return failure_with_retry(in, FailureCode::kRuntimeProtocolError, call.error, "", "");
    case wire::CallStatus::kOk:
      break;
  }

  auto items = response_padded ? envelope::parse_response_padded(response)
                               : envelope::parse_response(response);
  if (!items)
    return failure_with_retry(in, FailureCode::kRuntimeProtocolError, items.error().message, "",
                              "");
  // Every result must continue this request's route (PROTOCOL §3: actors[0..current] of the input
  // are a prefix of the output's actors). An answer that does not is not this request's answer.
  const std::size_t kept = std::min(in.current + 1, in.actors.size());
  for (std::size_t i = 0; i < items->size(); ++i) {
    const auto& item = (*items)[i];
    if (item.is_error) continue;
    if (item.actors.size() < kept ||
        !std::equal(in.actors.begin(), in.actors.begin() + static_cast<std::ptrdiff_t>(kept),
                    item.actors.begin())) {
      return failure_with_retry(
          in, FailureCode::kRuntimeProtocolError,
          fmt::format("response element {}: route.actors {} does not start with the request's "
                      "route.actors[0..{}] {}: the answer does not continue this message's route "
                      "(a runtime may change a route's future, never its past), so it may belong "
                      "to another message",
                      i, actors_text(item.actors, item.actors.size()), in.current,
                      actors_text(in.actors, kept)),
          "", "");
    }
  }

  // "payload_unchanged": the request's payload, byte for byte, as this sidecar received it: the
  // input's text (a payload reference when it came as one: the offload then forwards it).
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto& item = (*items)[i];
    if (!item.payload_unchanged) continue;
    if (!options_.accept_payload_unchanged)
      return failure_with_retry(
          in, FailureCode::kRuntimeProtocolError,
          fmt::format("response element {}: \"payload_unchanged\" is not accepted by actor {}: "
                      "a join's request payload is its group's branches, which the sidecar does "
                      "not keep (and never declared the feature); send the payload",
                      i, options_.actor),
          "", "");
    item.payload_raw = in.payload_raw;
  }

  Decision d;
  d.status = ProcessedStatus::kSuccess;
  // A fan-out stamps each child with its group (PROTOCOL §4a), so a join can collect them.
  const bool fan_out = items->size() >= 2 || (items->size() == 1 && (*items)[0].fanout);
  if (items->empty()) {
    // Abort: the input itself, unchanged, ends the pipeline.
    d.sends.push_back(outgoing(options_.happy_end_queue, std::string(delivery.body),
                               std::chrono::milliseconds(0), MessageType::kHappyEnd));
    return d;
  }
  if (items->size() == 1 && (*items)[0].is_error) {
    const auto& e = (*items)[0];
    return failure_with_retry(in, Failure::from_runtime(e.error_code), e.error_message,
                              e.error_type, e.error_traceback);
  }
  for (std::size_t i = 0; i < items->size(); ++i) {
    const auto& item = (*items)[i];
    if (item.is_error) {
      envelope::ErrorInfo info{item.error_code, item.error_message,
                               item.error_type.empty() ? item.error_code : item.error_type,
                               item.error_traceback};
      d.sends.push_back(error_outgoing(in, std::move(info)));
      d.status = ProcessedStatus::kError;
      d.failure = Failure::from_runtime(item.error_code);
      continue;
    }
    Outgoing out;
    if (item.current < item.actors.size()) {
      out.queue = options_.queue_prefix + item.actors[item.current];
      out.type = MessageType::kRoute;
    } else {
      out.queue = options_.happy_end_queue;
      out.type = MessageType::kHappyEnd;
    }
    std::span<const envelope::StringHeader> trace_headers;
    if (trace) out.trace_stamp = trace->stamp(envelope::output_id(in, i), out.queue, trace_headers);
    const std::string fanout_headers =
        fan_out ? envelope::fanout_child_headers(in, item.headers_raw, i, items->size())
                : std::string();
    if (offload) {
      auto replaced = offload->replace(item.payload_raw, envelope::output_id(in, i));
      if (!replaced) {
        Decision nack;
        nack.then = Then::kNack;
        nack.nack_delay = backoff(static_cast<int>(delivery.delivery_count));
        nack.status = ProcessedStatus::kRequeued;
        nack.failure = FailureCode::kPayloadStoreError;
        nack.failure_message = replaced.error().message;
        return nack;
      }
      if (*replaced) {
        envelope::ResponseItem by_reference = item;
        by_reference.payload_raw = **replaced;
        out.body = envelope::build_output(in, i, by_reference, fanout_headers, trace_headers);
      }
    }
    if (out.body.empty() && parts_above > 0 && item.payload_raw.size() > parts_above) {
      // Left in the answer: the transport writes head, payload and tail (body_parts.hpp).
      out.parts.emplace();
      out.parts->head = envelope::build_output_head(in, i, item, fanout_headers, trace_headers);
      out.parts->payload = item.payload_raw;
      out.parts->tail = envelope::kOutputTail;
    } else if (out.body.empty()) {
      out.body = envelope::build_output(in, i, item, fanout_headers, trace_headers);
    }
    if (out.body_size() > options_.max_message_bytes)
      return to_error_end(
          in, FailureCode::kMessageTooLarge,
          fmt::format("output {} is {} bytes, more than the transport's limit of {} bytes "
                      "(ASYA_MAX_MESSAGE_BYTES)",
                      i, out.body_size(), options_.max_message_bytes));
    if (i >= 1) {
      out.fanout_child = true;
      out.id = envelope::output_id(in, i);
      out.actors = item.actors;
      out.current = item.current;
    }
    d.sends.push_back(std::move(out));
  }
  return d;
}

std::optional<Decision> Router::failed_branch_passing(const envelope::Envelope& in) const {
  if (!envelope::may_carry_fanout(in.headers_raw)) return std::nullopt;
  auto frames = envelope::fanout_frames(in.headers_raw);
  if (!frames || frames->empty() || !frames->back().failed) return std::nullopt;
  Decision d;
  d.status = ProcessedStatus::kSuccess;
  std::string body = envelope::pass_failed_branch(in);
  if (in.current + 1 < in.actors.size()) {
    d.sends.push_back(outgoing(options_.queue_prefix + in.actors[in.current + 1], std::move(body),
                               std::chrono::milliseconds(0), MessageType::kRoute));
  } else {
    // No join after it: the failure ends where any failure ends.
    d.sends.push_back(outgoing(options_.error_end_queue, std::move(body),
                               std::chrono::milliseconds(0), MessageType::kErrorEnd));
  }
  return d;
}

std::optional<Settlement> Router::settle_in_one_step(transport::Transport& transport,
                                                     const transport::Delivery& delivery,
                                                     const Decision& decision,
                                                     const SendHooks& hooks) const {
  // A before_send hook runs before each send, which one step cannot interleave; the crash point
  // between the outputs and the ack must stay reachable in fault tests.
  if (decision.then != Then::kAck || decision.sends.empty() || hooks.before_send ||
      failpoint_armed("sidecar.before_ack"))
    return std::nullopt;
  std::vector<transport::OutgoingMessage> messages;
  std::vector<MessageStorage> storage(decision.sends.size());
  messages.reserve(decision.sends.size());
  for (std::size_t i = 0; i < decision.sends.size(); ++i) {
    const Outgoing& out = decision.sends[i];
    // Too large for the transport: the ordinary path rebuilds it or sends the input to error-end.
    if (out.body_size() > transport.max_message_bytes()) return std::nullopt;
    messages.push_back(out.message(transport, storage[i]));
  }
  auto started = std::chrono::steady_clock::now();
  std::optional<Status> acked = transport.send_then_ack(messages, delivery);
  if (!acked) return std::nullopt;  // nothing was sent: the ordinary path does it step by step
  // Each output gets its share of the shared step's time (as in settle_batch).
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() /
      static_cast<double>(messages.size());
  Settlement result;
  for (const Outgoing& out : decision.sends) {
    if (hooks.after_send) hooks.after_send(out, seconds, Status::Ok());
    ++result.sent;
  }
  result.acked = acked->ok();
  if (!acked->ok()) result.error = "ack failed: " + acked->message();
  return result;
}

Settlement Router::settle(transport::Transport& transport, const transport::Delivery& delivery,
                          const envelope::Envelope* in, const Decision& decision,
                          const SendHooks& hooks) const {
  if (auto merged = settle_in_one_step(transport, delivery, decision, hooks)) return *merged;
  Settlement result;
  for (const Outgoing& planned : decision.sends) {
    if (hooks.before_send) hooks.before_send(planned);
    auto started = std::chrono::steady_clock::now();
    Status st = send_one(transport, planned);
    const Outgoing* sent_as = &planned;
    Outgoing rebuilt;
    if (!st && in && planned.error &&
        st.message().starts_with(label(FailureCode::kMessageTooLarge))) {
      // The transport's own limit is below what the router was told (or counts more than the
      // body): rebuild the error envelope to fit under the body size it just refused.
      rebuilt = planned;
      std::size_t limit = transport.max_message_bytes() < planned.body_size()
                              ? transport.max_message_bytes()
                              : planned.body_size() - 1;
      rebuilt.body = error_body(*in, *planned.error, std::max<std::size_t>(limit, 1));
      rebuilt.parts.reset();
      if (rebuilt.body.size() < planned.body_size()) {
        st = transport.send(rebuilt.queue, rebuilt.body, rebuilt.delay);
        sent_as = &rebuilt;
      }
    }
    const Outgoing& out = *sent_as;
    if (hooks.after_send)
      hooks.after_send(
          out, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
          st);
    if (st) {
      ++result.sent;
      continue;
    }
    if (in && st.message().starts_with(label(FailureCode::kMessageTooLarge)) &&
        out.type != MessageType::kErrorEnd) {
      // Outputs sent before this one stay sent (at-least-once; their ids make duplicates visible).
      // Error-end sends are never replaced again (only rebuilt smaller), so this cannot recurse
      // further.
      Settlement replaced =
          settle(transport, delivery, in,
                 error_end(*in, FailureCode::kMessageTooLarge, st.message()), hooks);
      replaced.sent += result.sent;
      replaced.too_large = true;
      return replaced;
    }
    result.error = fmt::format("send to {} failed: {}", out.queue, st.message());
    Status nacked = transport.nack(delivery, backoff(static_cast<int>(delivery.delivery_count)));
    result.nacked = nacked.ok();
    if (!nacked) result.error += "; nack failed too: " + nacked.message();
    return result;
  }
  if (decision.then == Then::kAck) {
    failpoint("sidecar.before_ack");  // outputs durable, input not acked: redelivered
    Status st = transport.ack(delivery);
    result.acked = st.ok();
    if (!st) result.error = "ack failed: " + st.message();
  } else {
    Status st = transport.nack(delivery, decision.nack_delay);
    result.nacked = st.ok();
    if (!st) result.error = "nack failed: " + st.message();
  }
  return result;
}

}  // namespace asya::sidecar
