#include "sidecar/metrics.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "common/process_metrics.hpp"

namespace asya::sidecar {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

namespace {
const prometheus::Histogram::BucketBoundaries kDurationBuckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,    1,     2.5,    5,     10,   30,    60,   120, 300};
const prometheus::Histogram::BucketBoundaries kSizeBuckets{
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456};

// The metric of each label value seen, found again by the value: Family::Add builds a label map,
// hashes it and locks the family on every call, and for a histogram first constructs a whole new
// one (its buckets allocated) that it throws away when the labels exist, several times per
// message. A family keeps its metrics until Remove(), which the sidecar never calls, so the
// pointers stay valid. Thread-safe.
template <typename Metric>
class MetricsByLabel {
 public:
  template <typename Make>
  Metric& get(std::string_view key, Make make) {
    std::lock_guard lock(mutex_);
    auto found = metrics_.find(key);
    if (found != metrics_.end()) return *found->second;
    Metric& metric = make();
    metrics_.emplace(std::string(key), &metric);
    return metric;
  }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Metric*, Hash, std::equal_to<>> metrics_;
};

// Two label values as one key ('\0' never appears in a queue name or a message type).
std::string key_of(std::string_view first, std::string_view second) {
  std::string key;
  key.reserve(first.size() + 1 + second.size());
  key.append(first);
  key += '\0';
  key.append(second);
  return key;
}
}  // namespace

struct Metrics::Impl {
  std::string queue;
  std::string transport;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& received =
      BuildCounter()
          .Name("asya_actor_messages_received_total")
          .Help("Messages received from the input queue")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& processed =
      BuildCounter()
          .Name("asya_actor_messages_processed_total")
          .Help("Messages fully handled, by outcome")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& sent =
      BuildCounter()
          .Name("asya_actor_messages_sent_total")
          .Help("Messages sent, by destination queue and type")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& failed = BuildCounter()
                                                        .Name("asya_actor_messages_failed_total")
                                                        .Help("Messages that failed, by reason")
                                                        .Register(*registry);
  prometheus::Family<prometheus::Histogram>& processing =
      BuildHistogram()
          .Name("asya_actor_processing_duration_seconds")
          .Help("Time from receive to ack/nack")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& runtime =
      BuildHistogram()
          .Name("asya_actor_runtime_execution_duration_seconds")
          .Help("Time of one runtime call")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& receive =
      BuildHistogram()
          .Name("asya_actor_queue_receive_duration_seconds")
          .Help("Time of a receive that returned a message")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& send =
      BuildHistogram()
          .Name("asya_actor_queue_send_duration_seconds")
          .Help("Time of one durable send")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& size = BuildHistogram()
                                                        .Name("asya_actor_envelope_size_bytes")
                                                        .Help("Envelope sizes, received and sent")
                                                        .Register(*registry);
  prometheus::Family<prometheus::Gauge>& active = BuildGauge()
                                                      .Name("asya_actor_active_messages")
                                                      .Help("Messages being processed now")
                                                      .Register(*registry);
  prometheus::Family<prometheus::Counter>& runtime_errors =
      BuildCounter()
          .Name("asya_actor_runtime_errors_total")
          .Help("Runtime failures, by error type")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& retries =
      BuildCounter()
          .Name("asya_actor_retries_total")
          .Help("Messages re-enqueued for another attempt")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& deadline =
      BuildCounter()
          .Name("asya_actor_deadline_exceeded_total")
          .Help("Messages whose deadline had passed")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& poison =
      BuildCounter()
          .Name("asya_actor_poison_messages_total")
          .Help("Messages delivered more than ASYA_MAX_DELIVERIES times")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& duplicates_kept =
      BuildCounter()
          .Name("asya_actor_end_duplicates_kept_total")
          .Help("End actors: duplicates whose payload was gone, the stored result kept")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& consumed_copies =
      BuildCounter()
          .Name("asya_actor_consumed_copies_dropped_total")
          .Help("Copies of a consumed message whose payload was gone, acknowledged unprocessed")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& redeliveries =
      BuildCounter()
          .Name("asya_actor_redeliveries_total")
          .Help("Deliveries of a message delivered before (delivery count above 1)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& reports = BuildCounter()
                                                         .Name("asya_actor_gateway_reports_total")
                                                         .Help("Gateway reports, sent or dropped")
                                                         .Register(*registry);
  prometheus::Family<prometheus::Counter>& announcements =
      BuildCounter()
          .Name("asya_actor_gateway_announcements_total")
          .Help("Fan-out children announced to the gateway before publishing, sent or failed")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& lease_extensions =
      BuildCounter()
          .Name("asya_actor_lease_extensions_total")
          .Help(
              "Leases extended for messages processed longer than a third of the visibility "
              "timeout")
          .Register(*registry);

  prometheus::Counter* received_c;
  prometheus::Counter* redeliveries_c;
  prometheus::Histogram* processing_h;
  prometheus::Histogram* runtime_h;
  prometheus::Histogram* receive_h;
  prometheus::Gauge* active_g;
  prometheus::Counter* reports_sent_c;
  prometheus::Counter* reports_dropped_c;
  MetricsByLabel<prometheus::Counter> processed_by_status;
  MetricsByLabel<prometheus::Counter> sent_by_queue_and_type;
  MetricsByLabel<prometheus::Histogram> send_by_queue;
  MetricsByLabel<prometheus::Histogram> size_by_direction;

  Impl(std::string q, std::string t) : queue(std::move(q)), transport(std::move(t)) {
    received_c = &received.Add({{"queue", queue}, {"transport", transport}});
    redeliveries_c = &redeliveries.Add({{"queue", queue}, {"transport", transport}});
    processing_h = &processing.Add({{"queue", queue}}, kDurationBuckets);
    runtime_h = &runtime.Add({{"queue", queue}}, kDurationBuckets);
    receive_h = &receive.Add({{"queue", queue}, {"transport", transport}}, kDurationBuckets);
    active_g = &active.Add({{"queue", queue}});
    // Present from the start so dashboards see zeros rather than gaps.
    retries.Add({{"queue", queue}});
    deadline.Add({{"queue", queue}});
    poison.Add({{"queue", queue}});
    duplicates_kept.Add({{"queue", queue}});
    consumed_copies.Add({{"queue", queue}});
    reports_sent_c = &reports.Add({{"result", "sent"}});
    reports_dropped_c = &reports.Add({{"result", "dropped"}});
    announcements.Add({{"result", "sent"}});
    announcements.Add({{"result", "failed"}});
    lease_extensions.Add({{"queue", queue}, {"result", "ok"}});
    lease_extensions.Add({{"queue", queue}, {"result", "failed"}});
  }
};

Metrics::Metrics(std::string queue, std::string transport)
    : impl_(std::make_unique<Impl>(std::move(queue), std::move(transport))) {}
Metrics::~Metrics() = default;

void Metrics::received() {
  impl_->received_c->Increment();
}
void Metrics::processed(std::string_view status) {
  Impl& m = *impl_;
  m.processed_by_status
      .get(status,
           [&]() -> prometheus::Counter& {
             return m.processed.Add({{"queue", m.queue}, {"status", std::string(status)}});
           })
      .Increment();
}
void Metrics::sent(std::string_view destination_queue, std::string_view message_type) {
  Impl& m = *impl_;
  m.sent_by_queue_and_type
      .get(key_of(destination_queue, message_type),
           [&]() -> prometheus::Counter& {
             return m.sent.Add({{"destination_queue", std::string(destination_queue)},
                                {"message_type", std::string(message_type)}});
           })
      .Increment();
}
void Metrics::failed(std::string_view reason) {
  impl_->failed.Add({{"queue", impl_->queue}, {"reason", std::string(reason)}}).Increment();
}
void Metrics::processing_duration(double seconds) {
  impl_->processing_h->Observe(seconds);
}
void Metrics::runtime_duration(double seconds) {
  impl_->runtime_h->Observe(seconds);
}
void Metrics::receive_duration(double seconds) {
  impl_->receive_h->Observe(seconds);
}
void Metrics::send_duration(std::string_view destination_queue, double seconds) {
  Impl& m = *impl_;
  m.send_by_queue
      .get(destination_queue,
           [&]() -> prometheus::Histogram& {
             return m.send.Add({{"destination_queue", std::string(destination_queue)},
                                {"transport", m.transport}},
                               kDurationBuckets);
           })
      .Observe(seconds);
}
void Metrics::envelope_size(std::string_view direction, std::size_t bytes) {
  Impl& m = *impl_;
  m.size_by_direction
      .get(direction,
           [&]() -> prometheus::Histogram& {
             return m.size.Add({{"direction", std::string(direction)}}, kSizeBuckets);
           })
      .Observe(static_cast<double>(bytes));
}
void Metrics::active_add(double delta) {
  impl_->active_g->Increment(delta);
}
void Metrics::runtime_error(std::string_view error_type) {
  impl_->runtime_errors.Add({{"queue", impl_->queue}, {"error_type", std::string(error_type)}})
      .Increment();
}
void Metrics::retry() {
  impl_->retries.Add({{"queue", impl_->queue}}).Increment();
}
void Metrics::deadline_exceeded() {
  impl_->deadline.Add({{"queue", impl_->queue}}).Increment();
}
void Metrics::poison() {
  impl_->poison.Add({{"queue", impl_->queue}}).Increment();
}
void Metrics::end_duplicate_kept() {
  impl_->duplicates_kept.Add({{"queue", impl_->queue}}).Increment();
}
void Metrics::consumed_copy_dropped() {
  impl_->consumed_copies.Add({{"queue", impl_->queue}}).Increment();
}
void Metrics::redelivered() {
  impl_->redeliveries_c->Increment();
}
void Metrics::gateway_report_sent() {
  impl_->reports_sent_c->Increment();
}
void Metrics::gateway_report_dropped() {
  impl_->reports_dropped_c->Increment();
}

void Metrics::gateway_announcement(bool sent) {
  impl_->announcements.Add({{"result", sent ? "sent" : "failed"}}).Increment();
}
void Metrics::lease_extension(bool ok) {
  impl_->lease_extensions.Add({{"queue", impl_->queue}, {"result", ok ? "ok" : "failed"}})
      .Increment();
}

std::string Metrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry->Collect());
  // Process-wide figures of the libraries (e.g. the SQLite transport's write-lock holds).
  out << process_metrics_text();
  return out.str();
}

MetricsServer::MetricsServer(const Metrics& metrics, std::function<Readiness()> ready)
    : metrics_(metrics), ready_(std::move(ready)) {}

MetricsServer::~MetricsServer() {
  stop();
}

Status MetricsServer::start(std::string_view addr) {
  auto colon = addr.rfind(':');
  std::string host(addr.substr(0, colon));
  std::string port(addr.substr(colon + 1));
  if (host.empty()) host = "0.0.0.0";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result); rc != 0)
    return Error{
        fmt::format("ASYA_METRICS_ADDR=\"{}\": cannot resolve: {}", addr, gai_strerror(rc))};
  std::string cause = "no address";
  for (addrinfo* ai = result; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      listen_fd_ = fd;
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      port_ = bound.ss_family == AF_INET6
                  ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                  : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
      break;
    }
    cause = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(result);
  if (listen_fd_ < 0)
    return Error{fmt::format("ASYA_METRICS_ADDR=\"{}\": cannot listen: {}", addr, cause)};
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0)
    return Error{fmt::format("metrics server: pipe: {}", std::strerror(errno))};
  thread_ = std::thread([this] { run(); });
  return Status::Ok();
}

void MetricsServer::stop() {
  if (thread_.joinable()) {
    char byte = 0;
    [[maybe_unused]] auto n = ::write(wake_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_pipe_[0], &wake_pipe_[1]})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
}

void MetricsServer::run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      serve_one(fd);
      ::close(fd);
    }
  }
}

void MetricsServer::serve_one(int fd) {
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    request.append(buffer, static_cast<std::size_t>(n));
  }
  auto line_end = request.find("\r\n");
  std::string line = request.substr(0, line_end);
  auto sp1 = line.find(' ');
  auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  std::string method = line.substr(0, sp1);
  std::string target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);

  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  if (method != "GET" && method != "HEAD") {
    status = 405;
    body = "method not allowed: use GET\n";
  } else if (target == "/metrics") {
    content_type = "text/plain; version=0.0.4; charset=utf-8";
    body = metrics_.serialize();
  } else if (target == "/healthz") {
    body = "ok\n";
  } else if (target == "/readyz") {
    Readiness readiness = ready_ ? ready_() : Readiness{false, "starting"};
    status = readiness.ready ? 200 : 503;
    body = readiness.ready ? "ready\n" : "not ready: " + readiness.reason + "\n";
  } else {
    status = 404;
    body = "not found: use /metrics, /healthz or /readyz\n";
  }
  const char* reason = status == 200   ? "OK"
                       : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed"
                                       : "Service Unavailable";
  std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
      status, reason, content_type, body.size());
  if (method != "HEAD") response += body;
  std::size_t off = 0;
  while (off < response.size()) {
    ssize_t n = ::send(fd, response.data() + off, response.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace asya::sidecar
