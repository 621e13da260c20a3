#include "sidecar/spooled_answer.hpp"

#include <algorithm>
#include <cstring>

#include "sidecar/router.hpp"

namespace asya::sidecar {

SpooledAnswer::SpooledAnswer(transport::BodySpool& spool, wire::FrameBuffer& answer,
                             std::size_t spool_above)
    : spool_(spool), answer_(answer), spool_above_(spool_above) {}

void SpooledAnswer::start(std::size_t size) {
  size_ = size;
  offset_ = 0;
  failure_.clear();
  spooled_ = {};
  state_ = State::kBuffer;
  if (size > spool_above_) {
    Status restarted = spool_.restart();
    if (restarted) {
      state_ = State::kSpool;
      if (!chunk_) chunk_.reset(new char[kChunkBytes]);
      return;
    }
    failure_ = restarted.message();
  }
  answer_.prepare(size);
}

std::span<char> SpooledAnswer::room(std::size_t remaining) {
  switch (state_) {
    case State::kBuffer:
      return {answer_.data() + offset_, remaining};
    case State::kSpool:
    case State::kFailed:
      break;
  }
  return {chunk_.get(), std::min(remaining, kChunkBytes)};
}

void SpooledAnswer::received(std::size_t count) {
  if (state_ == State::kSpool) {
    Status appended = spool_.append(std::string_view(chunk_.get(), count));
    if (!appended) {
      to_buffer(appended.message());
      if (state_ == State::kBuffer) std::memcpy(answer_.data() + offset_, chunk_.get(), count);
    }
  }
  offset_ += count;
}

// The spool failed after `offset_` bytes: they are read back into `answer`, which takes the rest.
void SpooledAnswer::to_buffer(const std::string& why) {
  failure_ = why;
  auto spooled = spool_.contents();
  if (!spooled || spooled->size() != offset_) {
    state_ = State::kFailed;
    if (!spooled) failure_ += "; reading back what was written failed: " + spooled.error().message;
    return;
  }
  std::memcpy(answer_.prepare(size_), spooled->data(), offset_);
  state_ = State::kBuffer;
}

SpooledAnswer::Outcome SpooledAnswer::finish() {
  switch (state_) {
    case State::kBuffer:
      return Outcome::kInBuffer;
    case State::kFailed:
      return Outcome::kFailed;
    case State::kSpool:
      break;
  }
  auto contents = spool_.contents();
  if (!contents) {
    failure_ = contents.error().message;
    return Outcome::kFailed;
  }
  spooled_ = *contents;
  return Outcome::kSpooled;
}

void hold_spool(Decision& decision, const std::shared_ptr<transport::BodySpool>& spool,
                std::string_view contents) {
  const auto inside = [&](std::string_view payload) {
    return !payload.empty() && payload.data() >= contents.data() &&
           payload.data() + payload.size() <= contents.data() + contents.size();
  };
  BodyParts* only = nullptr;
  std::size_t count = 0;
  for (Outgoing& out : decision.sends) {
    if (!out.parts || !inside(out.parts->payload)) continue;
    out.parts->owner = spool;
    only = &*out.parts;
    ++count;
  }
  if (count == 1) only->spool = spool;
}

}  // namespace asya::sidecar
