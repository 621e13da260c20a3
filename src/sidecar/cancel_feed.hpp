// The gateway's cancellation feed, followed by one background thread per sidecar (PROTOCOL §7
// GET /envelopes/cancellations): a long poll that answers the jobs cancelled since the last
// position seen. While the feed is live, an actor decides from the jobs it was told about whether
// an envelope's job was cancelled, with no request per message; while it is not (an older gateway
// without the endpoint, the gateway down, a rogue or failing answer, the first catch-up not done
// yet), job() answers `unknown` and the caller asks the gateway per message as before.
//
// Live means: the whole log was read once (every page), the last request succeeded, and the one
// outstanding now was sent less than `wait + grace` ago (the gateway answers a held request at
// once when a job is cancelled, and by `wait` at the latest). A cancel committed at the gateway
// reaches job() about one gateway round trip later (a few ms on one replica; across replicas
// sharing PostgreSQL, the NOTIFY's delay, at most the gateway's ASYA_GATEWAY_POLL_INTERVAL when a
// notification is lost). Jobs are forgotten `retention` after they were learned, and the oldest
// first beyond `max_jobs`.
#pragma once

#include <atomic>
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
#include <unordered_set>
#include <vector>

#include "common/http/client.hpp"

namespace asya::sidecar {

struct CancelFeedOptions {
  std::string base_url;      // the gateway, "http://host:port" (or http+unix://), no trailing /
  std::string bearer_token;  // ASYA_GATEWAY_INTERNAL_TOKEN (empty: none sent)
  // How long the gateway may hold a request (wait_ms) when nothing was cancelled.
  std::chrono::milliseconds wait{std::chrono::seconds(10)};
  // How much later than `wait` an answer may come before the feed counts as not live.
  std::chrono::milliseconds grace{std::chrono::seconds(2)};
  // After a failed request (no answer, 5xx, a rogue answer), the next one waits this long.
  std::chrono::milliseconds retry_delay{std::chrono::seconds(1)};
  // After a 4xx answer (404/405: a gateway without the feed; 401: a wrong token), this long.
  std::chrono::milliseconds retry_after_refusal{std::chrono::minutes(1)};
  std::size_t max_jobs = 20000;
  std::chrono::milliseconds retention{std::chrono::hours(24)};
};

// A feed answer, as read by read_feed_answer.
struct FeedAnswer {
  std::int64_t next_after = 0;
  std::vector<std::string> cancelled;
  bool more = false;
  bool reset = false;
};
// Reads `{"next_after": n >= 0, "cancelled": [non-empty strings], "more"?: bool, "reset"?: bool}`
// (other members ignored); nullopt with `why` set for anything else.
std::optional<FeedAnswer> read_feed_answer(std::string_view body, std::string& why);

// The value of "job_id" in route.metadata (its JSON text), "" when absent or not a string.
// Thread-safe.
std::string gateway_job_id(std::string_view route_metadata_raw);

class CancelFeed {
 public:
  // Starts the thread.
  explicit CancelFeed(CancelFeedOptions options);
  ~CancelFeed();  // stop()
  CancelFeed(const CancelFeed&) = delete;
  CancelFeed& operator=(const CancelFeed&) = delete;

  enum class Knowledge { cancelled, not_cancelled, unknown };
  // What the feed says about the job now: `unknown` while the feed is not live. Thread-safe,
  // never blocks on the network.
  Knowledge job(std::string_view job_id) const;
  bool live() const;
  // Ends the outstanding request (within about 100 ms) and joins the thread. Idempotent.
  void stop();

 private:
  void run();
  // Adds the jobs of an answer; forgets expired ones.
  void learn(const std::vector<std::string>& jobs);
  // Waits `delay` unless stop() begins; false when stopping.
  bool pause(std::chrono::milliseconds delay);

  CancelFeedOptions options_;
  http::Client client_;
  http::Headers headers_;
  std::atomic<bool> stopping_{false};
  // Live until then (steady clock, ns since its epoch; 0: not live).
  std::atomic<std::int64_t> live_until_ns_{0};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  // Looked up by string_view, with no copy per message.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_set<std::string, Hash, std::equal_to<>> cancelled_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> learned_;  // oldest 1st
  std::thread thread_;
};

}  // namespace asya::sidecar
