// Sending a failed envelope again: a dead-letter redrive (`asya replay`). error-end stores the
// error envelope of build_error() (PROTOCOL §4): the input's id, parent_id, route (current at the
// failing actor), headers with "asya-error-chain", deadline, and the payload
//   {"error": code, "details": {"message", "type", "traceback"}, "actor", "original_payload"}.
// A replay rebuilds the envelope the failing actor received, so the pipeline continues as if the
// failure had not happened:
//   - id and parent_id unchanged (the result of the replay replaces the failure under the same id;
//     a fan-out child keeps its parent);
//   - route: the same actors and metadata, current = the actor to start from;
//   - payload: original_payload, byte for byte;
//   - headers: all kept ("asya-error-chain" stays as the history of failures) except
//     "asya-attempt", which is removed so the actor gets its full retry budget again; and
//     "asya-replays" is set to the number of times the envelope has been replayed (1, 2, ...);
//   - deadline: the failed envelope's deadline usually passed already, so it is dropped unless the
//     caller gives a new one;
//   - unknown top-level fields kept.
// A new message starts with a transport delivery count of 1 (counts are per message).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "envelope/envelope.hpp"

namespace asya::envelope {

// What a stored error envelope says. Views point into the stored text, which must outlive this.
struct FailedEnvelope {
  Envelope envelope;
  std::string error;          // payload.error: processing_error, runtime_timeout, ...
  std::string failed_actor;   // payload.actor, else route.actors[route.current]
  std::string error_type;     // payload.details.type (e.g. "KeyError"); may be empty
  std::string error_message;  // payload.details.message; may be empty
  // JSON text of payload.original_payload; empty when the payload has none (error-end stored a
  // body that was not an envelope: it cannot be replayed).
  std::string_view original_payload_raw;
};

// Reads an envelope stored by error-end. Fails when `stored` is not an envelope, naming why.
// Thread-safe.
Result<FailedEnvelope> read_failed(std::string_view stored);

struct ReplayOptions {
  // The actor to start from; empty: the actor that failed. It must be in the route (when it occurs
  // more than once, the occurrence nearest before the failed one, else the first after it).
  std::string from_actor;
  // The new envelope's deadline; nullopt: none.
  std::optional<std::chrono::system_clock::time_point> deadline;
};

struct Replay {
  std::string body;         // the envelope to send
  std::string actor;        // whose queue it goes to
  std::size_t current = 0;  // route.current of the body
  int replays = 1;          // its "asya-replays" header
};

// Builds the envelope to send again (see the top of this file). Fails, saying why, when `failed`
// has no original payload or `options.from_actor` is not in its route. Thread-safe.
Result<Replay> build_replay(const FailedEnvelope& failed, const ReplayOptions& options);

}  // namespace asya::envelope
