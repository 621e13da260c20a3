#include "sidecar/cancel_feed.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace asya::sidecar {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t steady_ns(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The start of a rogue answer, for the log line.
std::string excerpt(std::string_view body) {
  constexpr std::size_t kShown = 200;
  std::string out(body.substr(0, kShown));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  if (body.size() > kShown) out += fmt::format("... ({} bytes)", body.size());
  return out;
}

}  // namespace

std::optional<FeedAnswer> read_feed_answer(std::string_view body, std::string& why) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size()).get(root)) {
    why = "not JSON";
    return std::nullopt;
  }
  simdjson::dom::object object;
  if (root.get(object)) {
    why = "not a JSON object";
    return std::nullopt;
  }
  FeedAnswer out;
  if (object["next_after"].get(out.next_after) || out.next_after < 0) {
    why = "\"next_after\" is missing or not an integer >= 0";
    return std::nullopt;
  }
  simdjson::dom::array jobs;
  if (object["cancelled"].get(jobs)) {
    why = "\"cancelled\" is missing or not an array";
    return std::nullopt;
  }
  for (simdjson::dom::element job : jobs) {
    std::string_view id;
    if (job.get(id) || id.empty()) {
      why = "\"cancelled\" holds an item that is not a non-empty string";
      return std::nullopt;
    }
    out.cancelled.emplace_back(id);
  }
  for (auto [name, flag] : {std::pair{"more", &out.more}, std::pair{"reset", &out.reset}}) {
    simdjson::dom::element value;
    if (object[name].get(value)) continue;  // absent
    if (value.get(*flag)) {
      why = fmt::format("\"{}\" is not a boolean", name);
      return std::nullopt;
    }
  }
  return out;
}

std::string gateway_job_id(std::string_view route_metadata_raw) {
  if (route_metadata_raw.find("\"job_id\"") == std::string_view::npos) return {};
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(route_metadata_raw);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return {};
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return {};
  std::string_view id;
  if (object.find_field_unordered("job_id").get_string().get(id)) return {};
  return std::string(id);
}

CancelFeed::CancelFeed(CancelFeedOptions options) : options_(std::move(options)) {
  if (!options_.bearer_token.empty())
    headers_.emplace_back("Authorization", "Bearer " + options_.bearer_token);
  thread_ = std::thread([this] { run(); });
}

CancelFeed::~CancelFeed() {
  stop();
}

void CancelFeed::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  live_until_ns_ = 0;
}

bool CancelFeed::live() const {
  return steady_ns(SteadyClock::now()) < live_until_ns_.load(std::memory_order_acquire);
}

CancelFeed::Knowledge CancelFeed::job(std::string_view job_id) const {
  if (!live()) return Knowledge::unknown;
  std::lock_guard lock(mutex_);
  return cancelled_.contains(job_id) ? Knowledge::cancelled : Knowledge::not_cancelled;
}

bool CancelFeed::pause(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, delay, [this] { return stopping_.load(); });
}

void CancelFeed::learn(const std::vector<std::string>& jobs) {
  const auto now = SteadyClock::now();
  std::lock_guard lock(mutex_);
  for (const std::string& job : jobs)
    if (cancelled_.insert(job).second) learned_.emplace_back(now, job);
  while (!learned_.empty() && (learned_.size() > options_.max_jobs ||
                               now - learned_.front().first > options_.retention)) {
    cancelled_.erase(learned_.front().second);
    learned_.pop_front();
  }
}

void CancelFeed::run() {
  std::int64_t after = -1;  // -1: from the oldest entry the gateway keeps
  bool caught_up = false;   // every page of the log was read once
  bool failing = false;     // the last request failed (logged once per outage)
  while (!stopping_) {
    const auto wait = caught_up ? options_.wait : std::chrono::milliseconds(0);
    const std::string url = fmt::format("{}/envelopes/cancellations?after={}&wait_ms={}",
                                        options_.base_url, after, wait.count());
    const auto sent = SteadyClock::now();
    // While this request is held, the feed stays live until the gateway is late to answer.
    if (caught_up && !failing) live_until_ns_ = steady_ns(sent + wait + options_.grace);
    http::Request request;
    request.method = "GET";
    request.url = url;
    request.headers = headers_;
    request.timeout = wait + options_.grace;
    request.connect_timeout = std::min(options_.grace, request.timeout);
    request.cancel = &stopping_;
    auto response = client_.perform(request);
    if (stopping_) break;
    std::string failure;
    std::chrono::milliseconds delay = options_.retry_delay;
    std::optional<FeedAnswer> answer;
    if (!response) {
      failure = response.error().message;
    } else if (response->status == 404 || response->status == 405 || response->status == 501) {
      failure = fmt::format("HTTP {} (a gateway without the cancellation feed)", response->status);
      delay = options_.retry_after_refusal;
    } else if (response->status >= 400 && response->status < 500 && response->status != 408 &&
               response->status != 429) {
      failure = fmt::format("HTTP {}: {}", response->status, excerpt(response->body));
      delay = options_.retry_after_refusal;
    } else if (response->status < 200 || response->status >= 300) {
      failure = fmt::format("HTTP {}: {}", response->status, excerpt(response->body));
    } else {
      std::string why;
      answer = read_feed_answer(response->body, why);
      if (!answer) failure = fmt::format("a rogue answer ({}): {}", why, excerpt(response->body));
    }
    if (!answer) {
      live_until_ns_ = 0;  // every message is checked with the gateway until the feed is back
      if (!failing)
        spdlog::warn(
            "gateway cancellation feed GET {} failed: {}; checking each message with the gateway "
            "(POST /envelopes/{{id}}/check) until the feed answers again (next try in {})",
            url, failure, fmt::format("{}ms", delay.count()));
      else
        spdlog::debug("gateway cancellation feed GET {} failed again: {}", url, failure);
      failing = true;
      if (!pause(delay)) break;
      continue;
    }
    if (failing)
      spdlog::info("gateway cancellation feed answers again: deciding cancellations from it");
    failing = false;
    learn(answer->cancelled);
    after = answer->next_after;
    if (!answer->more && !caught_up) {
      caught_up = true;
      spdlog::debug("gateway cancellation feed caught up at position {}", after);
    }
    // The answer came in time (a held request, or a page of the catch-up): live until the next
    // request's own deadline, set when it is sent right below.
    if (caught_up) live_until_ns_ = steady_ns(SteadyClock::now() + options_.grace);
  }
  live_until_ns_ = 0;
}

}  // namespace asya::sidecar
