// Outputs kept in parts (body_parts.hpp): after_runtime leaves a large payload where the answer
// holds it, the parts joined are byte for byte the envelope built whole, hold_answer keeps the
// answer alive past the worker's next use of its buffer, and settle() sends the same bytes to a
// transport that takes parts and to one that does not.
#include "sidecar/body_parts.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "envelope/envelope.hpp"
#include "sidecar/fake_transport.hpp"
#include "sidecar/router.hpp"
#include "sidecar/router_test_support.hpp"
#include "wire/runtime_client.hpp"

namespace asya::sidecar {
namespace {

using namespace router_test;
using testing::FakeTransport;

// A payload of `size` bytes as a JSON string, and an answer of `fan_out` results carrying it
// (the second result also has its own headers).
std::string big_payload(std::size_t size) {
  std::string text(size, 'p');
  for (std::size_t i = 0; i < size; i += 97) text[i] = static_cast<char>('a' + i % 26);
  return "\"" + text + "\"";
}
std::string answer(const std::string& payload, int fan_out = 1) {
  std::string out = "[";
  for (int i = 0; i < fan_out; ++i) {
    if (i > 0) out += ",";
    out += R"({"payload":)" + payload + R"(,"route":{"actors":["a","b","c"],"current":2})" +
           (i == 1 ? R"(,"headers":{"own":"h"})" : "") + "}";
  }
  return out + "]";
}

// The answer in a FrameBuffer, as the runtime client leaves it (padded: parsed in place).
void fill(wire::FrameBuffer& buffer, const std::string& text) {
  buffer.assign(text);
}

TEST(BodyParts, ALargeOutputIsKeptInPartsThatJoinToTheEnvelopeBuiltWhole) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  ASSERT_TRUE(parsed.ok());
  for (int fan_out : {1, 3}) {
    const std::string text = answer(big_payload(3u << 20), fan_out);
    wire::FrameBuffer whole_buffer, parts_buffer;
    fill(whole_buffer, text);
    fill(parts_buffer, text);
    Decision whole = router.after_runtime(*parsed, delivery, ok(), whole_buffer.view(), true);
    Decision parts = router.after_runtime(*parsed, delivery, ok(), parts_buffer.view(), true,
                                          nullptr, /*parts_above=*/1u << 20);
    ASSERT_EQ(whole.sends.size(), static_cast<std::size_t>(fan_out));
    ASSERT_EQ(parts.sends.size(), whole.sends.size());
    for (std::size_t i = 0; i < whole.sends.size(); ++i) {
      ASSERT_FALSE(whole.sends[i].parts.has_value());
      ASSERT_TRUE(parts.sends[i].parts.has_value()) << "output " << i;
      EXPECT_TRUE(parts.sends[i].body.empty());
      // The payload is not copied: it points into the answer.
      const BodyParts& p = *parts.sends[i].parts;
      EXPECT_GE(p.payload.data(), parts_buffer.data());
      EXPECT_LE(p.payload.data() + p.payload.size(), parts_buffer.data() + parts_buffer.size());
      EXPECT_EQ(parts.sends[i].body_size(), whole.sends[i].body.size());
      EXPECT_TRUE(p.joined() == whole.sends[i].body) << "output " << i << " differs";
      EXPECT_EQ(parts.sends[i].queue, whole.sends[i].queue);
      EXPECT_EQ(parts.sends[i].id, whole.sends[i].id);
    }
  }
}

TEST(BodyParts, PayloadsAtOrBelowTheLimitAndDecisionsWithoutItAreBuiltWhole) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  const std::string payload = big_payload(4000);
  Decision at_limit = router.after_runtime(*parsed, delivery, ok(), answer(payload), false, nullptr,
                                           /*parts_above=*/payload.size());
  ASSERT_EQ(at_limit.sends.size(), 1u);
  EXPECT_FALSE(at_limit.sends[0].parts.has_value());
  EXPECT_EQ(envelope::parse(at_limit.sends[0].body)->payload_raw, payload);
  Decision off = router.after_runtime(*parsed, delivery, ok(), answer(payload), false, nullptr, 0);
  EXPECT_FALSE(off.sends[0].parts.has_value());
}

TEST(BodyParts, AnOutputInPartsOverTheTransportLimitGoesToErrorEnd) {
  RouterOptions o = options_for("b");
  o.max_message_bytes = 2u << 20;
  Router router(o);
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  Decision d = router.after_runtime(*parsed, delivery, ok(), answer(big_payload(3u << 20)), false,
                                    nullptr, 1u << 20);
  ASSERT_EQ(d.sends.size(), 1u);
  EXPECT_EQ(d.sends[0].queue, "asya-error-end");
  EXPECT_FALSE(d.sends[0].parts.has_value());
  EXPECT_EQ(obj(d.sends[0].body)["payload"].at("error"), "message_too_large");
}

TEST(BodyParts, HoldAnswerKeepsThePayloadAfterTheWorkerReusesItsBuffer) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  const std::string text = answer(big_payload(2u << 20), 2);
  wire::FrameBuffer scratch;
  fill(scratch, text);
  Decision expected = router.after_runtime(*parsed, delivery, ok(), text);
  Decision d = router.after_runtime(*parsed, delivery, ok(), scratch.view(), true, nullptr, 1024);
  const char* storage = scratch.data();
  hold_answer(d, scratch);
  EXPECT_EQ(scratch.data(), nullptr) << "the answer stayed in the worker's buffer";
  EXPECT_EQ(scratch.capacity(), 0u);
  ASSERT_TRUE(d.sends[0].parts && d.sends[1].parts);
  EXPECT_EQ(d.sends[0].parts->owner, d.sends[1].parts->owner) << "one owner for both outputs";
  EXPECT_EQ(d.sends[0].parts->payload.data() > storage, true);
  // The worker's next message fills its buffer again; the decision's bytes stay as they were.
  fill(scratch, std::string(text.size(), 'X'));
  for (std::size_t i = 0; i < 2; ++i)
    EXPECT_TRUE(d.sends[i].parts->joined() == expected.sends[i].body) << "output " << i;

  // Without parts nothing moves.
  Decision small = router.after_runtime(*parsed, delivery, ok(), answer("1"));
  const char* before = scratch.data();
  hold_answer(small, scratch);
  EXPECT_EQ(scratch.data(), before);
}

TEST(BodyParts, SettleSendsTheSameBytesWithAndWithoutATransportThatTakesParts) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  const std::string text = answer(big_payload(2u << 20), 2);
  Decision expected = router.after_runtime(*parsed, delivery, ok(), text);
  // Step by step (send, then ack), in one step, and as a batch of two (settle_batch's send_many).
  for (bool one_step : {false, true}) {
    for (bool takes_parts : {true, false}) {
      FakeTransport t;
      t.parts = takes_parts;
      t.one_step = one_step;
      wire::FrameBuffer scratch;
      fill(scratch, text);
      Decision d =
          router.after_runtime(*parsed, delivery, ok(), scratch.view(), true, nullptr, 1024);
      hold_answer(d, scratch);
      Settlement s = router.settle(t, delivery, &*parsed, d);
      EXPECT_EQ(s.sent, 2u);
      EXPECT_TRUE(s.acked);
      ASSERT_EQ(t.sent.size(), 2u);
      for (std::size_t i = 0; i < 2; ++i)
        EXPECT_TRUE(t.sent[i].body == expected.sends[i].body)
            << "output " << i << ", one step " << one_step << ", parts " << takes_parts;
      // One step (SQLite: outputs and ack in one transaction) takes the outputs joined; the
      // ordinary path hands a transport that takes parts the parts.
      EXPECT_EQ(t.sent_in_parts, takes_parts && !one_step ? 2 : 0);
    }
  }
}

TEST(BodyParts, JoinPartsMakesTheBodyWholeForCodeThatRewritesIt) {
  Router router(options_for("b"));
  auto delivery = delivery_of(kInput);
  auto parsed = envelope::parse(delivery.body);
  const std::string text = answer(big_payload(2u << 20));
  Decision expected = router.after_runtime(*parsed, delivery, ok(), text);
  Decision d = router.after_runtime(*parsed, delivery, ok(), text, false, nullptr, 1024);
  ASSERT_TRUE(d.sends[0].parts.has_value());
  join_parts(d);
  EXPECT_FALSE(d.sends[0].parts.has_value());
  EXPECT_TRUE(d.sends[0].body == expected.sends[0].body);
}

}  // namespace
}  // namespace asya::sidecar
