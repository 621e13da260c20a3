// SpooledAnswer (spooled_answer.hpp): a large answer goes to the spool and is read from it in
// place; a small one goes to the buffer; a spool that fails midway leaves the whole answer in the
// buffer, byte for byte; hold_spool names the spool for one output only.
#include "sidecar/spooled_answer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>

#include "sidecar/router.hpp"

namespace asya::sidecar {
namespace {

// A spool in memory whose append fails once `fail_after` bytes were taken.
class MemorySpool : public transport::BodySpool {
 public:
  std::size_t fail_after = std::string::npos;
  bool fail_contents = false;
  Status restart() override {
    bytes_.clear();
    return Status::Ok();
  }
  Status append(std::string_view bytes) override {
    if (bytes_.size() + bytes.size() > fail_after) return Error{"No space left on device"};
    bytes_.append(bytes);
    return Status::Ok();
  }
  Result<std::string_view> contents() override {
    if (fail_contents) return Error{"mapping failed"};
    padded_ = bytes_ + std::string(64, '\0');
    return std::string_view(padded_.data(), bytes_.size());
  }
  std::size_t size() const override { return bytes_.size(); }

 private:
  std::string bytes_;
  std::string padded_;
};

// Feeds `answer` to `receiver` as the runtime client would, in reads of at most `step` bytes.
void deliver(wire::AnswerReceiver& receiver, const std::string& answer, std::size_t step) {
  receiver.start(answer.size());
  std::size_t done = 0;
  while (done < answer.size()) {
    std::span<char> room = receiver.room(answer.size() - done);
    ASSERT_FALSE(room.empty());
    const std::size_t n = std::min({room.size(), step, answer.size() - done});
    std::copy_n(answer.data() + done, n, room.data());
    receiver.received(n);
    done += n;
  }
}

std::string answer_of(std::size_t size) {
  std::string payload(size, 'x');
  for (std::size_t i = 0; i < size; i += 4096) payload[i] = static_cast<char>('a' + i % 26);
  return "[\"" + payload + "\"]";
}

TEST(SpooledAnswer, ALargeAnswerIsSpooledAndASmallOneBuffered) {
  MemorySpool spool;
  wire::FrameBuffer buffer;
  SpooledAnswer receiver(spool, buffer, 1000);
  const std::string large = answer_of(3 << 20);
  deliver(receiver, large, 100000);
  ASSERT_EQ(receiver.finish(), SpooledAnswer::Outcome::kSpooled);
  EXPECT_TRUE(receiver.spooled() == large);
  EXPECT_EQ(buffer.size(), 0u) << "a spooled answer was also buffered";

  const std::string small = answer_of(500);
  deliver(receiver, small, 7);
  ASSERT_EQ(receiver.finish(), SpooledAnswer::Outcome::kInBuffer);
  EXPECT_EQ(buffer.view(), small);
  EXPECT_TRUE(receiver.spooled().empty());
}

TEST(SpooledAnswer, ASpoolThatFailsMidwayLeavesTheWholeAnswerInTheBuffer) {
  const std::string large = answer_of(5 << 20);
  for (std::size_t fail_after :
       {std::size_t{0}, std::size_t{1} << 20, (std::size_t{3} << 20) + 5}) {
    MemorySpool spool;
    spool.fail_after = fail_after;
    wire::FrameBuffer buffer;
    SpooledAnswer receiver(spool, buffer, 1000);
    deliver(receiver, large, 300000);
    ASSERT_EQ(receiver.finish(), SpooledAnswer::Outcome::kInBuffer) << fail_after;
    EXPECT_TRUE(buffer.view() == large) << "failed after " << fail_after;
    EXPECT_NE(receiver.failure_message().find("No space left"), std::string::npos);
  }
}

TEST(SpooledAnswer, AnAnswerNeitherSpooledNorReadBackIsReportedLost) {
  MemorySpool spool;
  spool.fail_after = 1 << 20;
  spool.fail_contents = true;
  wire::FrameBuffer buffer;
  SpooledAnswer receiver(spool, buffer, 1000);
  deliver(receiver, answer_of(3 << 20), 1 << 20);
  EXPECT_EQ(receiver.finish(), SpooledAnswer::Outcome::kFailed);
  EXPECT_NE(receiver.failure_message().find("mapping failed"), std::string::npos)
      << receiver.failure_message();
}

TEST(SpooledAnswer, HoldSpoolNamesTheSpoolForASingleOutputOnly) {
  auto spool = std::make_shared<MemorySpool>();
  const std::string contents = "[\"aaaa\",\"bbbb\"]";
  auto with_parts = [](std::string_view payload) {
    Outgoing out;
    out.parts.emplace();
    out.parts->head = "{\"payload\":";
    out.parts->payload = payload;
    out.parts->tail = "}";
    return out;
  };
  std::string_view view = contents;
  Decision one;
  one.sends.push_back(with_parts(view.substr(1, 6)));
  one.sends.emplace_back();  // a small output built whole
  hold_spool(one, spool, view);
  EXPECT_EQ(one.sends[0].parts->spool, spool);
  EXPECT_NE(one.sends[0].parts->owner, nullptr);

  Decision two;
  two.sends.push_back(with_parts(view.substr(1, 6)));
  two.sends.push_back(with_parts(view.substr(8, 6)));
  hold_spool(two, spool, view);
  for (const Outgoing& out : two.sends) {
    EXPECT_EQ(out.parts->spool, nullptr) << "two outputs cannot share the spool's file";
    EXPECT_NE(out.parts->owner, nullptr) << "the spool must outlive the views into it";
  }
}

}  // namespace
}  // namespace asya::sidecar
