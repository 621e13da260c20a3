#include "sidecar/join/join_actor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "common/random_id.hpp"
#include "envelope/build.hpp"
#include "envelope/fanout.hpp"
#include "payload/lifetime.hpp"
#include "sidecar/join/join_input.hpp"
#include "sidecar/join/join_progress.hpp"
#include "sidecar/payload_ref.hpp"

namespace asya::sidecar::join {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string indexes_text(const std::vector<std::size_t>& indexes) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(indexes.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + std::to_string(indexes[i]);
  if (shown < indexes.size()) out += fmt::format(" and {} more", indexes.size() - shown);
  return out;
}

constexpr std::chrono::milliseconds kJoinFlushBudget{500};

// A runtime answer that is an empty JSON array (whitespace allowed).
bool is_empty_array(std::string_view answer) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t i = 0;
  while (i < answer.size() && space(answer[i])) ++i;
  if (i == answer.size() || answer[i++] != '[') return false;
  while (i < answer.size() && space(answer[i])) ++i;
  if (i == answer.size() || answer[i++] != ']') return false;
  while (i < answer.size() && space(answer[i])) ++i;
  return i == answer.size();
}

// The route position of the fan-out of `group` ("<id>@<hop>").
std::size_t group_hop(const std::string& group) {
  if (auto at = group.rfind('@'); at != std::string::npos)
    return static_cast<std::size_t>(std::strtoull(group.c_str() + at + 1, nullptr, 10));
  return 0;
}

}  // namespace

std::string joined_report_body(const ClaimedGroup& group) {
  const std::string source = envelope::fanout_source_id(group.group);
  const std::size_t hop = group_hop(group.group);
  std::string out = "{\"group\":" + envelope::json_string(group.group);
  out += fmt::format(",\"count\":{},\"failed\":{},\"missing\":{},\"children\":[", group.count,
                     group.failed.size(), group.missing.size());
  for (std::size_t i = 1; i < group.count; ++i) {
    if (i > 1) out.push_back(',');
    out += envelope::json_string(envelope::fanout_child_id(source, hop, i));
  }
  out += "]}";
  return out;
}

void announce_join(GatewayReporter& reporter, const envelope::Envelope& in,
                   const ClaimedGroup& group, std::chrono::milliseconds budget, int attempts) {
  std::string body = joined_report_body(group);
  const std::string path = envelope_path(in.id, "joined");
  // The running counts queued before go first, so none arrives after the join; bounded, so a
  // hung gateway delays a group's outputs by at most this on top of the announcement's budget.
  const auto flush_budget = std::min<std::chrono::milliseconds>(budget, kJoinFlushBudget);
  if (!reporter.flush(flush_budget))
    spdlog::debug("join: earlier gateway reports of group {} still queued after {}", group.group,
                  format_duration(flush_budget));
  if (reporter.post_now(path, body, budget, attempts)) return;
  spdlog::warn(
      "the gateway did not accept the join of group {} within {}: reporting it in the "
      "background",
      group.group, format_duration(budget));
  reporter.post(path, std::move(body));
}

JoinActor::JoinActor(JoinConfig config, std::unique_ptr<JoinStore> store, const Router& router,
                     transport::Transport& transport, std::chrono::milliseconds runtime_timeout,
                     BeforeSend before_send, OnStored on_stored, PayloadReferences* payloads)
    : config_(std::move(config)),
      store_(std::move(store)),
      router_(router),
      transport_(transport),
      runtime_timeout_(runtime_timeout),
      before_send_(std::move(before_send)),
      on_stored_(std::move(on_stored)),
      payloads_(payloads),
      owner_(random_hex(16)) {
  if (payloads_)
    holds_ = std::make_unique<JoinHolds>(*store_, payloads_->store(), router_.options().actor,
                                         payloads_->renewal_interval());
}

std::unique_ptr<JoinActor> JoinActor::open(const JoinConfig& config, const Router& router,
                                           transport::Transport& transport,
                                           std::chrono::milliseconds runtime_timeout,
                                           std::function<GatewayReporter*()> reporter,
                                           PayloadReferences* payloads) {
  JoinStoreOptions options;
  options.url = config.store_url;
  options.environment = process_environment();
  auto store = make_join_store(options);
  spdlog::info("join actor: store {} ({}), timeout {}, on timeout {}", config.store_url,
               store->name(), format_duration(config.timeout),
               config.on_timeout == OnTimeout::kError ? "error" : "partial");
  // As a fan-out announcement (sidecar.cpp): at most 2 s per try, 2 tries.
  BeforeSend before_send = [reporter](const envelope::Envelope& in, const ClaimedGroup& group) {
    GatewayReporter* r = reporter ? reporter() : nullptr;
    if (r && tracked_by_gateway(in.route_metadata_raw))
      announce_join(*r, in, group, std::chrono::seconds(2), 2);
  };
  // The running count "joined k of n" (PROTOCOL §7), reported against the envelope that fanned
  // out, at the join's index on the route.
  auto progress = std::make_shared<JoinProgress>();
  OnStored on_stored = [reporter, progress](const envelope::Envelope& in, const std::string& group,
                                            std::size_t stored, std::size_t count) {
    GatewayReporter* r = reporter ? reporter() : nullptr;
    if (!r || !tracked_by_gateway(in.route_metadata_raw)) return;
    progress->on_stored(group, stored, count, JoinProgress::Clock::now(), [&] {
      const std::string source = envelope::fanout_source_id(group);
      r->post(envelope_path(source, "progress"),
              join_progress_body(in.actors, in.current, source, stored, count));
    });
  };
  return std::make_unique<JoinActor>(config, std::move(store), router, transport, runtime_timeout,
                                     std::move(before_send), std::move(on_stored), payloads);
}

Decision JoinActor::on_branch(const transport::Delivery& delivery, const envelope::Envelope& in) {
  auto frames =
      envelope::may_carry_fanout(in.headers_raw)
          ? envelope::fanout_frames(in.headers_raw)
          : Result<std::vector<envelope::FanoutFrame>>(std::vector<envelope::FanoutFrame>{});
  if (!frames || frames->empty()) {
    return router_.error_end(
        in, FailureCode::kJoinGroupMissing,
        fmt::format("actor {} is a join (spec.join) but the message carries no fan-out group data "
                    "({}): only the branches of a fan-out (a handler that returned a list of two "
                    "or more payloads earlier on the route) can be joined",
                    router_.options().actor,
                    frames ? std::string("no asya-fanout header") : frames.error().message));
  }
  const envelope::FanoutFrame& frame = frames->back();
  BranchIn branch;
  branch.actor = router_.options().actor;
  branch.group = frame.group;
  branch.index = frame.index;
  branch.count = frame.count;
  branch.failed = frame.failed;
  branch.payload = in.payload_raw;
  const std::string head = join_head(in, *frames);
  branch.head = head;
  branch.timeout = config_.timeout;
  // A reference into the payload store: recorded, so its object stays held while it waits.
  std::optional<payload::Reference> reference;
  if (payloads_)
    if (auto parsed = payload::parse_reference(in.payload_raw);
        parsed && *parsed && payload::key_in_store(**parsed, payloads_->store().url()))
      reference = **parsed;
  if (reference) branch.held_sha256 = reference->sha256;
  auto put = store_->put_branch(branch);
  Decision d;
  if (!put) {
    const int limit = router_.options().max_deliveries;
    if (delivery.delivery_count > static_cast<std::uint32_t>(limit))
      return router_.error_end(
          in, FailureCode::kMaxDeliveriesExceeded,
          fmt::format("delivered {} times, more than ASYA_MAX_DELIVERIES={}, and the join store "
                      "cannot store branch {} of group {}: {}",
                      delivery.delivery_count, limit, frame.index, frame.group,
                      put.error().message));
    spdlog::warn(
        "join store: cannot store branch {} of group {}: {}; the message is delivered "
        "again",
        frame.index, frame.group, put.error().message);
    d.then = Then::kNack;
    d.nack_delay = router_.backoff(static_cast<int>(delivery.delivery_count));
    d.status = ProcessedStatus::kRequeued;
    return d;
  }
  spdlog::debug("join: branch {} of group {}: {} ({} of {} stored)", frame.index, frame.group,
                put->outcome == PutOutcome::kDuplicate       ? "duplicate"
                : put->outcome == PutOutcome::kAlreadyJoined ? "group already joined"
                                                             : "stored",
                put->stored, put->count);
  // Stored: counted and publishable, whatever happens to its hold below.
  if (put->outcome == PutOutcome::kCompleted) decided_ = true;
  if (on_stored_ && (put->outcome == PutOutcome::kStored || put->outcome == PutOutcome::kCompleted))
    on_stored_(in, frame.group, put->stored, put->count);
  // Held again on receipt, as any sidecar holds a reference it receives (PROTOCOL §10), before
  // the ack: from now on JoinHolds rewrites it until the group is finished. A branch of a group
  // decided already is not (its group has it held already, or never reads it).
  if (reference && put->outcome != PutOutcome::kAlreadyJoined) {
    const std::string id = branch_id(frame.group, frame.index);
    if (Status held = payload::hold(payloads_->store(), reference->sha256, id); !held) {
      const int limit = router_.options().max_deliveries;
      if (delivery.delivery_count <= static_cast<std::uint32_t>(limit)) {
        spdlog::warn(
            "join: cannot hold payload {} of branch {} of group {}: {}; the message is delivered "
            "again",
            reference->describe(), frame.index, frame.group, held.message());
        d.then = Then::kNack;
        d.nack_delay = router_.backoff(static_cast<int>(delivery.delivery_count));
        d.status = ProcessedStatus::kRequeued;
        return d;
      }
      spdlog::warn(
          "join: cannot hold payload {} of branch {} of group {}: {}; stored anyway after {} "
          "deliveries, its hold is written by the next renewal",
          reference->describe(), frame.index, frame.group, held.message(), delivery.delivery_count);
    }
  }
  // A late branch (its group was decided without it) ends here, as a joined one does.
  if (reference && put->outcome == PutOutcome::kAlreadyJoined && put->unused && frame.index != 0)
    if (Status st = payloads_->release(branch_id(frame.group, frame.index)); !st)
      spdlog::warn(
          "join: cannot release the payload of late branch {} of group {}: {}; it is deleted "
          "after ASYA_PAYLOAD_ORPHAN_AGE instead",
          frame.index, frame.group, st.message());
  d.status = ProcessedStatus::kSuccess;
  return d;  // no sends: the branch waits in the store; ack
}

PublishReport JoinActor::publish_decided(wire::RuntimeClient& client, wire::FrameBuffer& scratch,
                                         const std::function<bool()>& stop) {
  PublishReport report;
  const std::int64_t now = now_ms();
  // Claiming takes the store's write lock: done at once after this process decided a group, and
  // otherwise once a second (groups decided by a replica that died, or timed out).
  const bool decided_here = decided_.exchange(false);
  std::int64_t last = last_expire_ms_.load();
  const bool scan = now - last >= 1000 && last_expire_ms_.compare_exchange_strong(last, now);
  if (!decided_here && !scan) return report;
  if (scan) {
    if (auto expired = store_->expire(std::chrono::system_clock::now()); !expired)
      spdlog::warn("join store: cannot expire timed-out groups: {}", expired.error().message);
    else if (*expired > 0)
      spdlog::info("join: {} group(s) timed out after ASYA_JOIN_TIMEOUT={}", *expired,
                   format_duration(config_.timeout));
  }
  while (!stop()) {
    // One owner name per claim, not per process: a worker whose lease ran out must not mistake
    // another worker's claim of the same group for its own.
    const std::string owner = fmt::format("{}.{}", owner_, claims_.fetch_add(1) + 1);
    auto claimed = store_->claim(router_.options().actor, owner, lease());
    if (!claimed) {
      spdlog::warn("join store: cannot claim a decided group: {}", claimed.error().message);
      break;
    }
    if (!*claimed) break;
    const ClaimedGroup& group = **claimed;
    Attempt attempt = publish(group, client, scratch, report);
    if (attempt.outcome == Attempt::Outcome::kLeaseLost) break;
    if (attempt.outcome == Attempt::Outcome::kRetry) {
      // Claimed again after a backoff (by any replica), not only when the lease runs out; the
      // next claim counts one more attempt and sees why this one failed.
      const auto retry_after = router_.backoff(static_cast<int>(group.attempts));
      spdlog::warn(
          "join: group {}: attempt {} failed: {}; claimed again in {} (at most "
          "ASYA_MAX_DELIVERIES={} claims)",
          group.group, group.attempts, attempt.error, format_duration(retry_after),
          router_.options().max_deliveries);
      if (auto released = store_->release(group.group, group.owner, retry_after, attempt.error);
          !released)
        spdlog::warn("join store: cannot release group {}: {}", group.group,
                     released.error().message);
      break;
    }
    ++report.published;
  }
  return report;
}

bool JoinActor::still_ours(const ClaimedGroup& group) {
  auto renewed = store_->renew(group.group, group.owner, lease());
  if (renewed && *renewed) return true;
  if (!renewed)
    spdlog::warn("join store: cannot renew the lease of group {}: {}; not publishing it now",
                 group.group, renewed.error().message);
  else
    spdlog::warn(
        "join: group {}: its lease expired and another replica claimed it; that replica "
        "publishes it",
        group.group);
  return false;
}

void JoinActor::release_branches(const ClaimedGroup& group,
                                 const std::vector<std::size_t>& indexes) {
  // Branch i > 0 travelled as fanout_child_id(source, hop, i) (the ids of output 0 of the actors
  // between the fan-out and the join stay the same); its holds end here, as an end actor's do.
  for (std::size_t index : indexes) {
    if (index == 0) continue;
    const std::string id = branch_id(group.group, index);
    if (Status st = payloads_->release(id); !st)
      spdlog::warn(
          "join: group {}: cannot release the payload of branch {} ({}): {}; it is "
          "deleted after ASYA_PAYLOAD_ORPHAN_AGE instead",
          group.group, index, id, st.message());
  }
}

Result<std::vector<std::size_t>> JoinActor::held_indexes(const std::string& group) {
  std::vector<std::size_t> out;
  std::optional<HeldBranch> after;
  for (;;) {
    auto page =
        store_->held_branches(router_.options().actor, group, after ? &*after : nullptr, 1024);
    if (!page) return page.error();
    for (const HeldBranch& branch : *page) out.push_back(branch.index);
    if (page->size() < 1024) return out;
    after = std::move(page->back());
  }
}

JoinActor::Attempt JoinActor::send_and_finish(const ClaimedGroup& group,
                                              const envelope::Envelope* in,
                                              const Decision& decision,
                                              const std::vector<std::size_t>& referenced) {
  if (in && before_send_) before_send_(*in, group);
  // The lease is renewed right before sending: a replica whose lease ran out meanwhile (a slow
  // runtime call, a gateway that kept it waiting) sends nothing, so the replica that claimed the
  // group after it is the only one to publish it.
  if (!still_ours(group)) return {Attempt::Outcome::kLeaseLost, {}};
  for (const Outgoing& out : decision.sends) {
    Status st = transport_.send(out.queue, out.body, out.delay);
    if (st) continue;
    // An output the transport refuses as too large would be refused at every claim: the group
    // ends at error-end with message_too_large at once, as a plain actor's input does (the error
    // envelope is made to fit).
    if (in && out.type != MessageType::kErrorEnd &&
        st.message().starts_with(label(FailureCode::kMessageTooLarge)))
      return send_and_finish(group, in,
                             router_.error_end(*in, FailureCode::kMessageTooLarge,
                                               fmt::format("join group {}: the output to {}: {}",
                                                           group.group, out.queue, st.message())),
                             referenced);
    return {Attempt::Outcome::kRetry,
            fmt::format("send to {} failed: {}", out.queue, st.message())};
  }
  // The branches to release once the group is finished (finish() forgets them).
  std::vector<std::size_t> release = referenced;
  if (payloads_) {
    auto held = held_indexes(group.group);
    if (held)
      release.insert(release.end(), held->begin(), held->end());
    else
      spdlog::warn(
          "join store: cannot list the held branches of group {}: {}; their payloads are "
          "deleted after ASYA_PAYLOAD_ORPHAN_AGE instead",
          group.group, held.error().message);
    std::sort(release.begin(), release.end());
    release.erase(std::unique(release.begin(), release.end()), release.end());
  }
  auto finished = store_->finish(group.group, group.owner);
  if (finished && *finished && payloads_) release_branches(group, release);
  if (!finished)
    spdlog::warn(
        "join store: cannot finish group {}: {}; it may be published again, with the same "
        "ids",
        group.group, finished.error().message);
  else if (!*finished)
    spdlog::error(
        "join: group {} was claimed by another replica while its outputs were sent (the lease of "
        "{} ran out during the send): it is published again, with the same ids",
        group.group, format_duration(lease()));
  return {Attempt::Outcome::kPublished, {}};
}

JoinActor::Attempt JoinActor::publish(const ClaimedGroup& group, wire::RuntimeClient& client,
                                      wire::FrameBuffer& scratch, PublishReport& report) {
  const RouterOptions& options = router_.options();
  auto head = parse_head(group.head);
  if (!head) {
    // The head was written by a sidecar from a parsed envelope, so this is not expected; trying
    // again cannot help, so the stored text goes to error-end as an unparseable message would.
    const std::string why = fmt::format("join group {}: {}", group.group, head.error().message);
    spdlog::error("join: {}", why);
    Decision d;
    Outgoing out;
    out.queue = options.error_end_queue;
    out.body = envelope::wrap_unparseable(group.head, options.actor, why);
    out.type = MessageType::kErrorEnd;
    d.sends.push_back(std::move(out));
    return send_and_finish(group, nullptr, d);
  }
  // Each claim is one attempt (PROTOCOL §4a): ASYA_RETRY_MAX_ATTEMPTS counts claims, so the input
  // the router decides with carries the claim's number as its asya-attempt.
  std::string numbered;
  envelope::Envelope attempt_in;
  const envelope::Envelope* in = &head->envelope;
  if (group.attempts > 1) {
    numbered = envelope::with_attempt(*in, static_cast<int>(group.attempts));
    if (auto parsed = envelope::parse(numbered)) {
      attempt_in = std::move(*parsed);
      in = &attempt_in;
    }
  }
  Decision decision;
  std::optional<BranchReferences> references;
  if (group.attempts > static_cast<std::size_t>(options.max_deliveries)) {
    decision = router_.error_end(
        *in, FailureCode::kMaxDeliveriesExceeded,
        fmt::format("join group {} of {} branches was claimed {} times without being published, "
                    "more than ASYA_MAX_DELIVERIES={}; last error: {}",
                    group.group, group.count, group.attempts, options.max_deliveries,
                    group.last_error.empty()
                        ? std::string("none recorded (a replica stopped while publishing it)")
                        : group.last_error));
  } else if (group.reason == DecidedBecause::kTimeout && config_.on_timeout == OnTimeout::kError) {
    decision = router_.error_end(
        *in, FailureCode::kJoinTimeout,
        fmt::format("join group {}: {} of {} branches arrived within ASYA_JOIN_TIMEOUT={}; "
                    "missing indexes: {}",
                    group.group, group.count - group.missing.size(), group.count,
                    format_duration(config_.timeout), indexes_text(group.missing)));
  } else {
    // Streamed to the runtime while the branches are read from the store (PROTOCOL §4a): the
    // sidecar holds one branch at a time, never the group; a branch that is a payload reference
    // is streamed as its object's bytes (PROTOCOL §10).
    if (payloads_) references.emplace(payloads_->store(), options.actor);
    BranchReferences* refs = references ? &*references : nullptr;
    auto request = join_input_request(*store_, group, refs);
    if (!request)
      return {Attempt::Outcome::kRetry,
              fmt::format("cannot read its branches: {}", request.error().message)};
    transport::Delivery delivery;
    wire::CallResult call = client.call(*request, scratch, runtime_timeout_);
    if (call.status == wire::CallStatus::kOk && is_empty_array(scratch.view())) {
      // `[]`: the input itself ends the pipeline (section 4), so only now is it built whole.
      auto whole = build_join_input(*store_, group, refs);
      if (!whole)
        return {Attempt::Outcome::kRetry,
                fmt::format("cannot read its branches: {}", whole.error().message)};
      delivery.body = std::move(*whole);
    }
    // Large outputs go on by reference, as a plain actor's (no input reference: the join input is
    // never stored whole).
    std::optional<PayloadReferences::Outputs> offload;
    if (payloads_) offload.emplace(*payloads_, in->id, std::nullopt);
    decision = router_.after_runtime(*in, delivery, call, scratch.view(), /*response_padded=*/true,
                                     offload ? &*offload : nullptr);
    if (scratch.capacity() > (4u << 20)) scratch.release();
    if (decision.wait_for_runtime) report.runtime_unavailable = true;
    if (decision.runtime_not_ready) report.runtime_not_ready = true;
    if (decision.runtime_unhealthy) report.runtime_unhealthy = true;
    if (call.status != wire::CallStatus::kOk ||
        decision.failure == FailureCode::kRuntimeProtocolError)
      client.disconnect();
    if (decision.then == Then::kNack || decision.retried)
      return {Attempt::Outcome::kRetry,
              fmt::format("runtime call failed ({}): {}", decision.failure.label(),
                          decision.failure_message)};
  }
  Attempt sent = send_and_finish(
      group, in, decision, references ? references->references() : std::vector<std::size_t>{});
  if (sent.outcome == Attempt::Outcome::kPublished)
    spdlog::info("join: group {} of {} branches {} ({} failed, {} missing, attempt {})",
                 group.group, group.count,
                 decision.failure ? fmt::format("failed ({})", decision.failure.label())
                 : group.reason == DecidedBecause::kComplete ? std::string("joined")
                                                             : std::string("timed out"),
                 group.failed.size(), group.missing.size(), group.attempts);
  return sent;
}

}  // namespace asya::sidecar::join
