// Progress, fan-out and final reports to the gateway (PROTOCOL §7). post() never blocks: reports
// go to a bounded queue drained by one background thread with the HTTP client of common/http
// (short timeouts, bounded retries). When the queue is full the report is dropped (and counted),
// never the message. The thread coalesces: when it finds several progress/final reports queued
// one after another, it sends them in one POST /envelopes/reports (in queue order, at most
// max_batch of them); a report alone in the queue is sent at once in its single form, never held
// back to wait for others, except a report posted with post_carriable(): that one may wait up to
// `carry_wait` for the next cancellation check to carry it (take_carried), which saves the
// request of its own at a steady rate. A gateway without the batch endpoint (404/405) gets single
// reports.
// post_now() is the one synchronous call, for fan-out announcements that must reach the gateway
// before any output of the message is published. A report the gateway refuses (a 4xx answer, e.g.
// 401 for a missing or wrong internal token) is logged at warn with the HTTP status and the
// gateway's answer, once per report.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/http/client.hpp"
#include "sidecar/report_batch.hpp"

namespace asya::sidecar {

// Bodies of PROTOCOL §7, exactly.
// POST /envelopes/{id}/progress
std::string progress_body(const std::vector<std::string>& actors, std::size_t current_actor_idx,
                          std::string_view status, std::string_view message,
                          std::optional<std::int64_t> duration_ms);
// POST /envelopes (announce fan-out child `child_id` of `parent_id`)
std::string fanout_body(std::string_view child_id, std::string_view parent_id,
                        const std::vector<std::string>& actors, std::size_t current);
// POST /envelopes/{id}/final. `result_raw`, `error_details_raw` are raw JSON (empty: omitted);
// `error` empty: omitted.
std::string final_body(std::string_view id, bool succeeded, std::string_view result_raw,
                       std::string_view error, std::string_view error_details_raw,
                       const std::vector<std::string>& actors, std::size_t current_actor_idx);
// Whether the gateway tracks an envelope: it started it as a job, so its route.metadata has
// "job_id" (PROTOCOL §1, §7; fan-out children carry the metadata on). `route_metadata_raw` is the
// JSON text of route.metadata (empty when absent). Sidecars report only such envelopes: one sent
// by `asya send` or another producer belongs to no job, and every report about it would be
// refused (404). Thread-safe.
bool tracked_by_gateway(std::string_view route_metadata_raw);

// POST /envelopes/{id}/check: `{"progress": <progress_body>}`, or `{}` when `progress` is empty;
// with `carried` not empty also `"reports": <batch_body(carried)>` (earlier reports of this
// sidecar that the check carries, PROTOCOL §7).
std::string check_body(std::string_view progress, const std::vector<BatchEntry>& carried = {});
// The gateway's answer to a check (PROTOCOL §7): whether the job was cancelled, whether the
// gateway took the progress report the check carried (`"progress": "accepted"`) and the earlier
// reports it carried (`"reports": "accepted"`; an older gateway ignores both). All false for an
// answer that is not JSON.
struct CheckAnswer {
  bool cancelled = false;
  bool progress_accepted = false;
  bool reports_accepted = false;
};
CheckAnswer read_check_answer(std::string_view answer);
// "/envelopes/<id>/<what>" with the id percent-encoded as a path segment.
std::string envelope_path(std::string_view id, std::string_view what);

struct GatewayReporterOptions {
  std::string base_url;  // "http://host:port", no trailing slash
  // Sent as `Authorization: Bearer <bearer_token>` with every request when not empty: the
  // gateway's ASYA_GATEWAY_INTERNAL_TOKEN, which it requires on the sidecar endpoints.
  std::string bearer_token;
  std::size_t capacity = 10000;                // reports waiting; beyond it new reports are dropped
  int max_attempts = 3;                        // per report
  std::chrono::milliseconds timeout{2000};     // per HTTP request
  std::chrono::milliseconds retry_delay{200};  // first retry delay, doubled per attempt
  std::size_t max_batch = 64;                  // reports per batched request (1: never batch)
  std::size_t max_batch_bytes = 1u << 20;      // bodies per batched request (a larger one: alone)
  // How long a report posted with post_carriable() may wait for a check to carry it before the
  // thread sends it itself. Zero: never held (post_carriable is post).
  std::chrono::milliseconds carry_wait{0};
  std::function<void()> on_dropped;  // called when a report is dropped (queue full or failed)
  std::function<void()> on_sent;     // called when a report was accepted (2xx)
};

class GatewayReporter {
 public:
  explicit GatewayReporter(GatewayReporterOptions options);
  ~GatewayReporter();  // stop(0)
  GatewayReporter(const GatewayReporter&) = delete;
  GatewayReporter& operator=(const GatewayReporter&) = delete;

  // Queues `POST base_url + path` with a JSON body. Never blocks; thread-safe. Returns false
  // when the report was dropped because the queue is full.
  bool post(std::string path, std::string body);
  // post() for a progress report that may wait up to options.carry_wait for the next cancellation
  // check to carry it (take_carried). It is sent at once instead as soon as a report that may not
  // wait is queued behind it (queue order is kept), flush() or stop() begins, or the wait is over.
  bool post_carriable(std::string path, std::string body);

  // A queued report: its path, its body, and for a progress or final report its id and kind.
  struct Report {
    std::string path;
    std::string body;
    std::optional<BatchableReport> batch;  // set when it may travel in a batch
    // Set for a report that may wait for a check to carry it until then (post_carriable).
    std::optional<std::chrono::steady_clock::time_point> carry_until;
  };
  // Reports taken off the queue to travel on a check (PROTOCOL §7), in queue order.
  using Carried = std::vector<Report>;
  // The batch entries of `reports` (views into them), for check_body.
  static std::vector<BatchEntry> entries(const Carried& reports);
  // Takes the reports that wait to be carried, when every queued report is such a one and the
  // thread is sending none (so carrying them keeps the queue's order); at most max_batch of them,
  // max_batch_bytes of bodies. Hand them back with carried(), whatever became of the check: until
  // then the thread sends nothing (the reports queued after them must not overtake them).
  // Thread-safe.
  Carried take_carried();
  // The check that carried `reports` is over: `accepted` (the gateway answered `"reports":
  // "accepted"`) counts them sent; otherwise they go back to the head of the queue and are sent at
  // once, within their tries, as if never taken (and for a minute no report is held or carried,
  // so an older gateway that ignores carried reports does not get every report twice).
  void carried(Carried reports, bool accepted);

  // Sends `POST base_url + path` on the calling thread and waits for the answer: at most
  // `attempts` tries (a 4xx other than 408/429 is not retried), all within `budget` in total.
  // Returns true on a 2xx answer, false otherwise (the caller decides what to do; nothing is
  // counted here). Thread-safe; calls borrow pooled connections, so consecutive calls reuse an
  // open connection instead of connecting again.
  bool post_now(const std::string& path, const std::string& body, std::chrono::milliseconds budget,
                int attempts) const;
  // The gateway's answer to post_now_answer: its HTTP status and the start of its body (the first
  // few hundred bytes).
  struct Answer {
    long http_status = 0;
    std::string body;
    bool ok() const { return http_status >= 200 && http_status < 300; }
  };
  // post_now that returns the gateway's last answer (2xx, or a 4xx that retrying cannot change),
  // nullopt when none arrived within the budget.
  std::optional<Answer> post_now_answer(const std::string& path, const std::string& body,
                                        std::chrono::milliseconds budget, int attempts) const;

  // Waits up to `budget` until every report queued before this call was sent (or dropped), so a
  // synchronous report sent next reaches the gateway after them. Returns false when some were
  // still waiting at the end of the budget. Thread-safe.
  bool flush(std::chrono::milliseconds budget);

  // Waits up to `grace` for the queue to drain, then stops the thread (remaining reports are
  // dropped and counted). Idempotent.
  void stop(std::chrono::milliseconds grace);

 private:
  bool enqueue(Report report);
  // Whether the thread should hold the queue for a check to take it (lock held).
  bool holding() const;
  void run();
  // Sends one report in its single form, with retries; counts it sent or dropped.
  void send_single(const Report& report);
  // Sends several batchable reports in one request, retrying those that may succeed later;
  // counts each sent or dropped.
  void send_batch(const std::vector<Report>& reports);
  // Waits `delay` unless stop() begins; false when stopping.
  bool pause(std::chrono::milliseconds delay);

  GatewayReporterOptions options_;
  http::Headers headers_;        // of every report: JSON content type, the bearer token if any
  mutable http::Client client_;  // thread-safe; shared by run() and post_now()
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Report> queue_;
  std::size_t in_hand_ = 0;      // reports taken by the thread and not finished yet
  std::size_t carried_out_ = 0;  // reports taken by a check (take_carried) and not handed back
  std::size_t urgent_ = 0;       // queued reports that may not wait (no carry_until)
  int flushing_ = 0;             // flush() calls waiting: nothing is held meanwhile
  bool draining_ = false;        // stop() began: nothing is held
  bool idle_ = false;            // the thread waits for a first report (not on a held one's timer)
  bool stopping_ = false;
  // The gateway refused the batch form (an older gateway): singles until then (the thread's own).
  std::chrono::steady_clock::time_point no_batches_until_{};
  // A check did not take the reports it carried: none are held or carried until then.
  std::chrono::steady_clock::time_point no_carry_until_{};
  std::uint64_t queued_ = 0;    // reports ever queued
  std::uint64_t finished_ = 0;  // of them sent or dropped (in queue order: one thread sends)
  std::thread thread_;
};

}  // namespace asya::sidecar
