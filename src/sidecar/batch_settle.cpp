#include "sidecar/batch_settle.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/failpoint.hpp"

namespace asya::sidecar {

namespace {

bool too_large(const Status& st) {
  return !st && st.message().starts_with(label(FailureCode::kMessageTooLarge));
}

std::vector<Settlement> settle_step_by_step(const Router& router, transport::Transport& transport,
                                            std::span<const SettleItem> items,
                                            const SendHooks& hooks);
double seconds_each(std::chrono::steady_clock::time_point started, std::size_t messages);
// Steps 2 and 3 of settle_step_by_step once the sends are done: `sent` holds the status of every
// output, item i's at [first[i], first[i + 1]). `crash_point`: the crash point sidecar.before_ack
// (router.cpp) is passed before the acks.
std::vector<Settlement> settle_after_sends(const Router& router, transport::Transport& transport,
                                           std::span<const SettleItem> items,
                                           std::span<const std::size_t> first,
                                           std::span<const Status> sent, double seconds,
                                           const SendHooks& hooks, bool crash_point);

// On a transport that settles together (SQLite): every item to ack whose outputs fit the
// transport's limit, its outputs and its ack as one step of one send_then_ack_many() call (one
// shared write transaction instead of two, each all or nothing). Returns a Settlement for each
// item settled so; the others (nullopt) take the step-by-step path. Not with a before_send hook
// (it runs before each send) nor with the crash point between outputs and ack armed.
std::vector<std::optional<Settlement>> settle_in_shared_steps(transport::Transport& transport,
                                                              std::span<const SettleItem> items,
                                                              const SendHooks& hooks) {
  std::vector<std::optional<Settlement>> results(items.size());
  if (!transport.settles_together() || hooks.before_send || failpoint_armed("sidecar.before_ack"))
    return results;
  std::vector<std::size_t> step_item;
  std::size_t outputs = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Decision& decision = *items[i].decision;
    if (decision.then != Then::kAck) continue;
    bool fits = true;
    for (const Outgoing& out : decision.sends)
      fits = fits && out.body_size() <= transport.max_message_bytes();
    if (!fits) continue;
    step_item.push_back(i);
    outputs += decision.sends.size();
  }
  if (step_item.size() < 2) return results;
  std::vector<MessageStorage> storage(outputs);  // not resized below: messages point into it
  std::vector<transport::OutgoingMessage> messages;
  messages.reserve(outputs);
  std::vector<std::size_t> first;  // step k's messages: [first[k], first[k + 1])
  for (std::size_t i : step_item) {
    first.push_back(messages.size());
    for (const Outgoing& out : items[i].decision->sends)
      messages.push_back(out.message(transport, storage[messages.size()]));
  }
  first.push_back(messages.size());
  std::vector<transport::Transport::SendThenAck> steps;
  for (std::size_t k = 0; k < step_item.size(); ++k) {
    steps.push_back({std::span<const transport::OutgoingMessage>(messages).subspan(
                         first[k], first[k + 1] - first[k]),
                     items[step_item[k]].delivery});
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<std::optional<Status>> acked = transport.send_then_ack_many(steps);
  // Each output is given its share of the shared call's time (as in settle_batch).
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() /
      static_cast<double>(std::max<std::size_t>(messages.size(), 1));
  for (std::size_t k = 0; k < step_item.size(); ++k) {
    if (!acked[k]) continue;  // nothing of it was done
    const Decision& decision = *items[step_item[k]].decision;
    Settlement result;
    for (const Outgoing& out : decision.sends) {
      if (hooks.after_send) hooks.after_send(out, seconds, Status::Ok());
      ++result.sent;
    }
    result.acked = acked[k]->ok();
    if (!acked[k]->ok()) result.error = "ack failed: " + acked[k]->message();
    results[step_item[k]] = std::move(result);
  }
  return results;
}

}  // namespace

std::vector<Settlement> settle_batch(const Router& router, transport::Transport& transport,
                                     std::span<const SettleItem> items, const SendHooks& hooks) {
  if (items.size() == 1) return settle_step_by_step(router, transport, items, hooks);
  std::vector<std::optional<Settlement>> shared = settle_in_shared_steps(transport, items, hooks);
  std::vector<SettleItem> rest;
  std::vector<std::size_t> rest_index;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (shared[i]) continue;
    rest.push_back(items[i]);
    rest_index.push_back(i);
  }
  if (rest.size() == items.size()) return settle_step_by_step(router, transport, items, hooks);
  std::vector<Settlement> results(items.size());
  for (std::size_t i = 0; i < items.size(); ++i)
    if (shared[i]) results[i] = std::move(*shared[i]);
  if (rest.empty()) return results;
  std::vector<Settlement> settled = settle_step_by_step(router, transport, rest, hooks);
  for (std::size_t k = 0; k < rest.size(); ++k) results[rest_index[k]] = std::move(settled[k]);
  return results;
}

namespace {

std::vector<Settlement> settle_step_by_step(const Router& router, transport::Transport& transport,
                                            std::span<const SettleItem> items,
                                            const SendHooks& hooks) {
  if (items.size() == 1) {
    const SettleItem& only = items.front();
    return {router.settle(transport, *only.delivery, only.in, *only.decision, hooks)};
  }
  // 1. Every output of every item, in one call.
  std::vector<transport::OutgoingMessage> messages;
  std::vector<std::size_t> first(items.size() + 1, 0);  // item i's outputs: [first[i], first[i+1])
  std::size_t outputs = 0;
  for (const SettleItem& item : items) outputs += item.decision->sends.size();
  std::vector<MessageStorage> storage(outputs);  // not resized below: messages point into it
  for (std::size_t i = 0; i < items.size(); ++i) {
    first[i] = messages.size();
    for (const Outgoing& out : items[i].decision->sends) {
      if (hooks.before_send) hooks.before_send(out);
      messages.push_back(out.message(transport, storage[messages.size()]));
    }
  }
  first[items.size()] = messages.size();
  auto started = std::chrono::steady_clock::now();
  std::vector<Status> sent =
      messages.empty() ? std::vector<Status>{} : transport.send_many(messages);
  return settle_after_sends(router, transport, items, first, sent,
                            seconds_each(started, messages.size()), hooks, /*crash_point=*/false);
}

double seconds_each(std::chrono::steady_clock::time_point started, std::size_t messages) {
  // Each output is given its share of the shared call's time, so the send durations of a batch
  // add up to the time it spent sending.
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() /
         static_cast<double>(std::max<std::size_t>(messages, 1));
}

std::vector<Settlement> settle_after_sends(const Router& router, transport::Transport& transport,
                                           std::span<const SettleItem> items,
                                           std::span<const std::size_t> first,
                                           std::span<const Status> sent, double seconds,
                                           const SendHooks& hooks, bool crash_point) {
  // 2. Per item: what failed, and whether it can be acked.
  std::vector<Settlement> results(items.size());
  std::vector<const transport::Delivery*> to_ack;
  std::vector<std::size_t> ack_item;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const SettleItem& item = items[i];
    const Decision& decision = *item.decision;
    Settlement& result = results[i];
    Decision refused;  // the outputs refused as too large, settled again alone below
    const Status* failed = nullptr;
    const Outgoing* failed_out = nullptr;
    for (std::size_t k = first[i]; k < first[i + 1]; ++k) {
      const Outgoing& out = decision.sends[k - first[i]];
      if (too_large(sent[k]) && item.in) {
        refused.sends.push_back(out);
        continue;
      }
      if (hooks.after_send) hooks.after_send(out, seconds, sent[k]);
      if (sent[k]) {
        ++result.sent;
      } else if (!failed) {
        failed = &sent[k];
        failed_out = &out;
      }
    }
    if (failed) {
      result.error = fmt::format("send to {} failed: {}", failed_out->queue, failed->message());
      Status nacked = transport.nack(
          *item.delivery, router.backoff(static_cast<int>(item.delivery->delivery_count)));
      result.nacked = nacked.ok();
      if (!nacked) result.error += "; nack failed too: " + nacked.message();
      continue;
    }
    if (!refused.sends.empty()) {
      refused.then = decision.then;
      refused.nack_delay = decision.nack_delay;
      Settlement again = router.settle(transport, *item.delivery, item.in, refused, hooks);
      again.sent += result.sent;
      result = std::move(again);
      continue;
    }
    if (decision.then == Then::kNack) {
      Status st = transport.nack(*item.delivery, decision.nack_delay);
      result.nacked = st.ok();
      if (!st) result.error = "nack failed: " + st.message();
      continue;
    }
    to_ack.push_back(item.delivery);
    ack_item.push_back(i);
  }

  // 3. The acks of the items whose outputs are all durable, in one call.
  if (to_ack.empty()) return results;
  if (crash_point) failpoint("sidecar.before_ack");  // outputs durable, inputs not acked
  std::vector<Status> acked = transport.ack_many(to_ack);
  for (std::size_t k = 0; k < ack_item.size(); ++k) {
    Settlement& result = results[ack_item[k]];
    result.acked = acked[k].ok();
    if (!acked[k]) result.error = "ack failed: " + acked[k].message();
  }
  return results;
}

}  // namespace

StartedSettle::StartedSettle(const Router& router, transport::Transport& transport,
                             std::span<const SettleItem> items, const SendHooks& hooks,
                             std::function<void()> on_ready)
    : router_(router), transport_(transport), items_(items), hooks_(hooks) {
  std::size_t outputs = 0;
  for (const SettleItem& item : items) outputs += item.decision->sends.size();
  storage_.resize(outputs);  // not resized below: messages_ point into it
  messages_.reserve(outputs);
  first_.assign(items.size() + 1, 0);
  for (std::size_t i = 0; i < items.size(); ++i) {
    first_[i] = messages_.size();
    for (const Outgoing& out : items[i].decision->sends) {
      if (hooks.before_send) hooks.before_send(out);
      messages_.push_back(out.message(transport, storage_[messages_.size()]));
    }
  }
  first_[items.size()] = messages_.size();
  started_ = std::chrono::steady_clock::now();
  if (!messages_.empty()) sends_ = transport.start_send_many(messages_, std::move(on_ready));
}

bool StartedSettle::ready() {
  return !sends_ || sends_->ready();
}

std::vector<Settlement> StartedSettle::finish() {
  std::vector<Status> sent = sends_ ? sends_->finish() : std::vector<Status>{};
  return settle_after_sends(router_, transport_, items_, first_, sent,
                            seconds_each(started_, messages_.size()), hooks_,
                            /*crash_point=*/true);
}

}  // namespace asya::sidecar
