// Keeps the holds of the inputs a process is working on fresh (docs/protocol.md §10 "Lifetime").
//
// A hold holds/<id-hash>/<sha256> is keyed by envelope id (lifetime.hpp), so duplicates of one
// envelope processed at once (at-least-once delivery: a lease that expired, a RabbitMQ redelivery
// after a dropped connection, a crash after publish and before ack upstream) share it. When one
// copy ends, its release covers that hold; once the grace period passed, sweep() would delete the
// object while another copy is still in flight (its pass-through then forwards a reference to
// nothing, its streamed read sees the file vanish). So a sidecar rewrites the hold of every input
// it is processing every `interval` (payload::renewal_interval: a quarter of ASYA_PAYLOAD_GRACE,
// at most a minute) until that input is settled: a hold in flight is then never older than
// `interval`, so it stays newer than any release written more than `interval` ago, and sweep()
// (which needs a release older than the grace period and newer than every hold) keeps the object.
// The key and the record are unchanged, so holds written by older sidecars, the gateway and
// `asya send` mean what they meant, and an older sweeper understands renewed holds.
//
// It also writes, on the same thread, the releases of the hold tokens of the messages this process
// consumed (release_later): a token's release is written after its message was acked, off the
// path of the next message; one that a crash loses leaves the token's hold to the orphan age.
//
// Crashes: a renewal dies with its process. The hold is then an ordinary hold again, with the time
// of its last renewal: deleted after a newer release plus the grace period (the copy delivered
// again ends and releases again) or after the orphan age.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "payload/lifetime.hpp"
#include "payload/payload_store.hpp"

namespace asya::payload {

// How often a hold in flight is rewritten for a sweep policy of grace `grace`: a quarter of it,
// from 100 ms to a minute.
std::chrono::milliseconds renewal_interval(std::chrono::milliseconds grace);

class HoldRenewer {
 public:
  // Rewrites due holds on its own thread, which it starts. `store` must outlive the renewer.
  HoldRenewer(PayloadStore& store, std::chrono::milliseconds interval);
  // Stops and joins the thread (a rewrite under way finishes first, and the token releases still
  // waiting are written). Renewals still alive renew nothing more and may be destroyed later.
  ~HoldRenewer();
  HoldRenewer(const HoldRenewer&) = delete;
  HoldRenewer& operator=(const HoldRenewer&) = delete;

  struct State;  // shared with the thread and the renewals

  // While alive, the hold of (sha256, envelope_id) is rewritten every interval. Not copyable;
  // destroy it once the input is settled (its outputs published, the input acked or nacked).
  class Renewal {
   public:
    Renewal(std::shared_ptr<State> state, std::string key);
    ~Renewal();
    Renewal(const Renewal&) = delete;
    Renewal& operator=(const Renewal&) = delete;

   private:
    std::shared_ptr<State> state_;
    std::string key_;
  };

  // Renews the hold of `envelope_id` on `sha256`, which the caller has just written (hold()), from
  // one interval on. Several renewals of one hold (copies of one envelope in this process) share
  // its rewrites; it is renewed until the last one is destroyed. Thread-safe, does not block on
  // the store.
  std::unique_ptr<Renewal> keep(std::string_view sha256, std::string_view envelope_id);

  // Rewrites the holds due at `now` (the thread calls it; a test may too) and returns how many
  // were rewritten. A failed rewrite is logged and tried again a tenth of an interval later.
  // Blocking (the store's writes); thread-safe.
  std::size_t renew_due(std::chrono::steady_clock::time_point now);

  // Holds being renewed (distinct keys). Thread-safe.
  std::size_t renewing() const;

  // Writes the release of hold token `token` (payload::release_token) soon, on the renewer's
  // thread: the message that carried it was consumed. A failed write is logged, not retried (the
  // token's hold then ends after the orphan age). Thread-safe, does not block on the store.
  void release_later(std::string token);

  // Writes the token releases waiting (the thread calls it; a test may too) and returns how many
  // were written. Before each, the crash point payload.token_release (common/failpoint.hpp).
  // Blocking (the store's writes); thread-safe.
  std::size_t release_pending();

 private:
  void run();

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace asya::payload
