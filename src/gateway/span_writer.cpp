#include "gateway/span_writer.hpp"

#include <algorithm>
#include <exception>

#include "common/log.hpp"

namespace asya::gateway {

SpanWriter::SpanWriter(Sink sink, std::chrono::milliseconds linger, std::size_t max_pending)
    : sink_(std::move(sink)), linger_(linger), max_pending_(std::max<std::size_t>(max_pending, 1)) {
  thread_ = std::thread([this] { run(); });
}

SpanWriter::~SpanWriter() {
  stop();
}

bool SpanWriter::add(otlp::Span span) {
  std::lock_guard lock(mutex_);
  if (stopping_ || pending_.size() >= max_pending_) {
    if (dropped_++ % 1000 == 0)
      spdlog::warn("gateway: call spans are written slower than they come; {} dropped so far",
                   dropped_);
    return false;
  }
  pending_.push_back(std::move(span));
  ++accepted_;
  if (pending_.size() == 1 || pending_.size() == kMaxBatch) wake_.notify_one();
  return true;
}

void SpanWriter::flush() {
  std::unique_lock lock(mutex_);
  std::uint64_t target = accepted_;
  if (written_count_ >= target || finished_) return;
  flush_upto_ = std::max(flush_upto_, target);
  wake_.notify_one();
  written_.wait(lock, [&] { return written_count_ >= target || finished_; });
}

void SpanWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t SpanWriter::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void SpanWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) {  // stopping, everything written
      finished_ = true;
      written_.notify_all();
      return;
    }
    // Collect the spans of more calls for one write, unless someone waits for them.
    auto write_now = [&] {
      return stopping_ || pending_.size() >= kMaxBatch || flush_upto_ > written_count_;
    };
    if (!write_now()) wake_.wait_for(lock, linger_, write_now);
    std::vector<otlp::Span> batch;
    if (pending_.size() <= kMaxBatch) {
      batch.swap(pending_);
    } else {
      batch.assign(std::make_move_iterator(pending_.begin()),
                   std::make_move_iterator(pending_.begin() + kMaxBatch));
      pending_.erase(pending_.begin(), pending_.begin() + kMaxBatch);
    }
    std::size_t count = batch.size();
    lock.unlock();
    try {
      sink_(std::move(batch));
    } catch (const std::exception& e) {  // the sink logs its own failures; this is a bug guard
      spdlog::warn("gateway: writing {} call span(s) failed: {}", count, e.what());
    }
    lock.lock();
    written_count_ += count;
    written_.notify_all();
  }
}

}  // namespace asya::gateway
