#include "payload/hold_renewer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <vector>

#include "common/failpoint.hpp"

namespace asya::payload {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds renewal_interval(std::chrono::milliseconds grace) {
  // A quarter leaves three quarters of the grace period for a rewrite that is late (a slow or
  // unreachable store, a starved thread) before a sweep could see the hold older than a release;
  // a minute bounds what an end actor configured with a shorter grace than this sidecar risks;
  // 100 ms keeps a grace of (nearly) zero, which no deployment can use, from a write per ms.
  return std::clamp(grace / 4, std::chrono::milliseconds(100),
                    std::chrono::milliseconds(std::chrono::minutes(1)));
}

struct HoldRenewer::State {
  struct Entry {
    std::string sha256;
    std::string envelope_id;
    std::size_t renewals = 0;  // Renewal objects alive for this key
    Clock::time_point due;
  };

  State(PayloadStore& store, std::chrono::milliseconds interval)
      : store(store), interval(interval) {}

  PayloadStore& store;
  const std::chrono::milliseconds interval;
  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::map<std::string, Entry, std::less<>> entries;  // by hold key
  std::vector<std::string> releases;                  // hold tokens to release (release_later)
};

HoldRenewer::Renewal::Renewal(std::shared_ptr<State> state, std::string key)
    : state_(std::move(state)), key_(std::move(key)) {}

HoldRenewer::Renewal::~Renewal() {
  std::lock_guard lock(state_->mutex);
  auto it = state_->entries.find(key_);
  if (it != state_->entries.end() && --it->second.renewals == 0) state_->entries.erase(it);
}

HoldRenewer::HoldRenewer(PayloadStore& store, std::chrono::milliseconds interval)
    : state_(std::make_shared<State>(store, interval)), thread_([this] { run(); }) {}

HoldRenewer::~HoldRenewer() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  thread_.join();
}

std::unique_ptr<HoldRenewer::Renewal> HoldRenewer::keep(std::string_view sha256,
                                                        std::string_view envelope_id) {
  std::string key = hold_key(sha256, envelope_id);
  {
    std::lock_guard lock(state_->mutex);
    auto [it, added] = state_->entries.try_emplace(key);
    if (added) {
      it->second.sha256 = std::string(sha256);
      it->second.envelope_id = std::string(envelope_id);
      it->second.due = Clock::now() + state_->interval;
    }
    ++it->second.renewals;
  }
  return std::make_unique<Renewal>(state_, std::move(key));
}

std::size_t HoldRenewer::renew_due(Clock::time_point now) {
  struct Due {
    std::string key, sha256, envelope_id;
  };
  std::vector<Due> due;
  {
    std::lock_guard lock(state_->mutex);
    for (auto& [key, entry] : state_->entries)
      if (entry.due <= now) {
        due.push_back({key, entry.sha256, entry.envelope_id});
        entry.due = now + state_->interval;
      }
  }
  std::size_t renewed = 0;
  for (const Due& d : due) {
    Status st = hold(state_->store, d.sha256, d.envelope_id);
    if (st) {
      ++renewed;
      continue;
    }
    spdlog::warn(
        "cannot renew the hold of {} on payload {} (still being processed; tried again shortly): "
        "{}",
        d.envelope_id, d.sha256, st.message());
    std::lock_guard lock(state_->mutex);
    if (auto it = state_->entries.find(d.key); it != state_->entries.end())
      it->second.due = now + std::max(state_->interval / 10, std::chrono::milliseconds(1));
  }
  return renewed;
}

std::size_t HoldRenewer::renewing() const {
  std::lock_guard lock(state_->mutex);
  return state_->entries.size();
}

void HoldRenewer::release_later(std::string token) {
  {
    std::lock_guard lock(state_->mutex);
    state_->releases.push_back(std::move(token));
  }
  state_->wake.notify_all();
}

std::size_t HoldRenewer::release_pending() {
  std::vector<std::string> tokens;
  {
    std::lock_guard lock(state_->mutex);
    tokens.swap(state_->releases);
  }
  std::size_t released = 0;
  for (const std::string& token : tokens) {
    // Acked, its release not written yet: a crash here leaves the token's hold to the orphan age.
    failpoint("payload.token_release");
    if (Status st = release_token(state_->store, token); !st) {
      spdlog::warn(
          "cannot release payload hold token {} (its message was consumed; the hold ends after "
          "ASYA_PAYLOAD_ORPHAN_AGE instead): {}",
          token, st.message());
      continue;
    }
    ++released;
  }
  return released;
}

void HoldRenewer::run() {
  std::unique_lock lock(state_->mutex);
  while (!state_->stopping) {
    // The earliest rewrite due; with none, look again an interval later (a renewal added
    // meanwhile is due an interval after it was added, never earlier).
    Clock::time_point next = Clock::now() + state_->interval;
    for (const auto& [key, entry] : state_->entries) next = std::min(next, entry.due);
    if (state_->wake.wait_until(lock, next,
                                [this] { return state_->stopping || !state_->releases.empty(); }) &&
        state_->stopping)
      break;
    lock.unlock();
    release_pending();
    renew_due(Clock::now());
    lock.lock();
  }
  lock.unlock();
  release_pending();  // consumed before the stop: their releases are not left to the orphan age
}

}  // namespace asya::payload
