#include "k8s/operator/controller.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

namespace asya::k8s::op {
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string str_at(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string());
}

// "namespace/name" of an object.
std::string key_of(const json::object& object) {
  auto it = object.find("metadata");
  if (it == object.end() || !it->value().is_object()) return {};
  const auto& meta = it->value().as_object();
  return str_at(meta, "namespace") + "/" + str_at(meta, "name");
}

std::string resource_version(const json::object& object) {
  auto it = object.find("metadata");
  if (it == object.end() || !it->value().is_object()) return {};
  return str_at(it->value().as_object(), "resourceVersion");
}

std::int64_t generation(const json::object& object) {
  auto it = object.find("metadata");
  if (it == object.end() || !it->value().is_object()) return 0;
  auto g = it->value().as_object().find("generation");
  return g != it->value().as_object().end() && g->value().is_int64() ? g->value().as_int64() : 0;
}

bool deleting(const json::object& object) {
  auto it = object.find("metadata");
  return it != object.end() && it->value().is_object() &&
         it->value().as_object().contains("deletionTimestamp");
}

}  // namespace

struct Controller::State {
  std::mutex mutex;
  std::condition_variable wake;
  std::map<std::string, json::object> cache;     // latest object per key
  std::map<std::string, Clock::time_point> due;  // queued keys and when to reconcile them
  std::map<std::string, int> failures;           // consecutive retries per key

  void enqueue(const std::string& key, Clock::time_point when) {
    auto it = due.find(key);
    if (it == due.end() || when < it->second) due[key] = when;
    wake.notify_all();
  }
};

Controller::Controller(const KubeClient& kube, Reconciler& reconciler, ControllerOptions options)
    : kube_(kube), reconciler_(reconciler), options_(std::move(options)) {}

void Controller::run(const std::atomic<bool>& stop) {
  State state;
  const std::string collection = options_.namespace_name.empty()
                                     ? fmt::format("/apis/{}/asyncactors", kGroupVersion)
                                     : fmt::format("/apis/{}/namespaces/{}/asyncactors",
                                                   kGroupVersion, options_.namespace_name);
  const std::string scope = options_.namespace_name.empty()
                                ? std::string("all namespaces")
                                : "namespace " + options_.namespace_name;

  auto sleep_for = [&](std::chrono::milliseconds duration) {
    std::unique_lock lock(state.mutex);
    state.wake.wait_for(lock, duration, [&] { return stop.load(); });
  };

  std::thread watcher([&] {
    std::string version;  // empty: list first
    std::chrono::milliseconds backoff(1000);
    const std::chrono::milliseconds max_backoff(30000);
    auto failed = [&](const std::string& message) {
      spdlog::warn("watch of AsyncActors in {}: {}; retrying in {} ms", scope, message,
                   backoff.count());
      sleep_for(backoff);
      backoff = std::min(backoff * 2, max_backoff);
    };
    while (!stop.load()) {
      if (version.empty()) {
        auto listed = kube_.request("GET", collection);
        if (!listed) {
          failed(listed.error().message);
          continue;
        }
        if (listed->status != 200) {
          failed(describe_failure("GET", collection, *listed));
          continue;
        }
        std::error_code ec;
        auto body = json::parse(listed->body, ec);
        if (ec || !body.is_object() || !body.as_object().contains("items") ||
            !body.as_object().at("items").is_array()) {
          failed("GET " + collection + ": the response is not an AsyncActorList");
          continue;
        }
        const auto& list = body.as_object();
        version = resource_version(list);
        std::lock_guard lock(state.mutex);
        std::map<std::string, json::object> fresh;
        for (const auto& item : list.at("items").as_array()) {
          if (!item.is_object()) continue;
          fresh[key_of(item.as_object())] = item.as_object();
        }
        // Keys gone from the list were deleted while we were not watching.
        for (auto it = state.due.begin(); it != state.due.end();) {
          it = fresh.count(it->first) ? std::next(it) : state.due.erase(it);
        }
        state.cache = std::move(fresh);
        for (const auto& [key, object] : state.cache) state.enqueue(key, Clock::now());
        spdlog::info("listed {} AsyncActor(s) in {} at resourceVersion {}", state.cache.size(),
                     scope, version);
      }

      const std::string path =
          fmt::format("{}?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}",
                      collection, url_encode(version), options_.watch_timeout.count());
      bool gone = false;
      std::size_t events = 0;
      const auto started = Clock::now();
      auto on_line = [&](std::string_view line) {
        std::error_code ec;
        auto parsed = json::parse(line, ec);
        if (ec || !parsed.is_object()) {
          spdlog::warn("watch: ignoring a line that is not a JSON event: {}",
                       std::string(line.substr(0, 200)));
          return true;
        }
        const auto& event = parsed.as_object();
        const std::string type = str_at(event, "type");
        auto oit = event.find("object");
        if (oit == event.end() || !oit->value().is_object()) return true;
        const auto& object = oit->value().as_object();
        ++events;
        if (type == "ERROR") {
          // A Status object. 410 Gone: our resourceVersion expired. Any other error leaves the
          // position unknown too, so both list again.
          auto code = object.find("code");
          spdlog::info("watch: the server sent ERROR (code {}): {}; listing again",
                       code != object.end() ? json::serialize(code->value()) : "none",
                       str_at(object, "message"));
          gone = true;
          return false;
        }
        const std::string rv = resource_version(object);
        if (!rv.empty()) version = rv;
        if (type == "BOOKMARK") return true;
        const std::string key = key_of(object);
        std::lock_guard lock(state.mutex);
        if (type == "DELETED") {
          state.cache.erase(key);
          state.due.erase(key);
          state.failures.erase(key);
          spdlog::info("{}: AsyncActor deleted", key);
        } else if (type == "ADDED" || type == "MODIFIED") {
          // While a key waits out a retry backoff, a change that is not to the spec (our own
          // status write, mostly) does not cut the backoff short.
          auto cached = state.cache.find(key);
          const bool backing_off =
              state.failures.count(key) && state.due.count(key) && cached != state.cache.end() &&
              generation(cached->second) == generation(object) && !deleting(object);
          state.cache[key] = object;
          if (!backing_off) state.enqueue(key, Clock::now());
        }
        return true;
      };
      auto streamed =
          kube_.stream(path, on_line, stop, options_.watch_timeout + std::chrono::seconds(30));
      if (stop.load()) break;
      if (!streamed) {
        failed(streamed.error().message);
        continue;
      }
      if (streamed->status == 410) gone = true;
      if (gone) {
        version.clear();
        backoff = std::chrono::milliseconds(1000);
        continue;
      }
      if (streamed->status != 200) {
        failed(describe_failure("GET", path, *streamed));
        if (streamed->status >= 400 && streamed->status < 500) version.clear();
        continue;
      }
      // The server ended the watch (timeoutSeconds or a restart): resume from `version`.
      // A stream that closes at once without events backs off, so a broken server cannot spin us.
      if (events == 0 && Clock::now() - started < std::chrono::seconds(1)) {
        failed("the server closed the watch at once");
      } else {
        spdlog::debug("watch closed by the server after {} event(s); resuming at {}", events,
                      version);
        backoff = std::chrono::milliseconds(1000);
      }
    }
  });

  auto next_resync = Clock::now() + options_.resync_period;
  while (!stop.load()) {
    std::string key;
    json::object object;
    {
      std::unique_lock lock(state.mutex);
      const auto now = Clock::now();
      if (options_.resync_period.count() > 0 && now >= next_resync) {
        for (const auto& [k, o] : state.cache) state.enqueue(k, now);
        next_resync = now + options_.resync_period;
      }
      auto earliest = state.due.end();
      for (auto it = state.due.begin(); it != state.due.end(); ++it) {
        if (earliest == state.due.end() || it->second < earliest->second) earliest = it;
      }
      if (earliest == state.due.end() || earliest->second > now) {
        auto until = now + std::chrono::seconds(1);
        if (earliest != state.due.end()) until = std::min(until, earliest->second);
        state.wake.wait_until(lock, until);
        continue;
      }
      key = earliest->first;
      state.due.erase(earliest);
      auto cached = state.cache.find(key);
      if (cached == state.cache.end()) continue;
      object = cached->second;
    }
    ReconcileResult result = reconciler_.reconcile(object);
    std::lock_guard lock(state.mutex);
    if (result.outcome == Outcome::kRetry) {
      const int failures = ++state.failures[key];
      const auto delay = std::chrono::milliseconds(1000) * (1 << std::min(failures - 1, 9));
      const auto capped = std::min<std::chrono::milliseconds>(delay, std::chrono::minutes(5));
      spdlog::warn("{}: {}; retrying in {} ms", key, result.summary, capped.count());
      auto cached = state.cache.find(key);
      if (cached != state.cache.end()) {
        // An event that arrived meanwhile without a spec change (our own status write) must not
        // make the retry immediate.
        if (generation(cached->second) == generation(object) && !deleting(cached->second)) {
          state.due[key] = Clock::now() + capped;
        } else {
          state.enqueue(key, Clock::now() + capped);
        }
      }
    } else {
      state.failures.erase(key);
      spdlog::debug("{}: {}", key, result.summary);
    }
  }
  state.wake.notify_all();
  watcher.join();
}

}  // namespace asya::k8s::op
