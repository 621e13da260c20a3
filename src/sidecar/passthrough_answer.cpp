#include "sidecar/passthrough_answer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "envelope/response.hpp"

namespace asya::sidecar {

namespace {

// The object's first bytes looked for in the answer.
constexpr std::size_t kSignatureBytes = 64;

}  // namespace

PassThroughAnswer::PassThroughAnswer(StreamedPayload& object, std::string reference_json,
                                     wire::FrameBuffer& answer)
    : object_(object), reference_json_(std::move(reference_json)), answer_(answer) {}

char* PassThroughAnswer::chunk(std::unique_ptr<char[]>& buffer) {
  if (!buffer) buffer.reset(new char[kChunkBytes]);
  return buffer.get();
}

void PassThroughAnswer::start(std::size_t size) {
  size_ = size;
  offset_ = 0;
  found_ = 0;
  matched_ = 0;
  kept_.clear();
  state_ = State::kSearch;
  replaced_ = {};
  failure_.clear();
}

std::span<char> PassThroughAnswer::room(std::size_t remaining) {
  const std::uint64_t object_size = object_.reference().size_bytes;
  switch (state_) {
    case State::kSearch:
      kept_.resize(std::min(remaining, kSearchBytes));
      return {kept_.data(), kept_.size()};
    case State::kCompare: {
      const auto left = static_cast<std::size_t>(object_size - matched_);
      return {chunk(received_), std::min({remaining, kChunkBytes, left})};
    }
    case State::kTail: {
      const std::size_t old = kept_.size();
      kept_.resize(old + std::min(remaining, kChunkBytes));
      return {kept_.data() + old, kept_.size() - old};
    }
    case State::kWhole:
      return {answer_.data() + offset_, remaining};
    case State::kFailed:
      break;
  }
  return {chunk(received_), std::min(remaining, kChunkBytes)};  // drained: the call failed
}

void PassThroughAnswer::received(std::size_t count) {
  offset_ += count;
  if (state_ == State::kSearch) {
    search();
  } else if (state_ == State::kCompare) {
    compare(count);
  }
}

void PassThroughAnswer::search() {
  const std::uint64_t object_size = object_.reference().size_bytes;
  const auto signature_size =
      static_cast<std::size_t>(std::min<std::uint64_t>(kSignatureBytes, object_size));
  char* expected = chunk(expected_);
  if (signature_size == 0 || !object_.verified() ||
      !object_.read_verified(expected, signature_size, 0))
    return to_whole();
  const auto at = std::string_view(kept_).find(std::string_view(expected, signature_size));
  if (at == std::string_view::npos) return to_whole();
  const auto have =
      static_cast<std::size_t>(std::min<std::uint64_t>(kept_.size() - at, object_size));
  if (!object_.read_verified(expected, have, 0) || std::memcmp(kept_.data() + at, expected, have))
    return to_whole();
  found_ = at;
  matched_ = have;
  state_ = State::kCompare;
  if (matched_ == object_size) enter_tail();
}

void PassThroughAnswer::compare(std::size_t count) {
  char* expected = chunk(expected_);
  if (object_.read_verified(expected, count, matched_) &&
      std::memcmp(received_.get(), expected, count) == 0) {
    matched_ += count;
    if (matched_ == object_.reference().size_bytes) enter_tail();
    return;
  }
  // Different (or the file could not be read as verified): the real answer from here on,
  // rebuilt from the kept start, the object's bytes matched since, and this chunk.
  char* whole = answer_.prepare(size_);
  std::memcpy(whole, kept_.data(), kept_.size());
  const std::size_t matched_end = found_ + matched_;
  if (matched_end > kept_.size() &&
      !object_.read_verified(whole + kept_.size(), matched_end - kept_.size(),
                             kept_.size() - found_))
    return fail(
        fmt::format("the payload {} changed in the store while the runtime's answer was "
                    "compared with it; the answer cannot be rebuilt",
                    object_.reference().describe()));
  std::memcpy(whole + matched_end, received_.get(), count);
  std::string().swap(kept_);
  state_ = State::kWhole;
}

void PassThroughAnswer::enter_tail() {
  // The file must still be the one the answer matched.
  char none = 0;
  if (!object_.read_verified(&none, 0, 0))
    return fail(
        fmt::format("the payload {} changed in the store while the runtime's answer was "
                    "compared with it",
                    object_.reference().describe()));
  const auto object_size = static_cast<std::size_t>(object_.reference().size_bytes);
  // Bytes after the object already received (the object ended inside the searched start).
  std::string after = kept_.size() > found_ + object_size ? kept_.substr(found_ + object_size) : "";
  kept_.resize(found_);
  kept_ += reference_json_;
  kept_ += after;
  received_.reset();
  expected_.reset();
  state_ = State::kTail;
}

void PassThroughAnswer::to_whole() {
  char* whole = answer_.prepare(size_);
  std::memcpy(whole, kept_.data(), offset_);
  std::string().swap(kept_);
  state_ = State::kWhole;
}

void PassThroughAnswer::fail(std::string message) {
  failure_ = std::move(message);
  std::string().swap(kept_);
  state_ = State::kFailed;
}

PassThroughAnswer::Outcome PassThroughAnswer::finish() {
  if (state_ == State::kWhole) return Outcome::kWhole;
  if (state_ != State::kTail) {
    if (failure_.empty()) failure_ = "the runtime's answer was not received completely";
    return Outcome::kFailed;
  }
  answer_.assign(kept_);
  const std::string_view reference(answer_.data() + found_, reference_json_.size());
  // The replacement stands only when it is exactly the payload of a result element: the object's
  // bytes could also have been, say, a header's value.
  bool is_payload = false;
  if (auto items = envelope::parse_response_padded(answer_.view())) {
    is_payload = std::any_of(items->begin(), items->end(), [&](const auto& item) {
      return !item.is_error && item.payload_raw.data() == reference.data() &&
             item.payload_raw.size() == reference.size();
    });
  }
  if (is_payload) {
    replaced_ = reference;
    return Outcome::kReplaced;
  }
  // The real answer: the object's bytes back in place of the reference.
  const auto object_size = static_cast<std::size_t>(object_.reference().size_bytes);
  char* whole = answer_.prepare(size_);
  std::memcpy(whole, kept_.data(), found_);
  if (!object_.read_verified(whole + found_, object_size, 0)) {
    fail(
        fmt::format("the payload {} changed in the store while the runtime's answer was "
                    "compared with it; the answer cannot be rebuilt",
                    object_.reference().describe()));
    return Outcome::kFailed;
  }
  const std::size_t after = found_ + reference_json_.size();
  std::memcpy(whole + found_ + object_size, kept_.data() + after, kept_.size() - after);
  std::string().swap(kept_);
  state_ = State::kWhole;
  return Outcome::kWhole;
}

}  // namespace asya::sidecar
