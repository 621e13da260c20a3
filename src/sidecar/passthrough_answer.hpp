// A pass-through answer compared while it arrives (file payload store; docs/sidecar.md "Payload
// references"). The runtime was sent an object streamed from its file (payload_stream.hpp); a
// handler that returns its payload unchanged answers with the object's bytes again. Instead of
// receiving those bytes into a fresh buffer as large as the object, and then comparing that
// buffer with the file, the answer's bytes are compared with the file chunk by chunk as they
// arrive, and only the rest of the answer is kept, with the input's reference in place of the
// object's bytes: the router then forwards that same reference (PayloadReferences::Outputs).
//
// Anything else ends with the real answer in the buffer, byte for byte, so the decision is the
// one the whole answer would give: the object's first bytes not found in the answer's first
// 64 KiB (the answer is received whole from there on), a chunk that differs (the answer is
// rebuilt from the bytes received so far, the matched ones read back from the file), or a
// replacement that is not exactly the payload of one result element (the object's bytes are
// read back into place). The file is read through the descriptor kept open since it was
// verified, and only while it shows no change since (StreamedPayload::read_verified); when it
// did change, the answer cannot be rebuilt and the call fails (kFailed: the message is
// delivered again).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "sidecar/payload_stream.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

class PassThroughAnswer : public wire::AnswerReceiver {
 public:
  // The answer's first bytes searched for the object's.
  static constexpr std::size_t kSearchBytes = std::size_t{64} << 10;
  // Compared at a time.
  static constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

  // `object`: the input streamed to the runtime; `reference_json`: the text that replaces the
  // object's bytes (the input's reference); `answer`: where the answer ends up (padded, for the
  // router's in-place parse). All must outlive this.
  PassThroughAnswer(StreamedPayload& object, std::string reference_json, wire::FrameBuffer& answer);

  void start(std::size_t size) override;
  std::span<char> room(std::size_t remaining) override;
  void received(std::size_t count) override;

  enum class Outcome {
    kWhole,     // `answer` holds the real answer
    kReplaced,  // `answer` holds the answer with the object's bytes replaced by the reference,
                // which is exactly one result element's payload: replaced() is its text
    kFailed,    // the answer could not be rebuilt (the file changed or failed): failure_message()
  };
  // After a call that returned kOk.
  Outcome finish();
  // kReplaced: the reference's text inside `answer`.
  std::string_view replaced() const { return replaced_; }
  const std::string& failure_message() const { return failure_; }

 private:
  enum class State { kSearch, kCompare, kTail, kWhole, kFailed };
  void search();
  void compare(std::size_t count);
  void enter_tail();
  void to_whole();
  void fail(std::string message);
  char* chunk(std::unique_ptr<char[]>& buffer);

  StreamedPayload& object_;
  std::string reference_json_;
  wire::FrameBuffer& answer_;
  std::size_t size_ = 0;     // the answer's bytes
  std::size_t offset_ = 0;   // received so far
  std::size_t found_ = 0;    // where the object's bytes start in the answer
  std::size_t matched_ = 0;  // the object's bytes matched so far
  std::string kept_;         // kSearch, kCompare: answer[0, kept_.size()); kTail: the answer
                             // with the reference in place of the object, so far
  std::unique_ptr<char[]> received_;  // kCompare: the chunk being received
  std::unique_ptr<char[]> expected_;  // kCompare: the object's bytes it must equal
  State state_ = State::kSearch;
  std::string_view replaced_;
  std::string failure_;
};

}  // namespace asya::sidecar
