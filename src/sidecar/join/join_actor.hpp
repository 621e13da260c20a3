// The sidecar side of a join actor (PROTOCOL §4a). A branch message is stored in the JoinStore and
// acked without calling the runtime; when its group is decided (complete, or timed out), one
// replica claims it, builds the join input, calls the runtime once and routes the answer like any
// other (Router), then finishes the group. A replica that dies after claiming loses its lease and
// another one publishes the group again, with the same output ids. The lease is renewed right
// before the outputs are sent, and nothing is sent when it was lost meanwhile, so two live
// replicas never both publish a group. Each claim is an attempt: a group whose publishing keeps
// failing goes to error-end once its claims exceed ASYA_MAX_DELIVERIES (max_deliveries_exceeded,
// naming the group, the attempts and the last error), and a retryable runtime failure is retried
// while ASYA_RETRY_MAX_ATTEMPTS allows, counting claims as attempts.
//
// Threads: on_branch() and publish_decided() may be called from every worker thread at once (each
// with its own runtime connection); the store serialises what must be.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "envelope/envelope.hpp"
#include "sidecar/gateway_reporter.hpp"
#include "sidecar/join/join_config.hpp"
#include "sidecar/join/join_holds.hpp"
#include "sidecar/join/join_store.hpp"
#include "sidecar/router.hpp"
#include "transport/transport.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {
class PayloadReferences;
}

namespace asya::sidecar::join {

// What publish_decided() did, for the worker.
struct PublishReport {
  std::size_t published = 0;         // groups whose outputs were sent and finished
  bool runtime_unavailable = false;  // the worker should wait for its runtime again
  // The call waited for the runtime already and it was not ready again
  // (wire::CallResult::runtime_not_ready): the sidecar should stop (exit 4), not wait again.
  bool runtime_not_ready = false;
  bool runtime_unhealthy = false;  // runtime timeout: the sidecar should stop (exit 3)
};

// The body of POST /envelopes/{fanout_source_id(group)}/joined (PROTOCOL §7): {"group", "count",
// "children": the ids of branches 1..count-1, "failed", "missing"}.
std::string joined_report_body(const ClaimedGroup& group);

// Tells the gateway that a join consumed `group`'s branches (POST /envelopes/{in.id}/joined), so
// the job ends with the join's output: first waits (at most 0.5 s) until the running counts
// queued before reached the gateway, so none arrives after the join; then waits up to `budget`
// per try like a fan-out announcement, then falls back to a background report.
void announce_join(GatewayReporter& reporter, const envelope::Envelope& in,
                   const ClaimedGroup& group, std::chrono::milliseconds budget, int attempts);

class JoinActor {
 public:
  // Called once a group's outputs are decided, before they are sent (the gateway must learn of the
  // join before the output can reach an end actor). `in` is the join input without its payload.
  using BeforeSend = std::function<void(const envelope::Envelope& in, const ClaimedGroup& group)>;
  // Called after a branch `in` of `group` was stored (not for a duplicate), with the group's
  // stored and total branch counts: the running count for the gateway (join_progress.hpp).
  using OnStored = std::function<void(const envelope::Envelope& in, const std::string& group,
                                      std::size_t stored, std::size_t count)>;

  JoinActor(JoinConfig config, std::unique_ptr<JoinStore> store, const Router& router,
            transport::Transport& transport, std::chrono::milliseconds runtime_timeout,
            BeforeSend before_send = {}, OnStored on_stored = {},
            PayloadReferences* payloads = nullptr);

  // Opens the store config.store_url names (make_join_store: throws ConfigError) and the actor;
  // when `reporter()` gives a gateway reporter, the running count of a gateway job's group is
  // reported to it as branches are stored (JoinProgress's rule, join_progress.hpp), and a joined
  // group is announced to it (announce_join) before the join's outputs are sent. `payloads`: the
  // sidecar's payload references (ASYA_PAYLOAD_STORE; null without a store): branches that are
  // references reach the handler as their payloads (BranchReferences, join_input.hpp), large
  // outputs are stored by reference as a plain actor's, the objects of reference branches stay
  // held while their group waits (JoinHolds, join_holds.hpp), and once a group is finished (joined,
  // timed out or failed) its reference branches' ids (but branch 0's, the join output's own id)
  // are released.
  static std::unique_ptr<JoinActor> open(const JoinConfig& config, const Router& router,
                                         transport::Transport& transport,
                                         std::chrono::milliseconds runtime_timeout,
                                         std::function<GatewayReporter*()> reporter,
                                         PayloadReferences* payloads = nullptr);

  // Whether on_branch() takes a message that Router::before_runtime() stopped with `early`: a
  // branch delivered more than ASYA_MAX_DELIVERIES times is still stored (the runtime is not
  // called for a branch, and sending it to error-end would leave its group incomplete for good).
  static bool stores_despite(const Decision& early) {
    return early.failure == FailureCode::kMaxDeliveriesExceeded;
  }

  // Decides a branch message `in` that reached this join (before_runtime found nothing wrong, or
  // only what stores_despite() accepts): stores it and acks (no sends); a branch whose payload is
  // a reference into the payload store is recorded as held and its hold written before the ack
  // (a hold the payload store refuses nacks it, but once it was delivered more than
  // ASYA_MAX_DELIVERIES times it is acked and JoinHolds writes the hold later). Nacks with a
  // backoff when the store failed (error-end with max_deliveries_exceeded and the store's error
  // once the delivery count exceeds ASYA_MAX_DELIVERIES), or sends it to error-end with
  // join_group_missing when it carries no group data.
  Decision on_branch(const transport::Delivery& delivery, const envelope::Envelope& in);

  // Expires timed-out groups (at most once a second per process), then claims and publishes
  // decided groups until none is left or `stop.stopping()`. Sets `need_ready` when the runtime was
  // unavailable (the worker waits for it again; the connection was closed already).
  template <typename Stop>
  PublishReport publish_decided(wire::RuntimeClient& client, wire::FrameBuffer& scratch,
                                const Stop& stop, bool& need_ready) {
    PublishReport report = publish_decided(client, scratch, [&] { return stop.stopping(); });
    need_ready = need_ready || report.runtime_unavailable;
    return report;
  }
  PublishReport publish_decided(wire::RuntimeClient& client, wire::FrameBuffer& scratch,
                                const std::function<bool()>& stop);

  JoinStore& store() { return *store_; }

 private:
  // What one attempt at publishing a claimed group came to.
  struct Attempt {
    enum class Outcome {
      kPublished,  // outputs sent (or the group sent to error-end) and the group finished
      kRetry,      // not published: released, claimed again after a backoff
      kLeaseLost,  // another replica claimed it meanwhile: nothing sent, nothing to release
    };
    Outcome outcome = Outcome::kPublished;
    std::string error;  // kRetry: why, kept as the group's last error
  };
  Attempt publish(const ClaimedGroup& group, wire::RuntimeClient& client,
                  wire::FrameBuffer& scratch, PublishReport& report);
  // Renews the lease, sends the decision's outputs and finishes the group; once it is finished,
  // releases the ids of its reference branches (those the store recorded as held, and
  // `referenced`: those read as references, recorded or not).
  Attempt send_and_finish(const ClaimedGroup& group, const envelope::Envelope* in,
                          const Decision& decision,
                          const std::vector<std::size_t>& referenced = {});
  // false (and a log line) when `group` is no longer leased to this process.
  bool still_ours(const ClaimedGroup& group);
  // Releases the payload objects held by the ids of `group`'s branches `indexes` (index 0 is
  // skipped: its id is the join output's, released by the end actor).
  void release_branches(const ClaimedGroup& group, const std::vector<std::size_t>& indexes);
  // The indexes of `group`'s branches recorded as held (JoinStore::held_branches), ascending.
  Result<std::vector<std::size_t>> held_indexes(const std::string& group);
  std::chrono::milliseconds lease() const { return runtime_timeout_ + config_.claim_lease_extra; }

  JoinConfig config_;
  std::unique_ptr<JoinStore> store_;
  const Router& router_;
  transport::Transport& transport_;
  std::chrono::milliseconds runtime_timeout_;
  BeforeSend before_send_;
  OnStored on_stored_;
  PayloadReferences* payloads_;
  std::string owner_;  // this process's name; each claim's owner is owner_.<claim number>
  std::atomic<std::uint64_t> claims_{0};
  std::atomic<std::int64_t> last_expire_ms_{0};
  std::atomic<bool> decided_{false};  // this process decided a group since the last claim
  // Rewrites the holds of waiting reference branches (with a payload store); last, so it stops
  // before the store it reads is destroyed.
  std::unique_ptr<JoinHolds> holds_;
};

}  // namespace asya::sidecar::join
