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
// ASYA_LOG_LEVEL, ASYA_MAX_MESSAGE_BYTES.
//
// Threads: each sidecar connection is served by its own thread. Handler calls are serialized
// (one at a time) unless ASYA_HANDLER_THREAD_SAFE=true, in which case the handler is called
// concurrently and must be thread-safe.
#pragma once

#include <boost/json.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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
  static Outputs fan_out(std::vector<Json> payloads) {
    Outputs out;
    out.items_ = std::move(payloads);
    return out;
  }
  static Outputs none() { return Outputs(); }
  const std::vector<Json>& items() const { return items_; }

 private:
  std::vector<Json> items_;
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

// Serves `handler` until SIGTERM/SIGINT. Writes `runtime-ready` next to the socket once listening.
// On the first signal: stops accepting, removes the socket and the ready file, answers requests
// already received, then returns 0 (a second signal stops waiting for them). Returns 1 on a
// start-up error (invalid configuration, unusable socket path), after one error line on stderr.
int serve(PayloadHandler handler);
int serve_envelopes(EnvelopeHandler handler);

// The response to one request frame, as the server would send it (exposed for tests and
// benchmarks): never throws; errors become error elements.
std::string handle_request(std::string_view request, const PayloadHandler& handler);
std::string handle_request(std::string_view request, const EnvelopeHandler& handler, bool validate);

}  // namespace asya
