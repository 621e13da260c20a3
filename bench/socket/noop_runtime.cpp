// The Asya side of the socket rows: the C++ runtime library serving a handler that returns its
// payload unchanged (no work), configured like any runtime (ASYA_SOCKET_PATH, ...).
// By default a raw handler (asya::serve_raw): the payload is never parsed into a DOM, the
// runtime splices its bytes back. ASYA_BENCH_DOM=1 serves the DOM handler instead
// (asya::serve: parse into boost::json, serialize back), for the note of the runtime_rtt rows.
#include <asya/runtime.hpp>

#include <cstdlib>
#include <string_view>

int main() {
  const char* dom = std::getenv("ASYA_BENCH_DOM");
  if (dom != nullptr && std::string_view(dom) == "1") {
    return asya::serve([](const asya::Json& payload) -> asya::Outputs { return payload; });
  }
  return asya::serve_raw(
      [](std::string_view payload_json) { return asya::RawOutputs::view(payload_json); });
}
