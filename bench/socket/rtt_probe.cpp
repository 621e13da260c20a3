// N round trips of one kind against a peer that is already running, for profiling one side at a
// time (perf stat/record -p, strace -p, perf sched): bench_runtime_rtt starts its own peers and
// mixes every benchmark in one process. Prints the p50 and p90 in µs.
//
//   bench_rtt_probe raw    SOCKET BYTES N   plain writev/read, as BM_RawPingPong: asks for the
//                                           sidecar's 4 MiB send buffer (to an echo peer that
//                                           does too: bench_raw_echo_server SOCKET 4194304)
//   bench_rtt_probe raw-default SOCKET BYTES N   the same with the kernel's default buffers, as
//                                           BM_RawPingPongDefaultBuffers (bench_raw_echo_server
//                                           SOCKET)
//   bench_rtt_probe client SOCKET BYTES N   asya::wire::RuntimeClient::call, as BM_RuntimeClient
//                                           (to bench_noop_runtime with ASYA_SOCKET_PATH=SOCKET)
//
// docs/performance.md "runtime_rtt_1mb_p50: where the time above the raw ping-pong goes" uses it.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/raw_io.hpp"
#include "wire/runtime_client.hpp"
#include "wire/socket_io.hpp"

int main(int argc, char** argv) {
  using namespace asya::bench;
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_rtt_probe raw|raw-default|client SOCKET BYTES N\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::string socket = argv[2];
  const std::string request = envelope_with_payload(std::strtoull(argv[3], nullptr, 10));
  const int count = std::atoi(argv[4]);
  std::vector<double> latencies_us;
  latencies_us.reserve(static_cast<std::size_t>(count));
  if (mode == "client") {
    asya::wire::RuntimeClient client({socket, 256u << 20});
    std::string response;
    for (int i = 0; i < count; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto result = client.call(request, response, std::chrono::seconds(30));
      if (result.status != asya::wire::CallStatus::kOk) die("runtime call failed: " + result.error);
      latencies_us.push_back(seconds_since(start) * 1e6);
    }
  } else if (mode == "raw" || mode == "raw-default") {
    int fd = connect_unix(socket);
    if (fd < 0) die("connect " + socket);
    if (mode == "raw") {
      const int bytes = asya::wire::detail::kSocketSendBufferBytes;
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    std::vector<char> buffer(request.size());
    for (int i = 0; i < count; ++i) {
      auto start = std::chrono::steady_clock::now();
      if (!write_framed(fd, request) || read_framed(fd, buffer) < 0) die("raw echo failed");
      latencies_us.push_back(seconds_since(start) * 1e6);
    }
  } else {
    die("mode must be raw, raw-default or client, not " + mode);
  }
  const double p50 = quantile(latencies_us, 0.5);
  const double p90 = quantile(latencies_us, 0.9);
  std::printf("%s p50 %.0f p90 %.0f\n", mode.c_str(), p50, p90);
  return 0;
}
