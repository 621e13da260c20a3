#include "payload/reference.hpp"

#include <gtest/gtest.h>

namespace asya::payload {
namespace {

const std::string kSha(64, 'a');

TEST(Reference, JsonRoundTripsThroughParse) {
  Reference r{"file:///s/objects/" + kSha, 123, kSha, ""};
  std::string text = r.json();
  EXPECT_EQ(text, R"({"asya-payload-ref":{"url":"file:///s/objects/)" + kSha +
                      R"(","size":123,"sha256":")" + kSha + R"("}})");
  auto parsed = parse_reference(text);
  ASSERT_TRUE(parsed.has_value());
  ASSERT_TRUE(parsed->ok());
  EXPECT_EQ((*parsed)->url, r.url);
  EXPECT_EQ((*parsed)->size_bytes, 123u);
  EXPECT_EQ((*parsed)->sha256, kSha);
}

TEST(Reference, HoldTokenRoundTripsAndIsOptional) {
  const std::string token(kHoldTokenHexDigits, 'c');
  Reference r{"file:///s/objects/" + kSha, 7, kSha, token};
  std::string text = r.json();
  EXPECT_EQ(text, R"({"asya-payload-ref":{"url":"file:///s/objects/)" + kSha +
                      R"(","size":7,"sha256":")" + kSha + R"(","hold":")" + token + R"("}})");
  auto parsed = parse_reference(text);
  ASSERT_TRUE(parsed.has_value() && parsed->ok());
  EXPECT_EQ((*parsed)->hold, token);
  // Written by older writers: no token.
  auto older =
      parse_reference(R"({"asya-payload-ref":{"url":"u","size":1,"sha256":")" + kSha + R"("}})");
  ASSERT_TRUE(older.has_value() && older->ok());
  EXPECT_TRUE((*older)->hold.empty());
}

TEST(Reference, AHoldThatIsNotATokenIsMalformed) {
  // A rogue peer's "hold" names another message's records or garbage: the reference is refused
  // (payload_unavailable, with the field named), never used to release anything.
  const std::string too_long = "\"" + std::string(64, 'a') + "\"";
  for (std::string hold :
       {std::string(R"("")"), std::string(R"("ABCDEF0123456789ABCDEF0123456789")"),
        std::string(R"("../x")"), std::string("12"), std::string("null"), too_long}) {
    auto parsed = parse_reference(R"({"asya-payload-ref":{"url":"u","size":1,"sha256":")" + kSha +
                                  R"(","hold":)" + hold + "}}");
    ASSERT_TRUE(parsed.has_value()) << hold;
    ASSERT_FALSE(parsed->ok()) << hold;
    EXPECT_NE(parsed->error().message.find("hold: expected 32 lowercase hex digits"),
              std::string::npos)
        << parsed->error().message;
  }
}

TEST(Reference, OrdinaryPayloadsAreNotReferences) {
  EXPECT_FALSE(parse_reference(R"({"text":"hello"})").has_value());
  EXPECT_FALSE(parse_reference(R"([1,2,3])").has_value());
  EXPECT_FALSE(parse_reference(R"("asya-payload-ref")").has_value());
  // The key among others is user data, not a reference.
  EXPECT_FALSE(parse_reference(R"({"asya-payload-ref":{},"other":1})").has_value());
}

TEST(Reference, MalformedReferenceNamesTheField) {
  auto parsed =
      parse_reference(R"({"asya-payload-ref":{"url":"file:///s/x","size":1,"sha256":"zz"}})");
  ASSERT_TRUE(parsed.has_value());
  ASSERT_FALSE(parsed->ok());
  EXPECT_NE(parsed->error().message.find("sha256: expected 64 lowercase hex digits"),
            std::string::npos);
  parsed = parse_reference(R"({"asya-payload-ref": {"url": "u", "size": -1, "sha256": "x"}})");
  ASSERT_TRUE(parsed.has_value());
  ASSERT_FALSE(parsed->ok());
  EXPECT_NE(parsed->error().message.find("size"), std::string::npos);
}

TEST(Reference, ASizeNoFrameCanCarryIsMalformedNotAReservation) {
  // A hostile envelope's size must not reach a reader's reserve() (std::length_error killed the
  // end actor) nor overflow a streamed request's length.
  for (std::string size : {"4294967296", "9223372036854775808", "18446744073709551615"}) {
    auto parsed = parse_reference(R"({"asya-payload-ref":{"url":"file:///s/objects/)" + kSha +
                                  R"(","size":)" + size + R"(,"sha256":")" + kSha + R"("}})");
    ASSERT_TRUE(parsed.has_value()) << size;
    ASSERT_FALSE(parsed->ok()) << size;
    EXPECT_NE(parsed->error().message.find("size: " + size + " exceeds the largest payload"),
              std::string::npos)
        << parsed->error().message;
  }
  auto largest = parse_reference(R"({"asya-payload-ref":{"url":"u","size":4294967295,"sha256":")" +
                                 kSha + R"("}})");
  ASSERT_TRUE(largest.has_value() && largest->ok());
  EXPECT_EQ((*largest)->size_bytes, kMaxReferencedBytes);
}

TEST(Reference, KeyInStoreChecksStoreAndDigest) {
  Reference r{"s3://b/p/objects/" + kSha, 1, kSha, ""};
  auto key = key_in_store(r, "s3://b/p");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, "objects/" + kSha);
  auto other = key_in_store(r, "s3://b/q");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message.find("not in this sidecar's payload store s3://b/q"),
            std::string::npos);
  Reference wrong{"s3://b/p/objects/" + std::string(64, 'b'), 1, kSha, ""};
  EXPECT_FALSE(key_in_store(wrong, "s3://b/p").ok());
}

TEST(Reference, Sha256OfKnownText) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace asya::payload
