// A payload reference streamed from the file store to a real Unix-socket runtime
// (sidecar/payload_stream.hpp): the request is the envelope with the object in place, a changed
// object never reaches the runtime as a whole request, and a pass-through is found by comparing
// the answer with the file.
#include "sidecar/payload_stream.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/random_id.hpp"
#include "payload/file/verified_mark.hpp"
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

// A runtime that answers every whole request frame with "[" + request + "]", keeps the last
// request and counts the frames that were cut short.
class RecordingRuntime {
 public:
  explicit RecordingRuntime(const fs::path& socket_path)
      : server_(socket_path, [this](int fd) { serve(fd); }) {}
  int requests() const { return requests_; }
  int truncated() const { return truncated_; }
  std::string last() {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  void serve(int fd) {
    std::string request;
    for (;;) {
      Status s = wire::read_frame(fd, request, 64u << 20, 10'000);
      if (!s.ok()) {
        if (s.message().find("middle of a frame") != std::string::npos) ++truncated_;
        break;
      }
      {
        std::lock_guard lock(mutex_);
        last_ = request;
      }
      ++requests_;
      if (!wire::write_frame(fd, "[" + request + "]").ok()) break;
    }
  }
  std::mutex mutex_;
  std::string last_;
  std::atomic<int> requests_{0};
  std::atomic<int> truncated_{0};
  test_support::SocketServer server_;  // last: stops before the members serve() uses
};

bool eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Three chunks and a bit: the held-back last byte is not at a chunk boundary.
const std::string kLarge = R"({"data":")" + std::string((3u << 20) + 12345, 'z') + R"("})";

class PayloadStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-payload-stream-test-" + random_hex(8));
    fs::create_directories(dir_);
    payload::PayloadStoreOptions options;
    options.url = "file://" + (dir_ / "store").string();
    refs_ = std::make_unique<PayloadReferences>(payload::make_payload_store(options), 1024);
    runtime_ = std::make_unique<RecordingRuntime>(dir_ / "rt.sock");
    wire::RuntimeClientOptions client_options;
    client_options.socket_path = (dir_ / "rt.sock").string();
    client_options.max_message_bytes = 64u << 20;
    client_ = std::make_unique<wire::RuntimeClient>(client_options);
    PayloadReferences::Outputs outputs(*refs_, "X", std::nullopt);
    auto replaced = outputs.replace(kLarge, "X");
    EXPECT_TRUE(replaced.ok() && replaced->has_value());
    reference_ = **replaced;
    body_ = envelope_with(reference_);
    auto parsed = envelope::parse(body_);
    EXPECT_TRUE(parsed.ok());
    in_ = *parsed;
  }
  void TearDown() override {
    payload::set_verified_marks_unsupported_for_testing(false);
    client_.reset();
    runtime_.reset();
    fs::remove_all(dir_);
  }

  static std::string envelope_with(const std::string& payload_text) {
    return R"({"id":"X","route":{"actors":["a","b","c"],"current":1},"payload":)" + payload_text +
           "}";
  }
  fs::path object_file() const { return dir_ / "store" / "objects" / payload::sha256_hex(kLarge); }

  PayloadReferences::Input resolve_streamed() {
    PayloadReferences::Input input = refs_->resolve(in_, body_, /*allow_stream=*/true);
    EXPECT_EQ(input.status, PayloadReferences::InputStatus::kResolved) << input.message;
    EXPECT_NE(input.stream, nullptr);
    EXPECT_TRUE(input.body.empty()) << "a streamed payload is never held whole";
    return input;
  }

  wire::CallResult call(PayloadReferences::Input& input) {
    return client_->call(input.stream->request(body_, in_.payload_raw), answer_, 20s);
  }

  fs::path dir_;
  std::unique_ptr<PayloadReferences> refs_;
  std::unique_ptr<RecordingRuntime> runtime_;
  std::unique_ptr<wire::RuntimeClient> client_;
  std::string reference_;
  std::string body_;
  envelope::Envelope in_;
  wire::FrameBuffer answer_;
};

TEST_F(PayloadStreamTest, TheRuntimeGetsTheEnvelopeWithTheObjectInPlaceOfTheReference) {
  PayloadReferences::Input input = resolve_streamed();
  wire::CallResult result = call(input);
  ASSERT_EQ(result.status, wire::CallStatus::kOk) << result.error;
  EXPECT_EQ(input.stream->failure(), StreamedPayload::Failure::kNone);
  EXPECT_EQ(runtime_->last(), envelope_with(kLarge));
  std::string echoed(1, '[');  // not "[" + ...: GCC 12 warns (-Wrestrict) falsely on that
  echoed += envelope_with(kLarge);
  echoed += ']';
  EXPECT_EQ(answer_.view(), echoed);
  Router router(options_for("b"));
  auto delivery = delivery_of(body_);
  EXPECT_FALSE(PayloadReferences::streamed_failure(router, in_, delivery, input));
}

TEST_F(PayloadStreamTest, AChangedObjectIsCutShortBeforeTheRuntimeHasAWholeRequest) {
  std::string tampered = kLarge;
  tampered[tampered.size() - 3] = 'y';  // same size; only the last chunk differs
  std::ofstream(object_file(), std::ios::trunc | std::ios::binary) << tampered;
  PayloadReferences::Input input = resolve_streamed();
  wire::CallResult result = call(input);
  EXPECT_NE(result.status, wire::CallStatus::kOk);
  EXPECT_EQ(input.stream->failure(), StreamedPayload::Failure::kMismatch);
  ASSERT_TRUE(eventually([&] { return runtime_->truncated() == 1; }));
  EXPECT_EQ(runtime_->requests(), 0) << "the runtime got a whole request with a changed payload";

  Router router(options_for("b"));
  auto delivery = delivery_of(body_);
  auto decision = PayloadReferences::streamed_failure(router, in_, delivery, input);
  ASSERT_TRUE(decision);
  ASSERT_EQ(decision->sends.size(), 1u);
  EXPECT_EQ(decision->sends[0].queue, "asya-error-end");
  auto payload = obj(decision->sends[0].body)["payload"].as_object();
  EXPECT_EQ(payload["error"].as_string(), "payload_unavailable");
  std::string message(payload["details"].as_object()["message"].as_string());
  EXPECT_NE(message.find("does not match its reference"), std::string::npos) << message;
  EXPECT_NE(message.find(payload::sha256_hex(kLarge)), std::string::npos) << message;
}

TEST_F(PayloadStreamTest, AShorterOrLongerObjectIsAMismatchToo) {
  for (const std::string& damaged : {kLarge.substr(0, kLarge.size() - 1), kLarge + " "}) {
    std::ofstream(object_file(), std::ios::trunc | std::ios::binary) << damaged;
    PayloadReferences::Input input = resolve_streamed();
    wire::CallResult result = call(input);
    EXPECT_NE(result.status, wire::CallStatus::kOk);
    EXPECT_EQ(input.stream->failure(), StreamedPayload::Failure::kMismatch);
    EXPECT_NE(input.stream->failure_message().find(std::to_string(damaged.size()) + " bytes"),
              std::string::npos)
        << input.stream->failure_message();
  }
  EXPECT_TRUE(eventually([&] { return runtime_->truncated() == 2; }));
  EXPECT_EQ(runtime_->requests(), 0);
}

TEST_F(PayloadStreamTest, AMissingObjectIsUnavailableBeforeAnyCall) {
  fs::remove(object_file());
  PayloadReferences::Input input = refs_->resolve(in_, body_, /*allow_stream=*/true);
  EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable);
  EXPECT_EQ(input.stream, nullptr);
  EXPECT_NE(input.message.find(payload::sha256_hex(kLarge)), std::string::npos) << input.message;
}

TEST_F(PayloadStreamTest, AnObjectThatIsAFifoOrADirectoryIsUnavailableAtOnceNeverAWait) {
  // open(2) of a FIFO without a writer blocks forever: the sidecar's worker must not.
  for (const char* kind : {"fifo", "directory"}) {
    fs::remove(object_file());
    if (std::string_view(kind) == "fifo")
      ASSERT_EQ(::mkfifo(object_file().c_str(), 0600), 0);
    else
      fs::create_directory(object_file());
    PayloadReferences::Input input = refs_->resolve(in_, body_, /*allow_stream=*/true);
    EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable) << kind;
    EXPECT_EQ(input.stream, nullptr) << kind;
    EXPECT_NE(input.message.find("is not a regular file"), std::string::npos) << input.message;
    EXPECT_NE(input.message.find(payload::sha256_hex(kLarge)), std::string::npos) << input.message;
    input = refs_->resolve(in_, body_, /*allow_stream=*/false);  // read whole (batches)
    EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable) << kind;
    EXPECT_NE(input.message.find("is not a regular file"), std::string::npos) << input.message;
    fs::remove(object_file());
  }
  EXPECT_EQ(runtime_->requests(), 0);
}

TEST_F(PayloadStreamTest, AnEchoedPayloadIsFoundByComparingWithTheFileAndKeepsTheReference) {
  PayloadReferences::Input input = resolve_streamed();
  ASSERT_EQ(call(input).status, wire::CallStatus::kOk);
  EXPECT_TRUE(input.stream->same_as(kLarge));
  std::string other = kLarge;
  other[100] = 'q';
  EXPECT_FALSE(input.stream->same_as(other));
  EXPECT_FALSE(input.stream->same_as(kLarge.substr(1)));
  // One byte changed at the very end (in the last chunk compared) is a change too.
  std::string last = kLarge;
  last.back() = last.back() == '"' ? 'x' : '"';
  EXPECT_FALSE(input.stream->same_as(last));

  Router router(options_for("b"));
  PayloadReferences::Outputs outputs(*refs_, in_.id, input.reference);
  outputs.set_input_stream(input.stream.get());
  std::string response =
      R"([{"payload":)" + kLarge + R"(,"route":{"actors":["a","b","c"],"current":2}}])";
  auto delivery = delivery_of(body_);
  Decision d = router.after_runtime(in_, delivery, ok(), response, false, &outputs);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_TRUE(SameObjectOwnToken(
      refs_->store(), boost::json::serialize(obj(d.sends[0].body)["payload"]), reference_));
  EXPECT_EQ(refs_->store().list("objects/")->size(), 1u);
}

TEST_F(PayloadStreamTest, AnObjectRewrittenAfterItsCheckIsNotTakenAsThePassThrough) {
  PayloadReferences::Input input = resolve_streamed();
  ASSERT_EQ(call(input).status, wire::CallStatus::kOk);
  // The same bytes written in place: the file's change time moves, so the verified state is gone.
  std::this_thread::sleep_for(20ms);
  std::ofstream(object_file(), std::ios::trunc | std::ios::binary) << kLarge;
  EXPECT_FALSE(input.stream->same_as(kLarge));
}

// The writer's put() marked the object verified: the reader sends it without hashing. Shown by a
// put of other bytes under the object's key (the writer vouches for the digest in the key): they
// reach the runtime whole, which a hashing reader would never allow.
TEST_F(PayloadStreamTest, AMarkedObjectIsSentWithoutBeingHashed) {
  std::string other = kLarge;
  other[10] = 'Q';
  ASSERT_TRUE(refs_->store().put(payload::object_key(payload::sha256_hex(kLarge)), other).ok());
  PayloadReferences::Input input = resolve_streamed();
  wire::CallResult result = call(input);
  ASSERT_EQ(result.status, wire::CallStatus::kOk) << result.error;
  EXPECT_EQ(input.stream->failure(), StreamedPayload::Failure::kNone);
  EXPECT_EQ(runtime_->last(), envelope_with(other));
  EXPECT_TRUE(input.stream->verified());
  EXPECT_TRUE(input.stream->same_as(other));
  char first[9];
  EXPECT_TRUE(input.stream->read_verified(first, sizeof first, 0));
}

TEST_F(PayloadStreamTest, AnUnmarkedObjectIsHashedThenMarkedAndStillComparable) {
  ASSERT_EQ(::removexattr(object_file().c_str(), payload::kVerifiedMarkAttribute), 0);
  PayloadReferences::Input input = resolve_streamed();
  ASSERT_EQ(call(input).status, wire::CallStatus::kOk);
  EXPECT_EQ(runtime_->last(), envelope_with(kLarge));
  char mark[512];
  ssize_t n = ::getxattr(object_file().c_str(), payload::kVerifiedMarkAttribute, mark, sizeof mark);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(mark, static_cast<std::size_t>(n)).find(payload::sha256_hex(kLarge)),
            std::string::npos);
  // The mark moved the file's change time after the check; the comparison still holds.
  EXPECT_TRUE(input.stream->same_as(kLarge));
  // The next reader trusts the mark.
  PayloadReferences::Input again = resolve_streamed();
  ASSERT_EQ(call(again).status, wire::CallStatus::kOk);
  EXPECT_EQ(runtime_->last(), envelope_with(kLarge));
  EXPECT_EQ(runtime_->requests(), 2);
}

TEST_F(PayloadStreamTest, WithoutUserAttributesEveryObjectIsHashed) {
  payload::set_verified_marks_unsupported_for_testing(true);
  // Other bytes put under the key: no mark can vouch for them, so the hash finds the change.
  std::string other = kLarge;
  other[10] = 'Q';
  ASSERT_TRUE(refs_->store().put(payload::object_key(payload::sha256_hex(kLarge)), other).ok());
  PayloadReferences::Input input = resolve_streamed();
  EXPECT_NE(call(input).status, wire::CallStatus::kOk);
  EXPECT_EQ(input.stream->failure(), StreamedPayload::Failure::kMismatch);
  ASSERT_TRUE(eventually([&] { return runtime_->truncated() == 1; }));
  // The right bytes pass (hashed).
  ASSERT_TRUE(refs_->store().put(payload::object_key(payload::sha256_hex(kLarge)), kLarge).ok());
  PayloadReferences::Input good = resolve_streamed();
  ASSERT_EQ(call(good).status, wire::CallStatus::kOk);
  EXPECT_EQ(runtime_->last(), envelope_with(kLarge));
  EXPECT_EQ(runtime_->requests(), 1);
}

// A marked object resolved in memory (a batch: no stream) is not hashed either.
TEST_F(PayloadStreamTest, AMarkedObjectResolvedInMemoryIsNotHashed) {
  std::string other = kLarge;
  other[10] = 'Q';
  ASSERT_TRUE(refs_->store().put(payload::object_key(payload::sha256_hex(kLarge)), other).ok());
  PayloadReferences::Input input = refs_->resolve(in_, body_, /*allow_stream=*/false);
  ASSERT_EQ(input.status, PayloadReferences::InputStatus::kResolved) << input.message;
  EXPECT_EQ(input.payload, other);
  // Changed in place after its mark: hashed, and the mismatch found.
  std::ofstream(object_file(), std::ios::trunc | std::ios::binary) << other;
  input = refs_->resolve(in_, body_, /*allow_stream=*/false);
  EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable);
  EXPECT_NE(input.message.find("does not match its reference"), std::string::npos) << input.message;
}

}  // namespace
}  // namespace asya::sidecar
