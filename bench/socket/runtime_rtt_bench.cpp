// Runtime round trip (bench rows runtime_rtt_*) and the socket copy baseline of the payload rows.
//
// Two peers run as child processes, on sockets in a temp directory:
//   bench_raw_echo_server  raw length-framed echo, no parsing (the baseline), twice: one asking
//                          for the sidecar-runtime connection's send buffer on every connection
//                          (the runtime rows' baseline), one with the kernel's default buffers
//                          (the socket copy of the payload rows, and the runtime rows' baseline
//                          before 2026-12-07 20:00 UTC, kept for comparison)
//   bench_noop_runtime     the C++ runtime library with a raw handler returning its payload
//                          (asya::serve_raw), and a second one with the DOM handler
//                          (ASYA_BENCH_DOM=1, asya::serve)
// and this binary is the client:
//   BM_RawPingPong/<payload bytes>      plain writev/read of the same request bytes, both ends
//                                       asking for the send buffer the sidecar and the runtime
//                                       ask for (kSocketSendBufferBytes, SO_SNDBUF)
//   BM_RawPingPongDefaultBuffers/<bytes> the same with the kernel's default buffers
//   BM_RuntimeClient/<payload bytes>    asya::wire::RuntimeClient::call, the sidecar's own code,
//                                       to the raw no-op runtime
//   BM_RuntimeClientDom/<payload bytes> the same to the DOM no-op runtime
//   BM_HandleRawRequest/<payload bytes> asya::detail::respond_raw in-process (the raw runtime's
//                                       work alone, answer as pieces in a reused object)
//   BM_HandleRequest/<payload bytes>    asya::handle_request in-process (the DOM runtime's work)
// Each benchmark reports p50_us/p99_us counters over every timed iteration. Run with
// --benchmark_format=json; bench/run reads the counters.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <asya/runtime.hpp>

#include "support/raw_io.hpp"
#include "wire/runtime_answer.hpp"
#include "wire/runtime_client.hpp"
#include "wire/socket_io.hpp"

extern char** environ;

namespace {

using namespace asya::bench;
using Clock = std::chrono::steady_clock;

std::filesystem::path g_workdir;
std::string g_raw_socket;          // echo peer asking for kSendBufferBytes per connection
std::string g_raw_default_socket;  // echo peer with the kernel's default buffers
// The send buffer both ends of a sidecar-runtime connection ask for: the raw ping-pong asks for
// the same, so the baseline is the best a plain socket does with the buffers asya uses (a value
// shared, not code: the baseline's I/O stays raw_io.hpp's).
constexpr int kSendBufferBytes = asya::wire::detail::kSocketSendBufferBytes;
std::string g_runtime_socket;
std::string g_runtime_dom_socket;
std::vector<pid_t> g_children;

pid_t spawn(const std::string& program, std::vector<std::string> args,
            const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  args.insert(args.begin(), program);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0)
    die("cannot start " + program);
  g_children.push_back(pid);
  return pid;
}

void wait_connectable(const std::string& path, const std::string& ready_file) {
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    if (ready_file.empty() || std::filesystem::exists(ready_file)) {
      int fd = connect_unix(path);
      if (fd >= 0) {
        ::close(fd);
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  die("peer did not start listening on " + path);
}

bool response_is_error(const std::string& response) {
  return response.rfind("[{\"error\"", 0) == 0;
}

void report(benchmark::State& state, std::vector<double>& latencies_us) {
  state.counters["p50_us"] = quantile(latencies_us, 0.50);
  state.counters["p99_us"] = quantile(latencies_us, 0.99);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0) * 2);
}

// Length-framed ping-pongs to the echo peer on `socket`; the client asks for `send_buffer_bytes`
// (SO_SNDBUF) unless 0.
void raw_ping_pong(benchmark::State& state, const std::string& socket, int send_buffer_bytes) {
  std::string request = envelope_with_payload(static_cast<std::size_t>(state.range(0)));
  int fd = connect_unix(socket);
  if (fd < 0) die("connect " + socket);
  if (send_buffer_bytes > 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes, sizeof send_buffer_bytes);
  std::vector<char> buffer(request.size());
  std::vector<double> latencies;
  latencies.reserve(1 << 16);
  for (auto _ : state) {
    auto start = Clock::now();
    if (!write_framed(fd, request) || read_framed(fd, buffer) < 0) die("raw echo failed");
    latencies.push_back(seconds_since(start) * 1e6);
  }
  ::close(fd);
  report(state, latencies);
}

void BM_RawPingPong(benchmark::State& state) {
  raw_ping_pong(state, g_raw_socket, kSendBufferBytes);
}

void BM_RawPingPongDefaultBuffers(benchmark::State& state) {
  raw_ping_pong(state, g_raw_default_socket, 0);
}

void runtime_client(benchmark::State& state, const std::string& socket) {
  std::string request = envelope_with_payload(static_cast<std::size_t>(state.range(0)));
  asya::wire::RuntimeClient client({socket, 256u << 20});
  std::string response;
  std::vector<double> latencies;
  latencies.reserve(1 << 16);
  for (auto _ : state) {
    auto start = Clock::now();
    auto result = client.call(request, response, std::chrono::seconds(30));
    if (result.status != asya::wire::CallStatus::kOk) die("runtime call failed: " + result.error);
    latencies.push_back(seconds_since(start) * 1e6);
  }
  if (response.size() < request.size() / 2) die("runtime answer too short: " + response);
  report(state, latencies);
}

void BM_RuntimeClient(benchmark::State& state) {
  runtime_client(state, g_runtime_socket);
}

void BM_RuntimeClientDom(benchmark::State& state) {
  runtime_client(state, g_runtime_dom_socket);
}

// The raw runtime's own work on one request, no socket, as the server does it: validate the
// payload while finding its span, check the rest of the envelope, hand the handler a view of the
// payload, and lay out the answer as pieces (the payload's own bytes among them) in the
// connection's reused answer object; the server then writes the pieces with one sendmsg.
void BM_HandleRawRequest(benchmark::State& state) {
  std::string request = envelope_with_payload(static_cast<std::size_t>(state.range(0)));
  asya::RawPayloadHandler handler = [](std::string_view payload) {
    return asya::RawOutputs::view(payload);
  };
  asya::detail::Answer answer;
  std::vector<double> latencies;
  latencies.reserve(1 << 16);
  for (auto _ : state) {
    auto start = Clock::now();
    asya::detail::respond_raw(request, handler, answer);
    benchmark::DoNotOptimize(answer.pieces.data());
    latencies.push_back(seconds_since(start) * 1e6);
  }
  if (response_is_error(asya::handle_raw_request(request, handler))) die("raw request failed");
  report(state, latencies);
}

// The runtime's own work on one request, no socket: parse the envelope, call the handler (returns
// its payload), serialize the answer. Attributes the runtime rows' cost above the raw ping-pong.
void BM_HandleRequest(benchmark::State& state) {
  std::string request = envelope_with_payload(static_cast<std::size_t>(state.range(0)));
  asya::PayloadHandler handler = [](const asya::Json& payload) -> asya::Outputs { return payload; };
  std::vector<double> latencies;
  latencies.reserve(1 << 16);
  for (auto _ : state) {
    auto start = Clock::now();
    std::string response = asya::handle_request(request, handler);
    benchmark::DoNotOptimize(response);
    latencies.push_back(seconds_since(start) * 1e6);
  }
  report(state, latencies);
}

}  // namespace

// Short windows: bench/run runs this once per round (3 rounds by default) and takes the median
// of the rounds, so make bench stays under 6 minutes. The round trips count wall-clock time
// (UseRealTime): MinTime counts the main thread's CPU time otherwise, and a thread that mostly
// waits for its peer accrues it slowly (on a loaded machine a round took 34 s instead of ~8 s).
// The p50/p99 counters are the round trips' own wall-clock latencies either way.
BENCHMARK(BM_HandleRequest)->Arg(64)->Arg(1024)->Arg(1 << 20)->MinTime(0.1);
BENCHMARK(BM_HandleRawRequest)->Arg(64)->Arg(1024)->Arg(1 << 20)->MinTime(0.1);
// 64 B and 1 KB round trips take 5-60 µs: 0.1 s is thousands of them, plenty for a p50 and a p99
// (0.3 s before 2026-12-06 23:30); a 1 MB one takes about 1 ms, so it keeps 0.3 s (~300).
BENCHMARK(BM_RawPingPong)->Arg(64)->Arg(1024)->MinTime(0.1)->UseRealTime();
BENCHMARK(BM_RawPingPong)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
// The 1 MB baseline as it was before the send buffers (a 64 B or 1 KB frame fits either way).
BENCHMARK(BM_RawPingPongDefaultBuffers)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_RuntimeClient)->Arg(64)->Arg(1024)->MinTime(0.1)->UseRealTime();
BENCHMARK(BM_RuntimeClient)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_RuntimeClientDom)->Arg(64)->Arg(1024)->MinTime(0.1)->UseRealTime();
BENCHMARK(BM_RuntimeClientDom)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
// "Copying the payload through a socket both ways": the baseline of payload_10mb/payload_100mb,
// with the kernel's default buffers (unchanged; the sidecar's payload path asks for 4 MiB too).
BENCHMARK(BM_RawPingPongDefaultBuffers)
    ->Name("BM_SocketCopy")
    ->Arg(10'000'000)
    ->Arg(100'000'000)
    ->MinTime(0.3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  char pattern[] = "/tmp/asya-bench-rtt-XXXXXX";
  if (!mkdtemp(pattern)) die("mkdtemp");
  g_workdir = pattern;
  g_raw_socket = (g_workdir / "raw.sock").string();
  g_raw_default_socket = (g_workdir / "raw-default.sock").string();
  g_runtime_socket = (g_workdir / "runtime.sock").string();
  std::filesystem::path here = std::filesystem::canonical("/proc/self/exe").parent_path();
  spawn((here / "bench_raw_echo_server").string(), {g_raw_socket, std::to_string(kSendBufferBytes)},
        {});
  spawn((here / "bench_raw_echo_server").string(), {g_raw_default_socket}, {});
  std::filesystem::create_directory(g_workdir / "dom");  // its own runtime-ready file
  g_runtime_dom_socket = (g_workdir / "dom" / "runtime.sock").string();
  spawn((here / "bench_noop_runtime").string(), {},
        {"ASYA_SOCKET_PATH=" + g_runtime_socket, "ASYA_LOG_LEVEL=warn"});
  spawn((here / "bench_noop_runtime").string(), {},
        {"ASYA_SOCKET_PATH=" + g_runtime_dom_socket, "ASYA_LOG_LEVEL=warn", "ASYA_BENCH_DOM=1"});
  wait_connectable(g_raw_socket, "");
  wait_connectable(g_raw_default_socket, "");
  wait_connectable(g_runtime_socket, (g_workdir / "runtime-ready").string());
  wait_connectable(g_runtime_dom_socket, (g_workdir / "dom" / "runtime-ready").string());

  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  for (pid_t pid : g_children) ::kill(pid, SIGTERM);
  for (pid_t pid : g_children) ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(g_workdir);
  return 0;
}
