// The sidecar's Prometheus metrics (prometheus-cpp core) and the tiny HTTP server that exposes
// them. Names and labels follow the published design (asya_actor_*; `transport` on the received
// counter and the receive/send histograms, `queue` on the per-queue series), plus ours; queue
// label values always carry the queue prefix ("asya-echo"). All methods are thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.hpp"

namespace asya::sidecar {

class Metrics {
 public:
  // `queue`: the input queue, full name; `transport`: the transport's name (ASYA_TRANSPORT).
  Metrics(std::string queue, std::string transport);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void received();                          // asya_actor_messages_received_total{queue,transport}
  void processed(std::string_view status);  // asya_actor_messages_processed_total{status}
  void sent(std::string_view destination_queue, std::string_view message_type);
  void failed(std::string_view reason);  // asya_actor_messages_failed_total{reason}
  void processing_duration(double seconds);
  void runtime_duration(double seconds);
  void receive_duration(double seconds);
  void send_duration(std::string_view destination_queue, double seconds);
  void envelope_size(std::string_view direction, std::size_t bytes);  // "received" | "sent"
  void active_add(double delta);                                      // asya_actor_active_messages
  // asya_actor_runtime_errors_total{queue,error_type}
  void runtime_error(std::string_view error_type);
  void retry();                // asya_actor_retries_total
  void deadline_exceeded();    // asya_actor_deadline_exceeded_total
  void poison();               // asya_actor_poison_messages_total
  void gateway_report_sent();  // asya_actor_gateway_reports_total{result}
  void gateway_report_dropped();
  // asya_actor_gateway_announcements_total{result="sent"|"failed"}: synchronous fan-out
  // announcements (POST /envelopes before any output is published).
  void gateway_announcement(bool sent);
  // asya_actor_lease_extensions_total{queue,result="ok"|"failed"}: leases extended while a
  // message took longer than a third of the visibility timeout.
  void lease_extension(bool ok);
  // asya_actor_redeliveries_total{queue,transport}: deliveries with delivery_count > 1 (after a
  // connection loss, a broker crash, a lease expiry or a nack): the most handler calls that may
  // repeat earlier work.
  void redelivered();
  // asya_actor_end_duplicates_kept_total{queue}: end actors only, late duplicates whose payload
  // object was gone, acknowledged while the result already stored was kept (PROTOCOL §6).
  void end_duplicate_kept();
  // asya_actor_consumed_copies_dropped_total{queue}: copies of a message consumed before (their
  // hold token released) whose payload object was gone, acknowledged without calling the handler
  // (PROTOCOL §10 "Outputs waiting in a queue").
  void consumed_copy_dropped();

  // Prometheus text exposition format 0.0.4.
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What /readyz answers: ready, or not and why.
struct Readiness {
  bool ready = false;
  std::string reason;  // when not ready: why, in one line for people
};

// A minimal blocking HTTP/1.1 responder on one thread: GET /metrics, GET /healthz (always 200
// "ok": the process runs and serves, which is all a liveness probe should ask), GET /readyz (200
// "ready" when `ready()` says so, else 503 "not ready: <reason>"). One request per connection;
// `ready` is called on the responder's thread.
class MetricsServer {
 public:
  MetricsServer(const Metrics& metrics, std::function<Readiness()> ready);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds `addr` ("host:port" or ":port"; port 0 picks a free one) and starts serving. Fails
  // with a message naming the address and the cause.
  Status start(std::string_view addr);
  int port() const { return port_; }
  void stop();

 private:
  void run();
  void serve_one(int fd);

  const Metrics& metrics_;
  std::function<Readiness()> ready_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace asya::sidecar
