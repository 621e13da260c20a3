// Bodies given in parts (OutgoingMessage::parts, the sidecar's large outputs): the SQLite
// transport writes a body file from the parts without joining them, and what a receiver gets is
// byte for byte the parts joined, for body files and for bodies kept in the database, at every
// size around the 8 MiB write chunk and with more parts than one gathered write takes.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string pattern(std::uint64_t seed, std::size_t size) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

std::size_t body_files(const SqliteSettings& settings) {
  std::error_code ec;
  std::size_t count = 0;
  for (fs::directory_iterator it(settings.path + ".bodies", ec), end; !ec && it != end;
       it.increment(ec))
    ++count;
  return count;
}

// Sends `parts` with send_many and receives it back; returns the received body.
std::string round_trip(Transport& t, const std::vector<std::string>& parts) {
  std::vector<std::string_view> views(parts.begin(), parts.end());
  OutgoingMessage message{"asya-parts", {}, 0ms};
  message.parts = views;
  EXPECT_EQ(message.size(), message.joined().size());
  std::vector<Status> sent = t.send_many(std::span(&message, 1));
  EXPECT_TRUE(sent.at(0).ok()) << sent.at(0).message();
  auto got = t.receive("asya-parts", 1, 5s);
  EXPECT_TRUE(got.ok() && got->size() == 1u);
  if (!got.ok() || got->empty()) return {};
  std::string body = got->front().body;
  EXPECT_TRUE(t.ack(got->front()).ok());
  return body;
}

TEST(SqliteParts, ABodyInPartsIsReceivedAsThePartsJoinedInFilesAndInTheDatabase) {
  constexpr std::size_t kChunk = 8u << 20;
  // A head, a payload and a tail as the sidecar gives them, at sizes around the write chunk;
  // empty parts; and more parts than one gathered write holds (16).
  std::vector<std::vector<std::string>> cases = {
      {"{\"id\":\"a\",\"payload\":", pattern(1, 3u << 20), "}"},
      {"{\"h\":", pattern(2, kChunk - 5), "}"},
      {"{\"h\":", pattern(3, kChunk), "}"},
      {std::string(100, 'h'), pattern(4, 2 * kChunk + 17), "}"},
      {"", pattern(5, 2u << 20), "", "}", ""},
      {"small", "", "body"},
  };
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) many.push_back(pattern(100 + i, 100000 + i));
  cases.push_back(many);
  for (std::size_t file_body_bytes : {std::size_t{1} << 20, std::size_t{0}}) {
    test::TempDir dir;
    SqliteSettings settings = dir.settings();
    settings.file_body_bytes = file_body_bytes;
    auto t = make_sqlite_transport(Options{}, settings);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      std::string joined;
      for (const std::string& part : cases[i]) joined += part;
      const std::string got = round_trip(*t, cases[i]);
      EXPECT_EQ(got.size(), joined.size()) << "case " << i << ", threshold " << file_body_bytes;
      EXPECT_TRUE(got == joined) << "case " << i << " differs, threshold " << file_body_bytes;
    }
    EXPECT_EQ(body_files(settings), 0u) << "the acks left body files behind";
  }
}

TEST(SqliteParts, TheLimitCountsEveryPartAndARefusedBodyLeavesNoFile) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  Options options;
  options.max_message_bytes = 3u << 20;
  auto t = make_sqlite_transport(options, settings);
  const std::string payload = pattern(9, 3u << 20);
  std::string_view views[] = {"{\"payload\":", payload, "}"};
  OutgoingMessage message{"asya-parts", {}, 0ms};
  message.parts = views;
  std::vector<Status> sent = t->send_many(std::span(&message, 1));
  ASSERT_FALSE(sent.at(0).ok());
  EXPECT_TRUE(sent.at(0).message().starts_with("message_too_large:")) << sent.at(0).message();
  EXPECT_NE(sent.at(0).message().find(std::to_string(payload.size() + 12)), std::string::npos)
      << sent.at(0).message();
  EXPECT_EQ(body_files(settings), 0u);
  auto stats = t->stats("asya-parts");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready, 0u);
}

// The one step (outputs and ack in one transaction) declines a body in parts, so the caller sends
// it the ordinary way (its body file first); nothing is sent or acked by the declined call.
TEST(SqliteParts, SendThenAckDeclinesABodyInParts) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->send("asya-in", "{\"id\":\"i\"}").ok());
  auto in = t->receive("asya-in", 1, 5s);
  ASSERT_TRUE(in.ok() && in->size() == 1u);
  std::string_view views[] = {"{\"a\":", "1", "}"};
  OutgoingMessage message{"asya-out", {}, 0ms};
  message.parts = views;
  EXPECT_FALSE(t->send_then_ack(std::span(&message, 1), in->front()).has_value());
  auto out = t->stats("asya-out");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->ready, 0u);
  ASSERT_TRUE(t->ack(in->front()).ok()) << "the declined call acked the input";
  EXPECT_TRUE(t->sends_parts());
}

}  // namespace
}  // namespace asya::transport
