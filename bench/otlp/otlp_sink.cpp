// The OTLP/HTTP receiver of the `trace_overhead` row: what a collector does with a request before
// its own processing, at the cost of C++ rather than of a Python interpreter on the same 2 cores
// (the Python receiver it replaces spent ~18.5 µs of CPU per traced message, counted against the
// row's ratio). It reads every request whole, answers `POST /v1/traces` with 200 and an OTLP
// success body (an ExportTraceServiceResponse in JSON), and counts requests, body bytes and the
// spans of JSON bodies (each span opens with `{"traceId":`, as Asya's encoder writes it; protobuf
// bodies are read and answered, their spans not counted).
//
//   bench_otlp_sink            prints its port (127.0.0.1, chosen by the system) on the first
//                              line of stdout; on SIGTERM or SIGINT prints
//                              {"requests": n, "bytes": n, "spans": n, "cpu_us": n} and exits 0
//                              (cpu_us: its own CPU time so far, getrusage)
//   GET /stats                 the same JSON, while it runs (the bench waits on it)
//
// HTTP/1.1 with keep-alive, one thread per connection (a receiver gets one connection per
// exporter). Bodies need Content-Length (411 otherwise, as Asya's exporter always sends it).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr std::size_t kMaxHeadBytes = 64 * 1024;
constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr std::string_view kSpanOpening = "{\"traceId\":";
constexpr std::string_view kSuccess = "{\"partialSuccess\":{}}";

std::atomic<unsigned long long> requests{0}, body_bytes{0}, spans{0};

// The counts, and the CPU this process used so far (all its threads, those ended included).
std::string stats_json() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const long long cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000LL +
                           usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
  return "{\"requests\": " + std::to_string(requests.load()) +
         ", \"bytes\": " + std::to_string(body_bytes.load()) +
         ", \"spans\": " + std::to_string(spans.load()) +
         ", \"cpu_us\": " + std::to_string(cpu_us) + "}";
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

bool answer(int fd, int status, std::string_view reason, std::string_view body) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  out.append(body);
  return write_all(fd, out);
}

std::size_t count_spans(std::string_view body) {
  std::size_t n = 0;
  const char* at = body.data();
  const char* const end = body.data() + body.size();
  while (const void* found = ::memmem(at, static_cast<std::size_t>(end - at), kSpanOpening.data(),
                                      kSpanOpening.size())) {
    ++n;
    at = static_cast<const char*>(found) + kSpanOpening.size();
  }
  return n;
}

// Bytes received and not yet consumed, [start, end) of one reused allocation: a request's body
// is read straight into it, with no copy and no zero-filling (a connection that only asks for
// /stats touches 64 KiB, not a megabyte).
class Received {
 public:
  std::string_view view() const { return {data_.get() + start_, end_ - start_}; }
  void consume(std::size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  // One recv() into the free space; false at the end of the stream or on an error.
  bool fill(int fd) {
    if (end_ == capacity_) {
      if (start_ > 0) {
        std::memmove(data_.get(), data_.get() + start_, end_ - start_);
      } else {
        auto larger = std::make_unique_for_overwrite<char[]>(capacity_ * 2);
        std::memcpy(larger.get(), data_.get(), end_);
        data_ = std::move(larger);
        capacity_ *= 2;
      }
      end_ -= start_;
      start_ = 0;
    }
    for (;;) {
      const ssize_t got = ::recv(fd, data_.get() + end_, capacity_ - end_, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      end_ += static_cast<std::size_t>(got);
      return true;
    }
  }

 private:
  std::size_t capacity_ = 64 * 1024;
  std::unique_ptr<char[]> data_ = std::make_unique_for_overwrite<char[]>(capacity_);
  std::size_t start_ = 0, end_ = 0;
};

// The value of header `name` in `head` (its lines after the request line), or "".
std::string_view header(std::string_view head, std::string_view name) {
  std::size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at + 2 < head.size()) {
    const std::size_t start = at + 2;
    const std::size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end - start);
    const std::size_t colon = line.find(':');
    if (colon == name.size() && ::strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
      return value;
    }
    at = end;
  }
  return {};
}

// Serves one connection until the peer closes it or sends something this receiver refuses.
void serve(int fd) {
  Received received;
  for (;;) {
    std::size_t head_end;
    while ((head_end = received.view().find("\r\n\r\n")) == std::string_view::npos) {
      if (received.view().size() > kMaxHeadBytes) {
        answer(fd, 431, "Request Header Fields Too Large", "{}");
        return;
      }
      if (!received.fill(fd)) return;
    }
    const std::string head(received.view().substr(0, head_end));
    received.consume(head_end + 4);
    const std::string_view request_line = std::string_view(head).substr(0, head.find("\r\n"));
    const bool close_after =
        ::strcasecmp(std::string(header(head, "Connection")).c_str(), "close") == 0;
    std::size_t length = 0;
    if (const std::string_view value = header(head, "Content-Length"); !value.empty()) {
      length = std::strtoull(std::string(value).c_str(), nullptr, 10);
    } else if (!header(head, "Transfer-Encoding").empty()) {
      answer(fd, 411, "Length Required", "{}");
      return;
    }
    if (length > kMaxBodyBytes) {
      answer(fd, 413, "Content Too Large", "{}");
      return;
    }
    while (received.view().size() < length)
      if (!received.fill(fd)) return;
    const std::string_view body = received.view().substr(0, length);
    bool ok;
    if (request_line.starts_with("POST /v1/traces ")) {
      spans += count_spans(body);
      body_bytes += length;
      ++requests;
      ok = answer(fd, 200, "OK", kSuccess);
    } else if (request_line.starts_with("GET /stats ")) {
      ok = answer(fd, 200, "OK", stats_json());
    } else {
      ok = answer(fd, 404, "Not Found", "{\"error\":\"no such endpoint\"}");
    }
    received.consume(length);
    if (!ok || close_after) return;
  }
}

}  // namespace

int main() {
  // SIGTERM and SIGINT are taken by sigwait below; every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener, 64) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    std::perror("bench_otlp_sink: listen on 127.0.0.1");
    return 1;
  }
  std::printf("%d\n", ntohs(address.sin_port));
  std::fflush(stdout);

  std::thread([listener] {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const int no_delay = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &no_delay, sizeof no_delay);
      std::thread([fd] {
        serve(fd);
        ::close(fd);
      }).detach();
    }
  }).detach();

  int received = 0;
  sigwait(&stop_signals, &received);
  std::printf("%s\n", stats_json().c_str());
  std::fflush(stdout);
  std::_Exit(0);
}
