#include "gateway/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "common/log.hpp"
#include "common/random_id.hpp"
#include "envelope/new_envelope.hpp"
#include "payload/offload.hpp"

namespace asya::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using asio::use_awaitable;

std::string new_traceparent() {
  std::string trace = random_hex(32);
  std::string span = random_hex(16);
  if (trace.find_first_not_of('0') == std::string::npos)
    trace[0] = '1';  // all-zero ids are invalid
  if (span.find_first_not_of('0') == std::string::npos) span[0] = '1';
  return "00-" + trace + "-" + span + "-01";
}

// ---- Notifier ----

Notifier::Subscription::Subscription(Notifier& owner, std::string job_id, bool final_only)
    : owner_(owner), job_id_(std::move(job_id)), final_only_(final_only), timer_(owner.io_) {}

Notifier::Subscription::~Subscription() {
  std::lock_guard lock(owner_.mutex_);
  auto range = owner_.subscribers_.equal_range(job_id_);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == this) {
      owner_.subscribers_.erase(it);
      break;
    }
  }
}

awaitable<void> Notifier::Subscription::wait(std::chrono::milliseconds at_most) {
  if (notified_) {
    notified_ = false;
    co_return;
  }
  timer_.expires_after(at_most);
  co_await timer_.async_wait(asio::as_tuple(use_awaitable));
  notified_ = false;
}

std::unique_ptr<Notifier::Subscription> Notifier::subscribe(const std::string& job_id,
                                                            bool final_only) {
  std::unique_ptr<Subscription> subscription(new Subscription(*this, job_id, final_only));
  std::lock_guard lock(mutex_);
  subscribers_.emplace(job_id, subscription.get());
  return subscription;
}

bool Notifier::has_waiters(const std::string& job_id, bool maybe_final) {
  std::lock_guard lock(mutex_);
  auto range = subscribers_.equal_range(job_id);
  for (auto it = range.first; it != range.second; ++it)
    if (maybe_final || !it->second->final_only_) return true;
  return false;
}

void Notifier::notify(const std::string& job_id, bool maybe_final) {
  // Nobody waits for most jobs (async calls, sidecar reports): then nothing is posted, so a report
  // applied on the blocking pool does not wake the io thread for nothing. A waiter that subscribes
  // after this look reads the store after subscribing (wait_final), so it sees the change anyway.
  if (!has_waiters(job_id, maybe_final)) return;
  // Runs on the io thread so that `notified_` and the timer are only touched there; the
  // subscription is looked up again in case it ended meanwhile.
  asio::post(io_, [this, job_id, maybe_final] {
    std::lock_guard lock(mutex_);
    auto range = subscribers_.equal_range(job_id);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second->final_only_ && !maybe_final) continue;
      it->second->notified_ = true;
      it->second->timer_.cancel();
    }
  });
}

// ---- Service ----

Service::Service(asio::io_context& io, ServiceOptions options, ToolsConfig tools,
                 std::unique_ptr<JobStore> store, std::unique_ptr<transport::Transport> transport,
                 Metrics& metrics)
    : io_(io),
      options_(std::move(options)),
      tools_(std::move(tools)),
      store_(std::move(store)),
      transport_(std::move(transport)),
      metrics_(metrics),
      notifier_(io),
      call_tracer_(options_.trace_collector, options_.trace_process),
      pool_(options_.blocking_threads),
      sweep_timer_(io),
      payload_store_(payload::open_store(options_.payload)) {}

Service::~Service() {
  stop();
}

void Service::start() {
  for (const auto& tool : tools_.tools) {
    std::string queue = options_.queue_prefix + tool.actors.front();
    Status ensured = transport_->ensure_queue(queue);
    if (!ensured.ok())
      spdlog::warn("gateway: cannot ensure queue {}: {}", queue, ensured.message());
  }
  asio::co_spawn(io_, sweep_loop(), asio::detached);
  store_->watch([this](const std::string& job_id) { notifier_.notify(job_id); });
}

void Service::stop() {
  if (stopped_) return;
  stopped_ = true;
  store_->unwatch();
  sweep_timer_.cancel();
  pool_.join();
  call_tracer_.stop(std::chrono::seconds(2));
}

awaitable<void> Service::sweep_loop() {
  while (!stopped_) {
    sweep_timer_.expires_after(options_.sweep_interval);
    co_await sweep_timer_.async_wait(asio::as_tuple(use_awaitable));
    if (stopped_) break;
    auto work_0 = [this] { return store_->expire(Clock::now()); };
    auto expired = co_await blocking<Result<std::vector<std::string>>>(std::move(work_0));
    if (!expired.ok()) {
      spdlog::warn("gateway: deadline sweep failed: {}", expired.error().message);
      continue;
    }
    for (const auto& id : expired.value()) {
      spdlog::info("gateway: job {} timed out", id);
      notifier_.notify(id);
    }
  }
}

awaitable<Result<std::string>> Service::start_call(const Tool& tool, std::string payload_json,
                                                   CallOrigin origin) {
  std::string id = new_uuid();
  // The envelope's trace is the job id's hex: the job of a span of that trace is found by its
  // key, with no entry in the job store's trace index (job_store.hpp, trace_id_of_job_id).
  const CallTracer::Call call = call_tracer_.begin(trace_id_of_job_id(id));
  auto now = Clock::now();
  auto deadline = now + tool.timeout;

  json::object metadata = tool.metadata;
  metadata["job_id"] = id;
  metadata["tool"] = tool.name;
  json::array actors;
  for (const auto& actor : tool.actors) actors.emplace_back(actor);
  json::object route{{"actors", actors}, {"current", 0}, {"metadata", metadata}};
  envelope::NewEnvelope spec;
  spec.id = id;
  spec.actors = tool.actors;
  spec.route_metadata_json = to_json_text(metadata);
  spec.headers = {{"traceparent", otlp::format_traceparent(call.context)}};
  spec.sent_at = std::chrono::system_clock::now();
  spec.deadline = deadline;
  // The payload goes in as sent (numbers keep their spelling).
  spec.payload_json = payload_json;
  auto built = envelope::new_envelope(spec);
  if (!built) co_return Error{"tool \"" + tool.name + "\": " + built.error().message};
  std::string body = std::move(*built);
  NewJob job{id,       tool.name,    tool.actors, to_json_text(route), std::move(payload_json),
             deadline, origin.owner, origin.task, origin.ttl_ms};
  // The trace the envelope starts ("00-<trace id>-<span id>-<flags>"): its spans are the job's.
  for (const auto& [name, value] : spec.headers)
    if (name == "traceparent" && value.size() >= 35) job.trace_id = value.substr(3, 32);
  std::string queue = options_.queue_prefix + tool.actors.front();

  auto work_1 = [this, job, body, queue, call]() -> Status {
    Status status = [&]() -> Status {
      Status created = store_->create(job);
      if (!created.ok()) return Error{"job store: " + created.message()};
      std::string sent_body;
      if (payload_store_) {
        // A large payload travels by reference (docs/protocol.md §10): stored and held first.
        auto offloaded =
            payload::offload_envelope(*payload_store_, options_.payload.threshold_bytes, body);
        if (!offloaded) {
          std::string error = "payload store: " + offloaded.error().message;
          (void)store_->fail(job.id, error);
          return Error{error};
        }
        if (*offloaded) sent_body = std::move(**offloaded);
      }
      Status sent = transport_->send(queue, sent_body.empty() ? body : sent_body);
      if (!sent.ok()) {
        std::string error = "publishing to " + queue + " failed: " + sent.message();
        (void)store_->fail(job.id, error);
        return Error{error};
      }
      return Status::Ok();
    }();
    // Here, on the blocking pool: the call span's local sink writes to the job store.
    call_tracer_.end(call, job.tool, job.id, queue, status.ok() ? "" : status.message());
    return status;
  };
  Status published = co_await blocking<Status>(std::move(work_1));
  if (!published.ok()) {
    notifier_.notify(id);
    spdlog::error("gateway: tool {} call {} failed: {}", tool.name, id, published.message());
    co_return published.error();
  }
  metrics_.tool_call(tool.name, "started", 0);
  co_return id;
}

awaitable<Result<ChangeResult>> Service::cancel_job(const std::string& job_id,
                                                    const std::string& reason) {
  auto work = [this, job_id, reason] { return store_->cancel(job_id, reason); };
  auto cancelled = co_await blocking<Result<ChangeResult>>(std::move(work));
  if (cancelled.ok() && cancelled.value().outcome == Outcome::applied) {
    spdlog::info("gateway: job {} cancelled: {}", cancelled.value().job_id, reason);
    notifier_.notify(cancelled.value().job_id);
  }
  co_return cancelled;
}

awaitable<std::optional<Job>> Service::wait_final(const std::string& job_id,
                                                  std::optional<Clock::time_point> deadline,
                                                  UpdateCallback on_update, IdleCallback on_idle,
                                                  std::chrono::milliseconds idle_interval,
                                                  std::function<bool()> stop) {
  // Without callbacks only the end matters: progress reports need not wake this waiter.
  auto subscription = notifier_.subscribe(job_id, !on_update && !on_idle);
  std::int64_t last = 0;
  auto last_activity = std::chrono::steady_clock::now();
  for (;;) {
    if (stop && stop()) co_return std::nullopt;
    auto work_2 = [this, job_id, last] { return store_->updates(job_id, last); };
    auto updates = co_await blocking<Result<std::vector<Update>>>(std::move(work_2));
    if (!updates.ok()) {
      spdlog::warn("gateway: reading updates of {} failed: {}", job_id, updates.error().message);
    } else {
      bool final = false;
      for (const auto& update : updates.value()) {
        last = update.sequence;
        last_activity = std::chrono::steady_clock::now();
        if (on_update) co_await on_update(update);
        if (is_final(update.status)) final = true;
      }
      if (final || (last == 0 && updates.value().empty())) {
        auto work_3 = [this, job_id] { return store_->get(job_id); };
        auto job = co_await blocking<Result<std::optional<Job>>>(std::move(work_3));
        if (!job.ok()) co_return std::nullopt;
        if (!job.value() || is_final(job.value()->status)) co_return job.value();
      }
    }
    auto wait = options_.poll_interval;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left <= std::chrono::milliseconds(0)) {
        auto work_4 = [this, job_id] { return store_->fail(job_id, "timed out"); };
        co_await blocking<Result<ChangeResult>>(std::move(work_4));
        continue;  // the next read returns the final update
      }
      wait = std::min(wait, left + std::chrono::milliseconds(1));
    }
    if (on_idle) {
      auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - last_activity);
      if (idle >= idle_interval) {
        co_await on_idle();
        last_activity = std::chrono::steady_clock::now();
        idle = std::chrono::milliseconds(0);
      }
      wait = std::min(wait, idle_interval - idle);
    }
    co_await subscription->wait(wait);
  }
}

awaitable<std::string> Service::readiness() {
  auto work_5 = [this]() -> std::string {
    Status store = store_->ping();
    if (!store.ok()) return "job store not reachable: " + store.message();
    auto stats = transport_->list_queues();
    if (!stats.ok()) return "transport not reachable: " + stats.error().message;
    return "";
  };
  co_return co_await blocking<std::string>(std::move(work_5));
}

}  // namespace asya::gateway
