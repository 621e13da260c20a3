// The join of the join_rss_100k row (bench/join/join_bench.py): the C++ runtime serving a raw
// handler that answers a join input of any size with a small payload {"bytes": N} (N: the size of
// the branch list it got), so the join sidecar's memory is measured with a large request and a
// small answer. The payload is validated, never parsed into a DOM (asya::serve_raw).
#include <asya/runtime.hpp>

#include <string>
#include <string_view>

int main() {
  return asya::serve_raw([](std::string_view payload_json) {
    return asya::RawOutputs("{\"bytes\":" + std::to_string(payload_json.size()) + "}");
  });
}
