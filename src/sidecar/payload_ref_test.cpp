#include "sidecar/payload_ref.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/random_id.hpp"
#include "sidecar/payload_test_support.hpp"
#include "sidecar/router_test_support.hpp"

namespace asya::sidecar {
namespace {

namespace fs = std::filesystem;
using router_test::delivery_of;
using router_test::obj;
using router_test::ok;
using router_test::options_for;

constexpr std::size_t kThreshold = 1024;

class PayloadRefTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-payload-ref-test-" + random_hex(8));
    payload::PayloadStoreOptions options;
    options.url = "file://" + dir_.string();
    refs_ = std::make_unique<PayloadReferences>(payload::make_payload_store(options), kThreshold);
  }
  void TearDown() override {
    refs_.reset();  // its hold renewer's thread may be writing a hold until it is stopped
    fs::remove_all(dir_);
  }

  std::size_t object_count() { return refs_->store().list("objects/")->size(); }

  // An envelope for actor b of a -> b -> c whose payload is `payload_text`.
  static std::string envelope_with(const std::string& payload_text, std::string id = "X") {
    return R"({"id":")" + id +
           R"(","route":{"actors":["a","b","c"],"current":1},"headers":{"h":1},"payload":)" +
           payload_text + "}";
  }

  // Offloads `payload_text` as actor a's single output would be.
  std::string stored_reference(const std::string& payload_text) {
    PayloadReferences::Outputs outputs(*refs_, "X", std::nullopt);
    auto replaced = outputs.replace(payload_text, "X");
    EXPECT_TRUE(replaced.ok());
    EXPECT_TRUE(replaced->has_value());
    return **replaced;
  }

  fs::path dir_;
  std::unique_ptr<PayloadReferences> refs_;
};

const std::string kLarge = R"({"data":")" + std::string(4000, 'z') + R"(","n":1.50})";

TEST_F(PayloadRefTest, SmallPayloadsStayInTheEnvelope) {
  PayloadReferences::Outputs outputs(*refs_, "X", std::nullopt);
  auto replaced = outputs.replace(R"({"small":true})", "X");
  ASSERT_TRUE(replaced.ok());
  EXPECT_FALSE(replaced->has_value());
  EXPECT_EQ(object_count(), 0u);
}

TEST_F(PayloadRefTest, LargePayloadIsStoredAndResolvedByteForByte) {
  std::string reference = stored_reference(kLarge);
  EXPECT_EQ(object_count(), 1u);
  auto parsed = payload::parse_reference(reference);
  ASSERT_TRUE(parsed && *parsed);
  EXPECT_EQ((*parsed)->size_bytes, kLarge.size());
  EXPECT_EQ((*parsed)->url, refs_->store().url() + "/objects/" + payload::sha256_hex(kLarge));

  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  ASSERT_TRUE(in.ok());
  PayloadReferences::Input input = refs_->resolve(*in, body);
  ASSERT_EQ(input.status, PayloadReferences::InputStatus::kResolved) << input.message;
  EXPECT_EQ(input.body, envelope_with(kLarge));
}

TEST_F(PayloadRefTest, MissingObjectIsUnavailableNamingTheReference) {
  std::string reference = stored_reference(kLarge);
  fs::remove(dir_ / "objects" / payload::sha256_hex(kLarge));
  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs_->resolve(*in, body);
  EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable);
  EXPECT_NE(input.message.find(payload::sha256_hex(kLarge)), std::string::npos) << input.message;

  Router router(options_for("b"));
  auto delivery = delivery_of(body);
  Decision d = unresolved_decision(router, *in, delivery, input);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  auto payload = obj(d.sends[0].body)["payload"].as_object();
  EXPECT_EQ(payload["error"].as_string(), "payload_unavailable");
  // The reference travels in the details (message) and as the original payload.
  EXPECT_NE(
      std::string(payload["details"].as_object()["message"].as_string()).find(refs_->store().url()),
      std::string::npos);
  EXPECT_TRUE(payload["original_payload"].as_object().contains("asya-payload-ref"));
}

// payload/hold_renewer.hpp: a resolved input renews its hold until its renewal is dropped, and a
// decision made before the call (the input goes to error-end or is nacked) carries the renewal.
TEST_F(PayloadRefTest, AnInputKeepsItsHoldRenewedAndAnEarlyDecisionCarriesTheRenewal) {
  payload::PayloadStoreOptions options;
  options.url = "file://" + dir_.string();
  refs_ = std::make_unique<PayloadReferences>(payload::make_payload_store(options), kThreshold,
                                              std::chrono::milliseconds(10));
  std::string reference = stored_reference(kLarge);
  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs_->resolve(*in, body);
  ASSERT_EQ(input.status, PayloadReferences::InputStatus::kResolved) << input.message;
  ASSERT_NE(input.renewal, nullptr);
  const fs::path hold = dir_ / payload::hold_key(payload::sha256_hex(kLarge), "X");
  const auto written = fs::last_write_time(hold);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (fs::last_write_time(hold) == written && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_NE(fs::last_write_time(hold), written) << "the hold of an input in flight was not renewed";

  fs::remove(dir_ / "objects" / payload::sha256_hex(kLarge));  // the next copy finds it missing
  Router router(options_for("b"));
  auto delivery = delivery_of(body);
  auto copy = envelope::parse(delivery.body);  // views into the delivery, as in the sidecar
  ASSERT_TRUE(copy.ok());
  PayloadReferences::Input missing;
  std::optional<PayloadReferences::Outputs> offload;
  auto early = refs_->prepare(router, *copy, delivery, missing, offload);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->sends.at(0).queue, "asya-error-end");
  EXPECT_NE(early->input_hold, nullptr);
}

TEST_F(PayloadRefTest, ChangedObjectIsAMismatchNotAPayload) {
  std::string reference = stored_reference(kLarge);
  std::string tampered = kLarge;
  tampered[20] = 'y';  // same size, other bytes
  std::ofstream(dir_ / "objects" / payload::sha256_hex(kLarge), std::ios::trunc) << tampered;
  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs_->resolve(*in, body);
  EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable);
  EXPECT_NE(input.message.find("does not match"), std::string::npos) << input.message;
  EXPECT_TRUE(input.body.empty());
}

TEST_F(PayloadRefTest, ReferenceToAnotherStoreIsUnavailable) {
  std::string reference = payload::Reference{"s3://elsewhere/objects/" + std::string(64, 'a'), 5,
                                             std::string(64, 'a'), ""}
                              .json();
  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs_->resolve(*in, body);
  EXPECT_EQ(input.status, PayloadReferences::InputStatus::kUnavailable);
  EXPECT_NE(input.message.find("not in this sidecar's payload store"), std::string::npos);
}

TEST_F(PayloadRefTest, PassThroughReusesTheInputReferenceWithoutWriting) {
  std::string reference = stored_reference(kLarge);
  auto stat_before = fs::last_write_time(dir_ / "objects" / payload::sha256_hex(kLarge));
  std::string body = envelope_with(reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs_->resolve(*in, body);
  ASSERT_EQ(input.status, PayloadReferences::InputStatus::kResolved);

  Router router(options_for("b"));
  PayloadReferences::Outputs outputs(*refs_, in->id, input.reference);
  // The handler returned exactly its input: one result continuing the route.
  std::string response =
      R"([{"payload":)" + kLarge + R"(,"route":{"actors":["a","b","c"],"current":2}}])";
  auto delivery = delivery_of(body);
  Decision d = router.after_runtime(*in, delivery, ok(), response, false, &outputs);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-c");
  auto out = obj(d.sends[0].body);
  EXPECT_TRUE(
      SameObjectOwnToken(refs_->store(), boost::json::serialize(out["payload"]), reference));
  EXPECT_EQ(out["headers"].as_object()["h"].as_int64(), 1);
  EXPECT_EQ(out["id"].as_string(), "X");
  EXPECT_EQ(object_count(), 1u);
  EXPECT_EQ(fs::last_write_time(dir_ / "objects" / payload::sha256_hex(kLarge)), stat_before);
}

// PROTOCOL §3/§10: a "payload_unchanged" answer to a referenced input forwards the reference:
// nothing hashed, compared or written (but each output's hold token); a fan-out child gets its own
// hold.
TEST_F(PayloadRefTest, UnchangedAnswerForwardsTheInputReferenceWithoutWriting) {
  std::string reference = stored_reference(kLarge);
  auto written_at = fs::last_write_time(dir_ / "objects" / payload::sha256_hex(kLarge));
  auto delivery = delivery_of(envelope_with(reference));
  auto in = envelope::parse(delivery.body);  // views into the delivery, as in the sidecar
  ASSERT_TRUE(in.ok());
  Router router(options_for("b"));
  PayloadReferences::Input input;
  std::optional<PayloadReferences::Outputs> offload;
  ASSERT_FALSE(refs_->prepare(router, *in, delivery, input, offload).has_value());
  const std::size_t holds_before = refs_->store().list("holds/")->size();
  std::string unchanged =
      R"({"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}})";
  Decision d = router.after_runtime(*in, delivery, ok(), "[" + unchanged + "," + unchanged + "]",
                                    false, &*offload);
  ASSERT_EQ(d.sends.size(), 2u) << d.failure_message;
  for (const auto& send : d.sends)
    EXPECT_TRUE(SameObjectOwnToken(refs_->store(),
                                   boost::json::serialize(obj(send.body)["payload"]), reference))
        << send.body;
  EXPECT_NE(obj(d.sends[0].body)["payload"], obj(d.sends[1].body)["payload"]);  // two tokens
  EXPECT_EQ(object_count(), 1u);
  EXPECT_EQ(fs::last_write_time(dir_ / "objects" / payload::sha256_hex(kLarge)), written_at);
  // Output 0 keeps the input's id (already held); the child X-1-1 is held for itself; each
  // output's token is held.
  EXPECT_EQ(refs_->store().list("holds/")->size(), holds_before + 3);
}

TEST_F(PayloadRefTest, UnchangedAnswerToALargeInlineInputIsStoredOnce) {
  auto delivery = delivery_of(envelope_with(kLarge));
  auto in = envelope::parse(delivery.body);
  ASSERT_TRUE(in.ok());
  Router router(options_for("b"));
  PayloadReferences::Input input;
  std::optional<PayloadReferences::Outputs> offload;
  ASSERT_FALSE(refs_->prepare(router, *in, delivery, input, offload).has_value());
  Decision d = router.after_runtime(
      *in, delivery, ok(),
      R"([{"payload_unchanged":true,"route":{"actors":["a","b","c"],"current":2}}])", false,
      &*offload);
  ASSERT_EQ(d.sends.size(), 1u) << d.failure_message;
  auto reference =
      payload::parse_reference(boost::json::serialize(obj(d.sends[0].body)["payload"]));
  ASSERT_TRUE(reference && *reference);
  EXPECT_EQ((*reference)->sha256, payload::sha256_hex(kLarge));
  EXPECT_EQ(object_count(), 1u);
}

TEST_F(PayloadRefTest, FanOutStoresEachDistinctPayloadOnceAndHoldsItPerChild) {
  Router router(options_for("b"));
  std::string body = envelope_with(R"({"small":1})");
  auto in = envelope::parse(body);
  PayloadReferences::Outputs outputs(*refs_, in->id, std::nullopt);
  std::string other = R"({"data":")" + std::string(3000, 'q') + R"("})";
  std::string route = R"(,"route":{"actors":["a","b","c"],"current":2}})";
  std::string response = std::string("[") + R"({"payload":)" + kLarge + route + "," +
                         R"({"payload":)" + kLarge + route + "," + R"({"payload":)" + other +
                         route + "]";
  auto delivery = delivery_of(body);
  Decision d = router.after_runtime(*in, delivery, ok(), response, false, &outputs);
  ASSERT_EQ(d.sends.size(), 3u);
  EXPECT_EQ(object_count(), 2u);
  // Every child holds its object, so each one's end releases only its own hold; and each
  // output's hold token holds it until that output is consumed.
  EXPECT_EQ(refs_->store().list("holds/")->size(), 6u);
  for (const auto& send : d.sends)
    EXPECT_TRUE(obj(send.body)["payload"].as_object().contains("asya-payload-ref"));
}

// A store that counts the objects written, around a file store.
class CountingStore : public payload::PayloadStore {
 public:
  explicit CountingStore(std::unique_ptr<payload::PayloadStore> inner) : inner_(std::move(inner)) {}
  Status put(std::string_view key, std::string_view bytes) override {
    if (key.starts_with("objects/")) ++objects_written;
    return inner_->put(key, bytes);
  }
  Result<std::string> put_object(std::string_view bytes,
                                 const BeforeVisible& before_visible) override {
    ++objects_written;
    return inner_->put_object(bytes, before_visible);
  }
  Status read(std::string_view key, std::string& out) override { return inner_->read(key, out); }
  Result<bool> exists(std::string_view key) override { return inner_->exists(key); }
  Status remove(std::string_view key) override { return inner_->remove(key); }
  Result<std::vector<payload::StoredObject>> list(std::string_view prefix) override {
    return inner_->list(prefix);
  }
  std::string url() const override { return inner_->url(); }

  int objects_written = 0;

 private:
  std::unique_ptr<payload::PayloadStore> inner_;
};

// Outputs of a few MB (the file store hashes them while it writes them, so their digests are not
// known beforehand): equal payloads of one message are still written once, and a payload of the
// input's size that differs from it is stored under its own digest.
TEST_F(PayloadRefTest, LargeEqualOutputsAreWrittenOnceAndADifferentOneOfTheInputSizeIsStored) {
  payload::PayloadStoreOptions options;
  options.url = "file://" + dir_.string();
  auto counting = std::make_unique<CountingStore>(payload::make_payload_store(options));
  CountingStore& store = *counting;
  PayloadReferences refs(std::move(counting), kThreshold);
  const std::string big = R"({"data":")" + std::string(2 << 20, 'm') + R"("})";
  std::string changed = big;
  changed[100] = 'n';
  // The input: `big` by reference, resolved into memory.
  std::string input_reference;
  {
    PayloadReferences::Outputs first(refs, "X", std::nullopt);
    input_reference = **first.replace(big, "X");
  }
  ASSERT_EQ(store.objects_written, 1);
  std::string body = envelope_with(input_reference);
  auto in = envelope::parse(body);
  PayloadReferences::Input input = refs.resolve(*in, body);
  ASSERT_EQ(input.status, PayloadReferences::InputStatus::kResolved);
  PayloadReferences::Outputs outputs(refs, in->id, input.reference);
  outputs.set_input_payload(input.payload);
  Router router(options_for("b"));
  std::string route = R"(,"route":{"actors":["a","b","c"],"current":2}})";
  std::string response = std::string("[") + R"({"payload":)" + changed + route + "," +
                         R"({"payload":)" + changed + route + "," + R"({"payload":)" + big + route +
                         "]";
  auto delivery = delivery_of(body);
  Decision d = router.after_runtime(*in, delivery, ok(), response, false, &outputs);
  ASSERT_EQ(d.sends.size(), 3u);
  EXPECT_EQ(store.objects_written, 2);  // `changed` once; `big` is the input's object
  EXPECT_EQ(object_count(), 2u);
  const std::string changed_sha = payload::sha256_hex(changed);
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(obj(d.sends[i].body)["payload"]
                  .as_object()["asya-payload-ref"]
                  .as_object()["sha256"]
                  .as_string(),
              changed_sha.c_str());
  EXPECT_TRUE(SameObjectOwnToken(store, boost::json::serialize(obj(d.sends[2].body)["payload"]),
                                 input_reference));
  std::string stored;
  ASSERT_TRUE(store.read(payload::object_key(changed_sha), stored).ok());
  EXPECT_TRUE(stored == changed);
  // Every output holds its object: X holds `big` (as a's output and b's input: one record) and
  // `changed` (output 0), the two children one each; and a's output and the three outputs have a
  // hold token each.
  EXPECT_EQ(store.list("holds/")->size(), 8u);
}

// docs/protocol.md §10 "Outputs waiting in a queue": the sidecar that consumed a message (acked
// it) releases its reference's hold token, on the renewer's thread; a retry carries it on.
TEST_F(PayloadRefTest, AConsumedInputReleasesItsHoldTokenUnlessARetryCarriesIt) {
  auto token_of = [](const std::string& reference) {
    return (*payload::parse_reference(reference))->hold;
  };
  const std::string retried = stored_reference(kLarge);
  const std::string consumed = stored_reference(R"({"other":")" + std::string(3000, 'o') + "\"}");
  ASSERT_NE(token_of(retried), token_of(consumed));
  const std::string retried_body = envelope_with(retried);
  const std::string consumed_body = envelope_with(consumed);
  auto retried_in = envelope::parse(retried_body);
  auto consumed_in = envelope::parse(consumed_body);
  Decision retry;
  Outgoing again;
  again.type = MessageType::kRetry;
  retry.sends.push_back(again);
  refs_->consumed(*retried_in, retry);
  refs_->consumed(*consumed_in, Decision{});  // released after the retried one would be
  const fs::path released = dir_ / payload::release_key(token_of(consumed));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(released) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(fs::exists(released));
  EXPECT_FALSE(fs::exists(dir_ / payload::release_key(token_of(retried))));
}

// docs/protocol.md §10 "Two queue entries of one publish": a second entry of a message whose token
// was released (a copy of it was consumed) finds its object swept: acknowledged, nothing sent.
// Read whole and streamed from its file alike; a damaged object or an unreleased token still
// goes to error-end.
TEST_F(PayloadRefTest, AMissingObjectOfAReleasedTokenIsACopyOfAConsumedMessage) {
  const std::string reference = stored_reference(kLarge);
  const std::string token = (*payload::parse_reference(reference))->hold;
  const std::string body = envelope_with(reference);
  Router router(options_for("b"));
  auto decide = [&](bool allow_stream) {
    auto delivery = delivery_of(body);
    auto in = envelope::parse(delivery.body);
    EXPECT_TRUE(in.ok());
    PayloadReferences::Input input;
    std::optional<PayloadReferences::Outputs> offload;
    auto early = refs_->prepare(router, *in, delivery, input, offload, allow_stream);
    EXPECT_TRUE(early.has_value());
    return early ? std::move(*early) : Decision{};
  };
  fs::remove(dir_ / "objects" / payload::sha256_hex(kLarge));
  for (bool stream : {false, true}) {  // not released yet: the only copy, so it failed
    Decision d = decide(stream);
    EXPECT_FALSE(d.consumed_copy);
    ASSERT_EQ(d.sends.size(), 1u);
    EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  }
  ASSERT_TRUE(payload::release_token(refs_->store(), token).ok());  // a copy was consumed
  for (bool stream : {false, true}) {
    Decision d = decide(stream);
    EXPECT_TRUE(d.consumed_copy) << "streamed " << stream;
    EXPECT_TRUE(d.sends.empty());
    EXPECT_EQ(d.then, Then::kAck);
    EXPECT_FALSE(d.failure);
    // Its token's release is there already: nothing more is written for it.
    auto in = envelope::parse(body);
    refs_->consumed(*in, d);
  }
  // A damaged object is not a swept one: payload_unavailable whatever the token says.
  std::ofstream(dir_ / "objects" / payload::sha256_hex(kLarge), std::ios::trunc)
      << std::string(kLarge.size(), 'd');
  Decision damaged = decide(false);
  EXPECT_FALSE(damaged.consumed_copy);
  ASSERT_EQ(damaged.sends.size(), 1u);
  EXPECT_EQ(damaged.sends[0].queue, "asya-error-end");
}

TEST_F(PayloadRefTest, StoreFailureNacksTheInput) {
  fs::remove_all(dir_);
  std::ofstream(dir_) << "a file where the store's directory was";
  Router router(options_for("b"));
  std::string body = envelope_with(R"({"small":1})");
  auto in = envelope::parse(body);
  PayloadReferences::Outputs outputs(*refs_, in->id, std::nullopt);
  std::string response =
      R"([{"payload":)" + kLarge + R"(,"route":{"actors":["a","b","c"],"current":2}}])";
  auto delivery = delivery_of(body);
  Decision d = router.after_runtime(*in, delivery, ok(), response, false, &outputs);
  EXPECT_TRUE(d.sends.empty());
  EXPECT_EQ(d.then, Then::kNack);
  EXPECT_EQ(d.failure, FailureCode::kPayloadStoreError);
  fs::remove(dir_);
}

}  // namespace
}  // namespace asya::sidecar
