#include "sidecar/join/join_holds.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <vector>

#include "envelope/fanout.hpp"
#include "payload/lifetime.hpp"

namespace asya::sidecar::join {
namespace {

// Branches read from the join store at once: a pass over 100,000 waiting branches holds a few
// hundred of them in memory, and the store's lock is taken once per page.
constexpr std::size_t kPage = 256;

}  // namespace

std::string branch_id(std::string_view group, std::size_t index) {
  std::string source = envelope::fanout_source_id(group);
  if (index == 0) return source;
  std::size_t hop = 0;
  if (auto at = group.rfind('@'); at != std::string_view::npos)
    hop = static_cast<std::size_t>(
        std::strtoull(std::string(group.substr(at + 1)).c_str(), nullptr, 10));
  return envelope::fanout_child_id(source, hop, index);
}

JoinHolds::JoinHolds(JoinStore& joins, payload::PayloadStore& payloads, std::string actor,
                     std::chrono::milliseconds interval)
    : joins_(joins),
      payloads_(payloads),
      actor_(std::move(actor)),
      interval_(interval),
      thread_([this] { run(); }) {}

JoinHolds::~JoinHolds() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Result<JoinHolds::Pass> JoinHolds::renew_all() {
  Pass pass;
  std::optional<HeldBranch> after;
  for (;;) {
    auto page = joins_.held_branches(actor_, "", after ? &*after : nullptr, kPage);
    if (!page) return page.error();
    for (const HeldBranch& branch : *page) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return pass;
      }
      const std::string id = branch_id(branch.group, branch.index);
      if (Status st = payload::hold(payloads_, branch.sha256, id); st) {
        ++pass.rewritten;
      } else {
        ++pass.failed;
        spdlog::warn(
            "join: cannot renew the hold of branch {} of group {} ({}) on payload {}: {}; tried "
            "again shortly",
            branch.index, branch.group, id, branch.sha256, st.message());
      }
    }
    if (page->size() < kPage) return pass;
    after = std::move(page->back());
  }
}

void JoinHolds::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    auto pass = renew_all();
    lock.lock();
    if (!pass)
      spdlog::warn(
          "join: cannot list the branches whose payloads it holds: {}; tried again shortly",
          pass.error().message);
    else if (pass->rewritten > 0)
      spdlog::debug("join: renewed the holds of {} waiting branch(es)", pass->rewritten);
    // A pass that failed is tried again a tenth of an interval later, so a hold is never much
    // older than an interval while the stores answer.
    const bool failed = !pass || pass->failed > 0;
    const auto wait = failed ? std::max(interval_ / 10, std::chrono::milliseconds(10)) : interval_;
    wake_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

}  // namespace asya::sidecar::join
