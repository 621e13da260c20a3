// A large runtime answer received straight into a transport's body spool
// (transport/body_spool.hpp; the SQLite transport's body file of the output), instead of into
// fresh memory as large as the answer that the output's body file is then copied from. The router
// parses the spool's contents in place (mapped, not copied), and the one output whose payload
// lies in them names the spool (hold_spool), so the transport finishes that file into the
// output's body: the answer's bytes are copied once, into the page cache, while they arrive.
//
// An answer of at most `spool_above` bytes is received into `answer` as usual. A spool that fails
// to take the bytes (disk full) ends with the answer in `answer` after all: what was spooled is
// read back, the rest received there. Only when that read-back fails too is the answer lost
// (kFailed: the message is delivered again).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "transport/body_spool.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {

struct Decision;

class SpooledAnswer : public wire::AnswerReceiver {
 public:
  // Received (and appended to the spool) at a time.
  static constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

  // `spool` and `answer` must outlive this.
  SpooledAnswer(transport::BodySpool& spool, wire::FrameBuffer& answer, std::size_t spool_above);

  void start(std::size_t size) override;
  std::span<char> room(std::size_t remaining) override;
  void received(std::size_t count) override;

  enum class Outcome {
    kInBuffer,  // `answer` holds the answer
    kSpooled,   // spooled(): the answer, in the spool (padded for an in-place parse)
    kFailed,    // the answer was lost: failure_message()
  };
  // After a call that returned kOk.
  Outcome finish();
  std::string_view spooled() const { return spooled_; }
  const std::string& failure_message() const { return failure_; }

 private:
  enum class State { kBuffer, kSpool, kFailed };
  void to_buffer(const std::string& why);

  transport::BodySpool& spool_;
  wire::FrameBuffer& answer_;
  std::size_t spool_above_;
  std::size_t size_ = 0;
  std::size_t offset_ = 0;  // received so far
  std::unique_ptr<char[]> chunk_;
  State state_ = State::kBuffer;
  std::string_view spooled_;
  std::string failure_;
};

// After a decision made from `contents` (a spool's, SpooledAnswer::spooled()): every output in
// parts whose payload points into them keeps `spool` alive (BodyParts::owner), and when there is
// exactly one, it names the spool (BodyParts::spool) so the transport may finish the spool into
// its body. (Two outputs cannot share one file; the others are written as usual.)
void hold_spool(Decision& decision, const std::shared_ptr<transport::BodySpool>& spool,
                std::string_view contents);

}  // namespace asya::sidecar
