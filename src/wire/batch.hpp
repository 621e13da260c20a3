// Batch requests of the socket protocol (PROTOCOL §3, "Batches"): several envelopes in one request
// frame, one answer per envelope in the response frame, and how a runtime declares that it takes
// them (a line `batch` in its ready file). Used by the sidecar (sidecar/batcher.hpp) and the C++
// runtime (asya::serve_batch). Pure functions, no I/O except runtime_accepts_batches().
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace asya::wire {

// The line a runtime adds to its ready file to declare that it accepts batch requests.
inline constexpr std::string_view kBatchCapability = "batch";

// The line a batch runtime adds to its ready file to declare that it serves several connections at
// once, so a sidecar may keep a second batch waiting on a second connection while the first runs
// (PROTOCOL §3 "Pipelined batches").
inline constexpr std::string_view kPipelineCapability = "pipeline";

// The request frame body for `bodies` (each one envelope exactly as received from the queue):
// a JSON array of the envelopes, byte for byte, in order: "[" b0 "," b1 ... "]".
std::string batch_request(const std::vector<std::string_view>& bodies);

// Splits a batch response: a JSON array of exactly `expected` elements, each itself a JSON array
// (the answer to the envelope at the same position, shaped like a single response). Returns
// views of the elements into `response`. Only the nesting of brackets, braces and strings is
// checked here; each element is parsed by whoever uses it. Errors name what was wrong and, for a
// wrong count, both lengths.
Result<std::vector<std::string_view>> split_batch_response(std::string_view response,
                                                           std::size_t expected);

// Whether a ready file's text declares batch support: a line that is exactly `batch` (after the
// runtime's pid on the first line; surrounding blanks ignored).
bool ready_file_declares_batch(std::string_view contents);

// Whether a ready file's text has a line that is exactly `capability` (blanks around it ignored).
bool ready_file_declares(std::string_view contents, std::string_view capability);

// Reads the ready file of the runtime at `socket_path` (ready_file_for) and says whether it has
// the line `capability`. Fails, naming the file, when it cannot be read.
Result<bool> runtime_declares(std::string_view socket_path, std::string_view capability);

// Reads the ready file of the runtime at `socket_path` (ready_file_for) and says whether it
// declares batch support. Fails, naming the file, when it cannot be read.
Result<bool> runtime_accepts_batches(std::string_view socket_path);

}  // namespace asya::wire
