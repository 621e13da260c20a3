#include "sidecar/join/join_actor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "common/random_id.hpp"
#include "envelope/fanout.hpp"
#include "sidecar/join/join_input.hpp"
#include "sidecar/join/join_progress.hpp"

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

}  // namespace

std::string joined_report_body(const ClaimedGroup& group) {
  const std::string source = envelope::fanout_source_id(group.group);
  std::size_t hop = 0;
  if (auto at = group.group.rfind('@'); at != std::string::npos)
    hop = static_cast<std::size_t>(std::strtoull(group.group.c_str() + at + 1, nullptr, 10));
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
                     BeforeSend before_send, OnStored on_stored)
    : config_(std::move(config)),
      store_(std::move(store)),
      router_(router),
      transport_(transport),
      runtime_timeout_(runtime_timeout),
      before_send_(std::move(before_send)),
      on_stored_(std::move(on_stored)),
      owner_(random_hex(16)) {}

std::unique_ptr<JoinActor> JoinActor::open(const JoinConfig& config, const Router& router,
                                           transport::Transport& transport,
                                           std::chrono::milliseconds runtime_timeout,
                                           std::function<GatewayReporter*()> reporter) {
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
                                     std::move(before_send), std::move(on_stored));
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
  auto put = store_->put_branch(branch);
  Decision d;
  if (!put) {
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
  if (put->outcome == PutOutcome::kCompleted) decided_ = true;
  if (on_stored_ && (put->outcome == PutOutcome::kStored || put->outcome == PutOutcome::kCompleted))
    on_stored_(in, frame.group, put->stored, put->count);
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
  // A claim outlives the runtime call it covers, so a live replica never loses it midway.
  const auto lease = runtime_timeout_ + std::chrono::seconds(30);
  while (!stop()) {
    auto claimed = store_->claim(router_.options().actor, owner_, lease);
    if (!claimed) {
      spdlog::warn("join store: cannot claim a decided group: {}", claimed.error().message);
      break;
    }
    if (!*claimed) break;
    if (!publish(**claimed, client, scratch, report)) {
      // Tried again soon (by any replica), not only when the lease would have run out.
      if (auto released = store_->release((*claimed)->group, owner_, std::chrono::seconds(1));
          !released)
        spdlog::warn("join store: cannot release group {}: {}", (*claimed)->group,
                     released.error().message);
      break;
    }
    ++report.published;
  }
  return report;
}

bool JoinActor::send_all(const Decision& decision) {
  for (const Outgoing& out : decision.sends) {
    if (Status st = transport_.send(out.queue, out.body, out.delay); !st) {
      spdlog::warn("join: send to {} failed: {}; the group is published again later", out.queue,
                   st.message());
      return false;
    }
  }
  return true;
}

bool JoinActor::publish(const ClaimedGroup& group, wire::RuntimeClient& client,
                        wire::FrameBuffer& scratch, PublishReport& report) {
  auto head = parse_head(group.head);
  if (!head) {
    spdlog::error("join: group {}: {}", group.group, head.error().message);
    return false;
  }
  const envelope::Envelope& in = head->envelope;
  Decision decision;
  if (group.reason == DecidedBecause::kTimeout && config_.on_timeout == OnTimeout::kError) {
    decision = router_.error_end(
        in, FailureCode::kJoinTimeout,
        fmt::format("join group {}: {} of {} branches arrived within ASYA_JOIN_TIMEOUT={}; "
                    "missing indexes: {}",
                    group.group, group.count - group.missing.size(), group.count,
                    format_duration(config_.timeout), indexes_text(group.missing)));
  } else {
    // Streamed to the runtime while the branches are read from the store (PROTOCOL §4a): the
    // sidecar holds one branch at a time, never the group.
    auto request = join_input_request(*store_, group);
    if (!request) {
      spdlog::error("join: group {}: cannot read its branches: {}", group.group,
                    request.error().message);
      return false;
    }
    transport::Delivery delivery;
    wire::CallResult call = client.call(*request, scratch, runtime_timeout_);
    if (call.status == wire::CallStatus::kOk && is_empty_array(scratch.view())) {
      // `[]`: the input itself ends the pipeline (section 4), so only now is it built whole.
      auto whole = build_join_input(*store_, group);
      if (!whole) {
        spdlog::error("join: group {}: cannot read its branches: {}", group.group,
                      whole.error().message);
        return false;
      }
      delivery.body = std::move(*whole);
    }
    decision = router_.after_runtime(in, delivery, call, scratch.view(), /*response_padded=*/true);
    if (scratch.capacity() > (4u << 20)) scratch.release();
    if (decision.wait_for_runtime) report.runtime_unavailable = true;
    if (decision.runtime_unhealthy) report.runtime_unhealthy = true;
    if (call.status != wire::CallStatus::kOk ||
        decision.failure == FailureCode::kRuntimeProtocolError)
      client.disconnect();
    if (decision.then == Then::kNack || decision.retried) {
      // Tried again by whichever replica claims the group once this lease expired.
      spdlog::warn("join: group {}: runtime call failed ({}): {}; published again later",
                   group.group, decision.failure.label(), decision.failure_message);
      return false;
    }
  }
  if (before_send_) before_send_(in, group);
  if (!send_all(decision)) return false;
  auto finished = store_->finish(group.group, owner_);
  if (!finished)
    spdlog::warn("join store: cannot finish group {}: {}", group.group, finished.error().message);
  else if (!*finished)
    spdlog::warn("join: group {} was claimed by another replica meanwhile (lease expired)",
                 group.group);
  spdlog::info("join: group {} of {} branches {} ({} failed, {} missing)", group.group, group.count,
               group.reason == DecidedBecause::kComplete ? "joined" : "timed out",
               group.failed.size(), group.missing.size());
  return true;
}

}  // namespace asya::sidecar::join
