// The split of the join rows (bench/join/join_bench.py): the C++ runtime serving a handler that
// fans its input out into payload["n"] small payloads {"i": i} (a fan-out even for n = 1). The
// join and the plain actor it is compared with run bench_noop_runtime.
#include <asya/runtime.hpp>

#include <vector>

int main() {
  return asya::serve([](const asya::Json& payload) -> asya::Outputs {
    const auto& object = payload.as_object();
    const auto n = object.contains("n") ? object.at("n").to_number<std::int64_t>() : 10;
    std::vector<asya::Json> parts;
    parts.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) parts.push_back(boost::json::object{{"i", i}});
    return asya::Outputs::fan_out(std::move(parts));
  });
}
