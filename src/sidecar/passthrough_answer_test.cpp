// A pass-through answer compared with the object while it arrives (sidecar/passthrough_answer.hpp),
// with a real Unix-socket runtime: an echo is forwarded as the same reference without the answer
// ever being held whole; any difference (the last byte included), the object's bytes somewhere
// else than a payload, or an object changed during the compare gives the real answer or a nack.
#include "sidecar/passthrough_answer.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/random_id.hpp"
#include "sidecar/payload_ref.hpp"
#include "sidecar/payload_test_support.hpp"
#include "sidecar/router_test_support.hpp"
#include "sidecar/socket_server_test_support.hpp"
#include "wire/frame.hpp"

namespace asya::sidecar {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using router_test::delivery_of;
using router_test::obj;
using router_test::ok;
using router_test::options_for;

// Over three compare chunks; a string, so a byte changed inside it keeps the JSON valid.
const std::string kObject = R"({"data":")" + std::string((3u << 20) + 4321, 'z') + R"("})";
const std::string kRoute = R"("route":{"actors":["a","b","c"],"current":2})";

// A runtime answering each request with answer_(request), written in two parts: `between` runs
// after the first `split` bytes of the frame were sent.
class ScriptedRuntime {
 public:
  ScriptedRuntime(const fs::path& socket_path,
                  std::function<std::string(const std::string&)> answer)
      : answer_(std::move(answer)), server_(socket_path, [this](int fd) { serve(fd); }) {}
  std::size_t split = std::size_t(-1);
  std::function<void()> between;

 private:
  void serve(int fd) {
    std::string request;
    while (wire::read_frame(fd, request, 64u << 20, 10'000).ok()) {
      std::string body = answer_(request);
      std::string frame(4, '\0');
      const auto size = static_cast<std::uint32_t>(body.size());
      for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>(size >> (24 - 8 * i));
      frame += body;
      const std::size_t first = std::min(split, frame.size());
      if (!send_all(fd, std::string_view(frame).substr(0, first))) break;
      if (between) between();
      if (!send_all(fd, std::string_view(frame).substr(first))) break;
    }
  }
  static bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  std::function<std::string(const std::string&)> answer_;
  test_support::SocketServer server_;  // last: stops before the members serve() uses
};

class PassThroughAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-passthrough-test-" + random_hex(8));
    fs::create_directories(dir_);
    payload::PayloadStoreOptions options;
    options.url = "file://" + (dir_ / "store").string();
    refs_ = std::make_unique<PayloadReferences>(payload::make_payload_store(options), 1024);
    PayloadReferences::Outputs outputs(*refs_, "X", std::nullopt);
    auto replaced = outputs.replace(kObject, "X");
    ASSERT_TRUE(replaced.ok() && replaced->has_value());
    reference_ = **replaced;
    body_ =
        R"({"id":"X","route":{"actors":["a","b","c"],"current":1},"payload":)" + reference_ + "}";
    auto parsed = envelope::parse(body_);
    ASSERT_TRUE(parsed.ok());
    in_ = *parsed;
  }
  void TearDown() override {
    client_.reset();
    runtime_.reset();
    fs::remove_all(dir_);
  }

  // Starts the runtime answering with `answer` (given the object as the runtime got it).
  void answer_with(std::function<std::string(const std::string& payload)> answer) {
    runtime_ = std::make_unique<ScriptedRuntime>(
        dir_ / "rt.sock", [answer](const std::string&) { return answer(kObject); });
    wire::RuntimeClientOptions client_options;
    client_options.socket_path = (dir_ / "rt.sock").string();
    client_options.max_message_bytes = 64u << 20;
    client_ = std::make_unique<wire::RuntimeClient>(client_options);
  }

  fs::path object_file() const { return dir_ / "store" / "objects" / payload::sha256_hex(kObject); }

  // The call as the sidecar makes it, then the router's decision; `input` and `outputs` kept for
  // the checks.
  Decision run() {
    input_ = refs_->resolve(in_, body_, /*allow_stream=*/true);
    EXPECT_EQ(input_.status, PayloadReferences::InputStatus::kResolved) << input_.message;
    outputs_.emplace(*refs_, in_.id, input_.reference);
    outputs_->set_input_stream(input_.stream.get());
    wire::CallResult call =
        refs_->call_streamed(*client_, input_, body_, in_.payload_raw, *outputs_, answer_, 20s);
    EXPECT_EQ(call.status, wire::CallStatus::kOk) << call.error;
    Router router(options_for("b"));
    auto delivery = delivery_of(body_);
    if (auto failed = PayloadReferences::streamed_failure(router, in_, delivery, input_))
      return std::move(*failed);
    return router.after_runtime(in_, delivery, call, answer_.view(), /*response_padded=*/true,
                                &*outputs_);
  }

  std::size_t objects() { return refs_->store().list("objects/")->size(); }

  fs::path dir_;
  std::unique_ptr<PayloadReferences> refs_;
  std::unique_ptr<ScriptedRuntime> runtime_;
  std::unique_ptr<wire::RuntimeClient> client_;
  std::string reference_;
  std::string body_;
  envelope::Envelope in_;
  PayloadReferences::Input input_;
  std::optional<PayloadReferences::Outputs> outputs_;
  wire::FrameBuffer answer_;
};

std::string result_of(const std::string& payload, const std::string& after = "") {
  return R"([{"payload":)" + payload + "," + kRoute + after + "}]";
}

TEST_F(PassThroughAnswerTest, AnEchoIsForwardedAsTheSameReferenceWithoutHoldingTheAnswer) {
  answer_with([](const std::string& payload) { return result_of(payload); });
  Decision d = run();
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-c");
  EXPECT_TRUE(SameObjectOwnToken(
      refs_->store(), boost::json::serialize(obj(d.sends[0].body)["payload"]), reference_));
  EXPECT_EQ(objects(), 1u) << "a pass-through writes nothing";
  // Only the answer with the reference in place was ever held, never the object's bytes.
  EXPECT_LT(answer_.capacity(), 64u << 10);
  EXPECT_NE(answer_.view().find(reference_), std::string_view::npos);
}

TEST_F(PassThroughAnswerTest, AChangedLastByteIsNotAPassThroughAndTheRealAnswerIsUsed) {
  std::string changed = kObject;
  changed[changed.size() - 3] = 'y';  // the object's last 'z'
  answer_with([&](const std::string&) { return result_of(changed); });
  Decision d = run();
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(answer_.view(), result_of(changed)) << "the real answer, byte for byte";
  auto payload = obj(d.sends[0].body)["payload"];
  EXPECT_NE(boost::json::serialize(payload), reference_);
  EXPECT_NE(boost::json::serialize(payload).find(payload::sha256_hex(changed)), std::string::npos);
  EXPECT_EQ(objects(), 2u) << "the changed payload is stored as a new object";
}

TEST_F(PassThroughAnswerTest, AChangeInAMiddleChunkRebuildsTheRealAnswer) {
  std::string changed = kObject;
  changed[(2u << 20) + 17] = 'y';
  answer_with([&](const std::string&) { return result_of(changed, R"(,"headers":{"h":"v"})"); });
  Decision d = run();
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(answer_.view(), result_of(changed, R"(,"headers":{"h":"v"})"));
  EXPECT_EQ(objects(), 2u);
}

TEST_F(PassThroughAnswerTest, TheObjectInAHeaderIsNotReplaced) {
  // The object's bytes are the value of a header, the payload is small: no reference may end up
  // in the header.
  const std::string answer = R"([{"payload":1,)" + kRoute + R"(,"headers":{"h":)" + kObject + "}}]";
  answer_with([&](const std::string&) { return answer; });
  Decision d = run();
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(answer_.view(), answer);
  EXPECT_EQ(d.sends[0].body.find("asya-payload-ref"), std::string::npos) << d.sends[0].body;
  EXPECT_EQ(obj(d.sends[0].body)["payload"].as_int64(), 1);
}

TEST_F(PassThroughAnswerTest, AFanOutOfTwoEchoesForwardsTheReferenceTwice) {
  answer_with([](const std::string& payload) {
    return R"([{"payload":)" + payload + "," + kRoute + R"(},{"payload":)" + payload + "," +
           kRoute + "}]";
  });
  Decision d = run();
  ASSERT_EQ(d.sends.size(), 2u);
  for (const auto& send : d.sends)
    EXPECT_TRUE(SameObjectOwnToken(refs_->store(),
                                   boost::json::serialize(obj(send.body)["payload"]), reference_));
  EXPECT_EQ(objects(), 1u);
}

TEST_F(PassThroughAnswerTest, AnObjectChangedWhileComparedIsNackedNeverForwarded) {
  answer_with([](const std::string& payload) { return result_of(payload); });
  // Two chunks of the answer arrive, then the object file is rewritten in place (same bytes: its
  // change time moves), then the rest: what was compared can no longer be trusted or rebuilt.
  runtime_->split = (2u << 20) + 100;
  runtime_->between = [this] {
    std::this_thread::sleep_for(50ms);
    std::ofstream(object_file(), std::ios::trunc | std::ios::binary) << kObject;
  };
  Decision d = run();
  EXPECT_EQ(d.then, Then::kNack);
  EXPECT_TRUE(d.sends.empty());
  EXPECT_TRUE(d.failure == FailureCode::kPayloadStoreError);
  EXPECT_NE(d.failure_message.find("changed in the store"), std::string::npos) << d.failure_message;
}

}  // namespace
}  // namespace asya::sidecar
