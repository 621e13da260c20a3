#include "common/otlp/exporter.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <pthread.h>

#include <map>
#include <sstream>

#include "common/process_metrics.hpp"

namespace asya::otlp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kWarningInterval{60};

// The process-wide counters, by destination, and their Prometheus text.
class Counters {
 public:
  static Counters& instance() {
    static Counters* counters = [] {
      auto* created = new Counters();  // never destroyed: scrapes may run until exit
      add_process_metrics([created] { return created->text(); });
      return created;
    }();
    return *counters;
  }
  void touch(const std::string& destination) {
    std::lock_guard lock(mutex_);
    counts_[destination];
  }
  void add(const std::string& destination, std::uint64_t ExportCounts::*field, std::uint64_t n) {
    std::lock_guard lock(mutex_);
    counts_[destination].*field += n;
  }
  ExportCounts get(std::string_view destination) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(std::string(destination));
    return it == counts_.end() ? ExportCounts{} : it->second;
  }
  std::string text() {
    std::lock_guard lock(mutex_);
    if (counts_.empty()) return {};
    std::ostringstream out;
    out << "# HELP asya_trace_spans_exported_total Trace spans an OTLP/HTTP receiver accepted.\n"
           "# TYPE asya_trace_spans_exported_total counter\n";
    for (const auto& [destination, c] : counts_)
      out << "asya_trace_spans_exported_total{destination=\"" << destination << "\"} " << c.exported
          << "\n";
    out << "# HELP asya_trace_spans_dropped_total Trace spans not exported: the queue was full, "
           "the receiver failed, or the process stopped first.\n"
           "# TYPE asya_trace_spans_dropped_total counter\n";
    for (const auto& [destination, c] : counts_) {
      const std::pair<const char*, std::uint64_t> reasons[] = {
          {"queue_full", c.dropped_queue_full},
          {"export_failed", c.dropped_export_failed},
          {"shutdown", c.dropped_shutdown}};
      for (const auto& [reason, n] : reasons)
        out << "asya_trace_spans_dropped_total{destination=\"" << destination << "\",reason=\""
            << reason << "\"} " << n << "\n";
    }
    return out.str();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, ExportCounts, std::less<>> counts_;
};

bool worth_retrying(const Result<http::Response>& answer) {
  if (!answer) return true;
  const long status = answer->status;
  return status == 408 || status == 429 || status >= 500;
}

}  // namespace

ExportCounts export_counts(std::string_view destination) {
  return Counters::instance().get(destination);
}

Exporter::Exporter(ExporterOptions options) : options_(std::move(options)) {
  headers_.emplace_back("Content-Type", "application/json");
  for (const auto& header : options_.settings.headers) headers_.push_back(header);
  Counters::instance().touch(options_.destination);
  thread_ = std::thread([this] { run(); });
}

Exporter::~Exporter() {
  stop(std::chrono::milliseconds(0));
}

std::size_t Exporter::add(std::vector<Span> spans) {
  EncodedSpans encoded;
  for (const Span& span : spans) append_encoded(encoded, span);
  return add(std::move(encoded));
}

std::size_t Exporter::add(const EncodedSpans& spans) {
  return enqueue(spans, nullptr);
}

std::size_t Exporter::add(EncodedSpans&& spans) {
  return enqueue(spans, &spans);
}

void Exporter::append_part(const EncodedSpans& spans, EncodedSpans* movable) {
  const std::size_t limit = std::max<std::size_t>(options_.settings.max_batch_spans, 1);
  if (!queue_.empty() && queue_.back().count + spans.count <= limit) {
    EncodedSpans& last = queue_.back();
    last.json.push_back(',');
    last.json.append(spans.json);
    last.count += spans.count;
    return;
  }
  if (movable && spans.count >= limit) {
    // A part of a batch or more goes as it is (split by run()). One written into a generous
    // buffer keeps at most 2 KiB unused while it waits.
    if (movable->json.capacity() > movable->json.size() + 2048) movable->json.shrink_to_fit();
    queue_.push_back(std::move(*movable));
    return;
  }
  // A new last part, sized for a batch of spans like these (at most 1 MiB): the adds that follow
  // append to it without growing it.
  constexpr std::size_t kMostReserved = 1 << 20;
  EncodedSpans part;
  if (!spare_parts_.empty()) {
    part.json = std::move(spare_parts_.back());  // empty, with its capacity
    spare_parts_.pop_back();
  }
  const std::size_t per_span = spans.json.size() / std::max<std::size_t>(spans.count, 1) + 1;
  part.json.reserve(std::min(kMostReserved, std::max(spans.json.size(), per_span * limit)));
  part.json.append(spans.json);
  part.count = spans.count;
  queue_.push_back(std::move(part));
}

std::size_t Exporter::enqueue(const EncodedSpans& spans, EncodedSpans* movable) {
  const std::size_t offered = spans.count;
  if (offered == 0) return 0;
  std::size_t queued = 0;
  bool batch_ready = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      const std::size_t room = options_.settings.max_queue_spans -
                               std::min(queued_spans_, options_.settings.max_queue_spans);
      if (room >= offered) {
        queued = offered;
        append_part(spans, movable);
      } else if (room > 0) {
        EncodedSpans rest = movable ? std::move(*movable) : spans;
        EncodedSpans first = split_encoded(rest, room);
        queued = first.count;
        if (queued > 0) append_part(first, &first);
      }
      queued_spans_ += queued;
      batch_ready = queued_spans_ >= options_.settings.max_batch_spans;
    }
  }
  if (queued < offered)
    Counters::instance().add(options_.destination, &ExportCounts::dropped_queue_full,
                             offered - queued);
  // The thread is woken for a full batch only: a partial one waits for schedule_delay anyway, and
  // waking it for every message (to find the batch not full yet) cost two context switches each.
  if (batch_ready) cv_.notify_one();
  return queued;
}

bool Exporter::flush(std::chrono::milliseconds budget) {
  std::unique_lock lock(mutex_);
  if (!queue_.empty()) {
    ++flushes_asked_;
    cv_.notify_one();
  }
  return idle_cv_.wait_for(lock, budget, [this] { return queue_.empty() && !busy_; });
}

void Exporter::stop(std::chrono::milliseconds grace) {
  {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_one();
    idle_cv_.wait_for(lock, grace, [this] { return queue_.empty() && !busy_; });
    cancel_ = true;
    cv_.notify_one();
  }
  thread_.join();
}

void Exporter::run() {
  ::pthread_setname_np(::pthread_self(), "asya-otlp");
  const auto& settings = options_.settings;
  std::unique_lock lock(mutex_);
  for (;;) {
    // A partial batch waits for more spans at most schedule_delay; a full one, or a flush or
    // stop, goes at once.
    cv_.wait_for(lock, settings.schedule_delay, [&] {
      return cancel_ || stopping_ || flushes_asked_ != flushes_done_ ||
             queued_spans_ >= settings.max_batch_spans;
    });
    if (cancel_) break;
    if (queue_.empty()) {
      flushes_done_ = flushes_asked_;
      idle_cv_.notify_all();
      if (stopping_) break;
      // Nothing came for a whole schedule_delay after a full batch: idle too.
      if (!spare_parts_.empty() || body_.capacity() > 0) release_buffers(lock);
      continue;
    }
    // Whole parts while they fit; a part that would overflow the batch is split.
    std::vector<EncodedSpans> batch;
    std::size_t taken = 0;
    const std::size_t limit = std::max<std::size_t>(settings.max_batch_spans, 1);
    while (!queue_.empty() && taken < limit) {
      EncodedSpans& next = queue_.front();
      if (taken + next.count > limit) {
        EncodedSpans first = split_encoded(next, limit - taken);
        if (first.count > 0) {
          taken += first.count;
          batch.push_back(std::move(first));
          break;
        }
        if (taken > 0) break;  // cannot be split: sent whole in a batch of its own
      }
      taken += next.count;
      batch.push_back(std::move(next));
      queue_.pop_front();
    }
    queued_spans_ -= taken;
    busy_ = true;
    lock.unlock();
    send(batch, taken);
    lock.lock();
    busy_ = false;
    keep_spare_parts(batch);
    if (queue_.empty()) {
      flushes_done_ = flushes_asked_;
      idle_cv_.notify_all();
      // Idle (a partial batch went out and nothing more came): give the kept buffers and the
      // memory of the batch back to the system, at most once a second, so the exporter does not
      // keep its peak around (glibc keeps freed memory in the heap otherwise). While full batches
      // keep coming, the buffers are reused instead (see spare_parts_).
      if (taken < limit && Clock::now() - last_trim_ >= std::chrono::seconds(1))
        release_buffers(lock);
    }
  }
  if (queued_spans_ > 0)
    Counters::instance().add(options_.destination, &ExportCounts::dropped_shutdown, queued_spans_);
  queue_.clear();
  queued_spans_ = 0;
  idle_cv_.notify_all();
}

std::size_t Exporter::spare_part_buffers() {
  std::lock_guard lock(mutex_);
  return spare_parts_.size();
}

void Exporter::release_buffers(std::unique_lock<std::mutex>& lock) {
  last_trim_ = Clock::now();
  std::vector<std::string>().swap(spare_parts_);
  std::string().swap(body_);
  lock.unlock();
  ::malloc_trim(0);
  lock.lock();
}

void Exporter::keep_spare_parts(std::vector<EncodedSpans>& batch) {
  // Two are enough: the part being filled and the next one (a part is sized for a batch).
  constexpr std::size_t kSpareParts = 2;
  for (EncodedSpans& part : batch) {
    if (spare_parts_.size() >= kSpareParts) break;
    if (part.json.capacity() == 0) continue;
    part.json.clear();
    spare_parts_.push_back(std::move(part.json));
  }
  batch.clear();
}

void Exporter::send(const std::vector<EncodedSpans>& batch, std::size_t spans) {
  write_export_request(body_, options_.settings.resource, batch);
  const std::string& body = body_;
  http::Request request;
  request.method = "POST";
  request.url = options_.settings.url;
  request.headers = headers_;
  request.body = body;
  request.timeout = options_.settings.timeout;
  request.connect_timeout = std::min(options_.settings.timeout, std::chrono::milliseconds(2000));
  request.cancel = &cancel_;
  Result<http::Response> answer = Error{"not sent"};
  for (int attempt = 1; attempt <= options_.max_attempts && !cancel_; ++attempt) {
    if (attempt > 1) {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, options_.retry_delay, [this] { return cancel_.load(); });
      if (cancel_) break;
    }
    answer = client_.perform(request);
    if (!worth_retrying(answer)) break;
  }
  auto& counters = Counters::instance();
  if (answer && answer->status >= 200 && answer->status < 300) {
    counters.add(options_.destination, &ExportCounts::exported, spans);
    if (failing_) {
      spdlog::info("trace export to {} works again", options_.settings.url);
      failing_ = false;
      failed_since_warning_ = 0;
      last_warning_ = {};
    }
    return;
  }
  counters.add(options_.destination,
               cancel_ ? &ExportCounts::dropped_shutdown : &ExportCounts::dropped_export_failed,
               spans);
  failing_ = true;
  failed_since_warning_ += spans;
  const auto now = Clock::now();
  if (last_warning_ == Clock::time_point{} || now - last_warning_ >= kWarningInterval) {
    std::string why = answer
                          ? fmt::format("HTTP {}: {}", answer->status, answer->body.substr(0, 200))
                          : answer.error().message;
    spdlog::warn(
        "trace export to {} failed ({}); {} span(s) dropped since the last warning (messages "
        "are not affected; see asya_trace_spans_dropped_total)",
        options_.settings.url, why, failed_since_warning_);
    last_warning_ = now;
    failed_since_warning_ = 0;
  }
}

}  // namespace asya::otlp
