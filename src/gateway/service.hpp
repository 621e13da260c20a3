// The gateway's core, independent of HTTP: starts tool calls (job + envelope + publish), applies
// sidecar reports, wakes waiters when a job changes, and expires jobs past their deadline.
// Blocking work (job store, transport) runs on a small thread pool, never on the event loop.
//
// Threading: every coroutine here runs on the single-threaded io_context given to the
// constructor; blocking calls hop to the pool and back.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <unordered_map>
#include <vector>
#include "payload/settings.hpp"

#include "common/otlp/export_settings.hpp"
#include "common/random_id.hpp"
#include "common/result.hpp"
#include "gateway/call_trace.hpp"
#include "gateway/config/tools_config.hpp"
#include "gateway/metrics.hpp"
#include "gateway/store/job_store.hpp"
#include "transport/transport.hpp"

namespace asya::gateway {

struct ServiceOptions {
  std::string queue_prefix = "asya-";
  std::chrono::milliseconds poll_interval{
      std::chrono::seconds(2)};  // re-read the store without a wake-up
  std::chrono::milliseconds sweep_interval{std::chrono::seconds(1)};  // deadline checks
  std::size_t blocking_threads = 4;
  // The call span of every tool call (call_trace.hpp): the collector (ASYA_OTLP_ENDPOINT /
  // OTEL_*, nullopt: none) and the gateway's resource.
  std::optional<otlp::ExportSettings> trace_collector;
  otlp::ExportSettings trace_process;
  // ASYA_PAYLOAD_STORE and ASYA_PAYLOAD_THRESHOLD: a call's payload above the threshold is put in
  // the payload store and the first envelope carries its reference (docs/protocol.md §10).
  payload::Settings payload;
};

// Wakes coroutines waiting for changes of a job. Thread-safe.
class Notifier {
 public:
  explicit Notifier(boost::asio::io_context& io) : io_(io) {}

  class Subscription {
   public:
    ~Subscription();
    // Returns when the job changed since the last wait, or after `at_most`.
    boost::asio::awaitable<void> wait(std::chrono::milliseconds at_most);

   private:
    friend class Notifier;
    Subscription(Notifier& owner, std::string job_id, bool final_only);
    Notifier& owner_;
    std::string job_id_;
    bool final_only_;
    boost::asio::steady_timer timer_;
    bool notified_ = false;
  };

  // `final_only`: woken only by changes that may have made the job final (a waiter that needs
  // nothing but the end skips a store read per progress report).
  std::unique_ptr<Subscription> subscribe(const std::string& job_id, bool final_only = false);
  // Wakes the subscribers of the job. `maybe_final` false: the change left the job unfinished
  // (final-only subscribers sleep on); when in doubt pass true. May be called from any thread.
  // Posts nothing when the job has no subscriber that the change could wake (has_waiters).
  void notify(const std::string& job_id, bool maybe_final = true);
  // Whether a subscription to the job would be woken by notify(job_id, maybe_final).
  bool has_waiters(const std::string& job_id, bool maybe_final = true);

 private:
  boost::asio::io_context& io_;
  std::mutex mutex_;
  std::unordered_multimap<std::string, Subscription*> subscribers_;
};

// The client a request comes from (api::caller_of): the owner recorded on the jobs it starts, and
// whether it may see only those. With two or more client tokens (ASYA_GATEWAY_TOKEN lists them)
// each token is one caller and every client endpoint serves only the caller's own jobs; with one
// token or none every caller sees every job.
struct Caller {
  std::string owner;      // fingerprint of the caller's token ("" without tokens): Job::owner
  bool isolated = false;  // several client tokens: only jobs with Job::owner == owner are served
  // Whether this caller may be served `job` (another caller's job must read as an unknown id).
  bool may_see(const Job& job) const { return !isolated || job.owner == owner; }
};

// Who asked for a call and how: recorded with the job (Job::owner, Job::task, Job::ttl_ms).
struct CallOrigin {
  std::string owner;  // fingerprint of the caller's token ("" without tokens)
  bool task = false;  // an MCP task (tools/call with `task`)
  std::optional<std::int64_t> ttl_ms;
};

struct CallStarted {
  std::string job_id;
  const Tool* tool = nullptr;
};

class Service {
 public:
  // Opens the payload store of options.payload (throws asya::ConfigError when it is unusable).
  Service(boost::asio::io_context& io, ServiceOptions options, ToolsConfig tools,
          std::unique_ptr<JobStore> store, std::unique_ptr<transport::Transport> transport,
          Metrics& metrics);
  ~Service();

  const ToolsConfig& tools() const { return tools_; }
  JobStore& store() { return *store_; }
  Metrics& metrics() { return metrics_; }
  Notifier& notifier() { return notifier_; }
  CallTracer& call_tracer() { return call_tracer_; }
  // The transport the calls are published on (thread-safe; call it on the blocking pool).
  transport::Transport& transport() { return *transport_; }
  boost::asio::io_context& io() { return io_; }
  const std::string& queue_prefix() const { return options_.queue_prefix; }

  // Starts the deadline sweeper and, when the store can, watches it for changes made by other
  // gateway replicas (PostgreSQL LISTEN/NOTIFY) to wake local waiters at once.
  void start();
  // Stops the sweeper, the store watch and the pool (waits for running blocking calls).
  void stop();

  // Runs `work` on the blocking pool and resumes on the io_context with its result.
  // Not a coroutine itself (see service_impl.hpp); `work` is a callable returning T. Pass a
  // named lambda (std::move(work)), never a lambda written inside the co_await expression.
  template <class T, class Work>
  boost::asio::awaitable<T> blocking(Work&& work);

  // Like blocking(), and then, on the same pool thread, runs the follow-up that `then` (called
  // there with the result, before the coroutine gets it) returns, if any: work that must not
  // delay the answer (a check's carried reports) without a second hop to the pool. stop() waits
  // for the follow-up like for any blocking call; neither may throw past the pool (an exception
  // of `work` or `then` is rethrown in the coroutine, and no follow-up runs).
  template <class T, class Work, class Then>
  boost::asio::awaitable<T> blocking_then(Work&& work, Then&& then);

  // Creates the job and publishes the envelope for an already validated call. `payload_json` is
  // the JSON text of the validated arguments (payload_text in raw_json.hpp), put into the
  // envelope byte for byte. Error when the store or the publish failed (the job, if created, is
  // then failed with that error).
  boost::asio::awaitable<Result<std::string>> start_call(const Tool& tool, std::string payload_json,
                                                         CallOrigin origin = {});

  // Cancels the job (JobStore::cancel) and wakes its waiters. Sidecars learn it from the answer to
  // their next report about the job (PROTOCOL §7) and skip its queued envelopes.
  boost::asio::awaitable<Result<ChangeResult>> cancel_job(const std::string& job_id,
                                                          const std::string& reason);

  // Waits until the job is final or `deadline` passed (then fails it with "timed out"), calling
  // `on_update` for each update in order. When `on_idle` is set it is called whenever
  // `idle_interval` passed without an update or an idle call (SSE keepalives). Returns the final
  // job (nullopt for an unknown id).
  using UpdateCallback = std::function<boost::asio::awaitable<void>(const Update&)>;
  using IdleCallback = std::function<boost::asio::awaitable<void>()>;
  // `stop` (when set) is asked after every wake-up; when it returns true the wait ends with
  // nullopt (wake the waiter with notifier().notify(job_id) after making it true).
  boost::asio::awaitable<std::optional<Job>> wait_final(
      const std::string& job_id, std::optional<Clock::time_point> deadline,
      UpdateCallback on_update, IdleCallback on_idle = {},
      std::chrono::milliseconds idle_interval = std::chrono::seconds(15),
      std::function<bool()> stop = {});

  // Readiness: store and transport reachable ("" when ready, else what is wrong).
  boost::asio::awaitable<std::string> readiness();

  std::chrono::milliseconds poll_interval() const { return options_.poll_interval; }

 private:
  boost::asio::awaitable<void> sweep_loop();

  boost::asio::io_context& io_;
  ServiceOptions options_;
  ToolsConfig tools_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<transport::Transport> transport_;
  Metrics& metrics_;
  Notifier notifier_;
  CallTracer call_tracer_;
  boost::asio::thread_pool pool_;
  boost::asio::steady_timer sweep_timer_;
  std::unique_ptr<payload::PayloadStore> payload_store_;  // options_.payload enabled
  bool stopped_ = false;
};

// A random UUID v4 ("5e6fdb2d-1d6b-4e91-baef-73e825434e7b"): common/random_id.hpp.
using asya::new_uuid;
// A new W3C traceparent ("00-<32 hex>-<16 hex>-01").
std::string new_traceparent();

}  // namespace asya::gateway

#include "gateway/service_impl.hpp"
