// The Asya C++ runtime: serve a handler over the Asya socket protocol (PROTOCOL §3).
//
//   #include <asya/runtime.hpp>
//   int main() {
//     return asya::serve([](const asya::Json& payload) -> asya::Json {
//       return {{"echoed", payload.at("message")}};
//     });
//   }
//
// A handler is an ordinary C++ callable; unit test it by calling it, with no socket involved.
// Configuration is read from the same environment variables as the Python runtime:
// ASYA_SOCKET_PATH (or ASYA_SOCKET_DIR + ASYA_SOCKET_NAME), ASYA_SOCKET_CHMOD (default 0o666;
// empty: leave alone), ASYA_HANDLER_MODE (payload | envelope; fixed by which serve() overload you
// call, a different value is a start-up error), ASYA_ENABLE_VALIDATION, ASYA_HANDLER_THREAD_SAFE,
// ASYA_LOG_LEVEL, ASYA_MAX_MESSAGE_BYTES, ASYA_PAYLOAD_UNCHANGED (default true; see RawOutputs),
// ASYA_PAYLOAD_FD (default true: serve and serve_raw declare `payload-fd` in the ready file and
// take a large payload that lives in a file as a read-only descriptor, mapped and handed to the
// handler as if it came in the request; PROTOCOL §3 "Payloads passed as a file").
//
// Threads: each sidecar connection is served by its own thread. Handler calls are serialized
// (one at a time) unless ASYA_HANDLER_THREAD_SAFE=true, in which case the handler is called
// concurrently and must be thread-safe.
#pragma once

#include <boost/json.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace asya {

using Json = boost::json::value;

// What a payload-mode handler returns: one payload, several (fan-out), or nothing (abort).
class Outputs {
 public:
  Outputs() = default;                                             // abort: nothing further
  Outputs(Json payload) { items_.push_back(std::move(payload)); }  // one result
  // One result from anything a Json is built from (boost::json::object, string, number, ...), so
  // a handler can `return boost::json::object{...};`.
  template <class T>
  requires(!std::is_same_v<std::remove_cvref_t<T>, Json> &&
           !std::is_same_v<std::remove_cvref_t<T>, Outputs> && std::is_constructible_v<Json, T>)
      Outputs(T&& payload) {
    items_.emplace_back(std::forward<T>(payload));
  }
  // A fan-out, also of one payload (a join later on the route then gets a group of one).
  static Outputs fan_out(std::vector<Json> payloads) {
    Outputs out;
    out.items_ = std::move(payloads);
    out.fan_out_ = true;
    return out;
  }
  static Outputs none() { return Outputs(); }
  const std::vector<Json>& items() const { return items_; }
  bool is_fan_out() const { return fan_out_; }

 private:
  std::vector<Json> items_;
  bool fan_out_ = false;
};

// A payload-mode handler: payload in, Outputs out. Throwing an exception yields a
// processing_error response carrying the exception's what() and type.
using PayloadHandler = std::function<Outputs(const Json& payload)>;

// An envelope-mode handler: the envelope in (its id, parent_id, route, headers, deadline and
// payload; other fields are the sidecar's business), output envelopes out (each with at least
// "payload" and "route"; an empty vector is abort). The route may change its future, never its
// past: input actors[0..current] must start the output's actors and its current must be at most
// len(actors), else the answer is a processing_error (checked when ASYA_ENABLE_VALIDATION).
using EnvelopeHandler = std::function<std::vector<Json>(const boost::json::object& envelope)>;

// Raw payload handlers: the payload as JSON text in, JSON text out, no DOM built by the runtime.
//
//   return asya::serve_raw([](std::string_view payload_json) {
//     return asya::RawOutputs::view(payload_json);  // pass the payload on unchanged, no copy
//   });
//
// When to use which: a DOM handler (serve) is the easy default; the runtime parses the payload
// into a boost::json::value and serializes what the handler returns, which costs about as much
// as the socket itself for a 1 MB payload (2x the raw round trip). Use a raw handler when the
// payload is large and the handler does not need to look inside it (pass-through, storing or
// forwarding it, handing it to another parser such as simdjson, or producing output text
// directly): the runtime then validates the request in one pass that builds nothing, finds the
// payload's span, checks the other envelope fields on a small DOM of the envelope without the
// payload, hands the handler a view of the payload's exact bytes, and splices the returned text
// into the answer (route with current + 1 and headers as the DOM path writes them).
//
// The request is checked by exactly the rules of the DOM path (the same answers, including the
// same msg_parsing_error messages, for every request; the shared conformance suite runs against
// both): the payload's JSON syntax is validated, never materialized. The payload view is valid
// only during the call. Each returned text must be one valid JSON value (checked: otherwise the
// answer is a processing_error of type InvalidHandlerResult), except a view() of the payload
// itself, which was already checked and is spliced as is.
//
// Pass-through without sending the payload back: an output that is a view() of exactly the
// payload the handler got (same data pointer and size) is answered as "payload_unchanged": true
// instead of the payload's bytes (PROTOCOL §3), when the sidecar on that connection declared it
// takes that answer (its sidecar-features file) and ASYA_PAYLOAD_UNCHANGED is not false. The
// sidecar then forwards the payload as it received it (a large payload's reference unchanged,
// nothing stored again). The bytes are identical, so a handler sees no difference; only a view
// of the whole payload counts (a part of it, a copy, or the DOM handlers' outputs are sent
// whole). A request the raw path hands to the DOM parser (an unusual envelope: escaped keys, ...)
// gets its payload's serialization, not its bytes: its outputs are always sent whole.
class RawOutputs {
 public:
  RawOutputs() = default;  // abort: nothing further
  // One result whose JSON text the handler built (moved in, not copied).
  RawOutputs(std::string payload_json) { items_.emplace_back(std::move(payload_json)); }
  RawOutputs(const char* payload_json) { items_.emplace_back(std::string(payload_json)); }
  // One result referring to text that outlives the call, typically the input payload (or a part
  // of it): spliced into the answer without a copy.
  static RawOutputs view(std::string_view payload_json) {
    RawOutputs out;
    out.items_.emplace_back(payload_json);
    return out;
  }
  static RawOutputs fan_out(std::vector<std::string> payloads_json) {
    RawOutputs out;
    for (auto& text : payloads_json) out.items_.emplace_back(std::move(text));
    return out;
  }
  static RawOutputs none() { return RawOutputs(); }
  // Adds one more output (owned text or view), for fan-outs built step by step.
  void add(std::string payload_json) { items_.emplace_back(std::move(payload_json)); }
  void add_view(std::string_view payload_json) { items_.emplace_back(payload_json); }

  std::size_t size() const { return items_.size(); }
  std::string_view item(std::size_t i) const {
    return std::visit([](const auto& text) { return std::string_view(text); }, items_[i]);
  }

 private:
  std::vector<std::variant<std::string, std::string_view>> items_;
};

// A raw payload-mode handler: the payload's JSON text in (a view, valid during the call),
// RawOutputs out. Exceptions become processing_error like for PayloadHandler.
using RawPayloadHandler = std::function<RawOutputs(std::string_view payload_json)>;

// Batch handlers (a manifest's spec.batching): the payloads of several envelopes in, one result
// per payload out, in order. Each result is that item's outputs (a payload, Outputs::fan_out(...)
// or Outputs::none() to abort it) or BatchResult::failure(exception): that item alone gets a
// processing_error with the exception's type and what(). A handler that throws fails every item;
// a result vector of the wrong length fails every item with a message naming both lengths.
//
//   return asya::serve_batch([](const std::vector<asya::Json>& payloads) {
//     std::vector<asya::BatchResult> results;
//     for (const auto& p : payloads) results.emplace_back(asya::Outputs(p));
//     return results;
//   });
class BatchResult {
 public:
  BatchResult(Outputs outputs) : outputs_(std::move(outputs)) {}
  template <class T>
  requires(!std::is_same_v<std::remove_cvref_t<T>, BatchResult> &&
           !std::is_same_v<std::remove_cvref_t<T>, Outputs> && std::is_constructible_v<Json, T>)
      BatchResult(T&& payload)
      : outputs_(Json(std::forward<T>(payload))) {}
  // The item failed with `error` (e.g. std::make_exception_ptr(std::invalid_argument("...")).
  static BatchResult failure(std::exception_ptr error) {
    BatchResult result{Outputs()};
    result.error_ = std::move(error);
    return result;
  }
  template <class E>
  requires std::is_base_of_v<std::exception, E>
  static BatchResult failure(E error) { return failure(std::make_exception_ptr(std::move(error))); }

  const Outputs& outputs() const { return outputs_; }
  const std::exception_ptr& error() const { return error_; }

 private:
  Outputs outputs_;
  std::exception_ptr error_;
};

// A payload-mode batch handler: the payloads of a batch in order, one BatchResult per payload.
using BatchHandler = std::function<std::vector<BatchResult>(const std::vector<Json>& payloads)>;

// Serves `handler` until SIGTERM/SIGINT. Writes `runtime-ready` next to the socket once listening.
// On the first signal: stops accepting, removes the socket and the ready file, answers requests
// already received, then returns 0 (a second signal stops waiting for them). Returns 1 on a
// start-up error (invalid configuration, unusable socket path), after one error line on stderr.
int serve(PayloadHandler handler);
int serve_envelopes(EnvelopeHandler handler);
// Payload mode (ASYA_HANDLER_MODE unset or "payload") with a raw handler.
int serve_raw(RawPayloadHandler handler);
// Payload mode with a batch handler: declares batch support in the ready file (a line `batch`)
// and answers batch requests (a JSON array of envelopes) with one answer per envelope; a single
// envelope is handled as a batch of one (PROTOCOL §3). Also declares `pipeline`: each connection
// is served on its own thread, and unless ASYA_HANDLER_THREAD_SAFE=true the handler is called
// once at a time, in the order the requests began to arrive, so batches a sidecar sends ahead
// run in the order sent (PROTOCOL §3 "Pipelined batches", "Order").
int serve_batch(BatchHandler handler);

// The response to one request frame, as the server would send it (exposed for tests and
// benchmarks): never throws; errors become error elements.
std::string handle_request(std::string_view request, const PayloadHandler& handler);
std::string handle_request(std::string_view request, const EnvelopeHandler& handler, bool validate);
// `payload_unchanged_allowed`: answer as to a sidecar that takes "payload_unchanged" (above).
std::string handle_raw_request(std::string_view request, const RawPayloadHandler& handler,
                               bool payload_unchanged_allowed = false);
std::string handle_batch_request(std::string_view request, const BatchHandler& handler);

}  // namespace asya
