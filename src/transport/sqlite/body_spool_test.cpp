// The SQLite transport's body spool (body_spool.hpp): an answer appended to a spool and finished
// into a message is received byte for byte as the parts joined, from the spool's own file (no
// second body file), never with the spaces the file starts with; a spool that cannot be finished
// is sent from its parts as usual and its file goes with it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "transport/sqlite/body_spool.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string pattern(std::uint64_t seed, std::size_t size) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>('a' + random() % 26);
  return bytes;
}

std::vector<fs::path> body_files(const SqliteSettings& settings) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(settings.path + ".bodies", ec), end; !ec && it != end;
       it.increment(ec))
    out.push_back(it->path());
  return out;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An answer as a runtime gives it, `payload` inside, appended to `spool` in pieces of `step`.
std::string_view spool_answer(BodySpool& spool, const std::string& answer, std::size_t step) {
  EXPECT_TRUE(spool.restart().ok());
  for (std::size_t at = 0; at < answer.size(); at += step)
    EXPECT_TRUE(spool.append(std::string_view(answer).substr(at, step)).ok());
  auto contents = spool.contents();
  EXPECT_TRUE(contents.ok());
  return contents.ok() ? *contents : std::string_view();
}

Result<std::string> send_and_receive(Transport& t, std::span<const std::string_view> parts,
                                     BodySpool* spool) {
  OutgoingMessage message{"asya-out", {}, 0ms};
  message.parts = parts;
  message.spool = spool;
  std::vector<Status> sent = t.send_many(std::span(&message, 1));
  if (!sent.at(0)) return sent.at(0).error();
  auto got = t.receive("asya-out", 1, 5s);
  if (!got.ok() || got->size() != 1u) return Error{"nothing received"};
  std::string body = got->front().body;
  if (Status acked = t.ack(got->front()); !acked) return acked.error();
  return body;
}

TEST(SqliteBodySpool, AFinishedSpoolIsTheMessagesOnlyBodyFileAndIsReceivedWithoutItsSpaces) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  // Sizes around the 8 MiB step and the page size; heads short and long.
  for (std::size_t size : {std::size_t{3} << 20, (std::size_t{8} << 20) + 4093}) {
    for (std::size_t head_size : {std::size_t{20}, std::size_t{60000}}) {
      const std::string payload = pattern(size, size);
      const std::string answer = "[{\"payload\":" + payload + ",\"x\":1}]";
      auto spool = t->open_body_spool(3u << 20);
      ASSERT_NE(spool, nullptr);
      std::string_view contents = spool_answer(*spool, answer, 1 << 20);
      ASSERT_EQ(contents, answer);
      const std::string head = "{\"id\":\"" + std::string(head_size - 20, 'i') + "\",\"payload\":";
      std::string_view parts[] = {head, contents.substr(12, payload.size()), "}"};
      OutgoingMessage message{"asya-out", {}, 0ms};
      message.parts = parts;
      message.spool = spool.get();
      ASSERT_TRUE(t->send_many(std::span(&message, 1)).at(0).ok());
      // The spool's file is the body: no other file, spaces before the head on disk.
      auto files = body_files(settings);
      ASSERT_EQ(files.size(), 1u);
      EXPECT_TRUE(files[0].string().ends_with(".spooled.body")) << files[0];
      const std::string raw = file_bytes(files[0]);
      const std::string joined = head + payload + "}";
      ASSERT_GE(raw.size(), joined.size());
      EXPECT_EQ(raw.find_first_not_of(' '), raw.size() - joined.size());
      EXPECT_TRUE(raw.ends_with(joined));
      // Received without the spaces, also after the spool (and its mapping) is gone.
      spool.reset();
      auto got = t->receive("asya-out", 1, 5s);
      ASSERT_TRUE(got.ok() && got->size() == 1u);
      EXPECT_EQ(got->front().body.size(), joined.size());
      EXPECT_TRUE(got->front().body == joined);
      // Kept with a descriptor of its file, the body starting after the spaces in it.
      const DeliveryBody& body = got->front().body;
      ASSERT_GE(body.file_fd(), 0);
      EXPECT_EQ(body.file_offset(), raw.size() - joined.size());
      std::string head_read(head.size(), '\0');
      ASSERT_EQ(::pread(body.file_fd(), head_read.data(), head.size(),
                        static_cast<off_t>(body.file_offset())),
                static_cast<ssize_t>(head.size()));
      EXPECT_EQ(head_read, head);
      ASSERT_TRUE(t->ack(got->front()).ok());
      EXPECT_TRUE(body_files(settings).empty()) << "the ack left the body file";
    }
  }
}

TEST(SqliteBodySpool, ASpoolThatCannotBeFinishedIsSentFromItsPartsAndRemoved) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  const std::string payload = pattern(7, 2u << 20);
  const std::string answer = "[" + payload + "]";
  const std::string elsewhere = payload;  // the same bytes, not in the spool
  const std::string huge_head(sqlite::SqliteBodySpool::kReserve + 2, 'h');
  struct Case {
    std::string head;
    bool payload_in_spool;
  };
  std::vector<Case> cases = {{"{\"p\":", false}, {" {\"p\":", true}, {"", true}, {huge_head, true}};
  for (const Case& c : cases) {
    auto spool = t->open_body_spool(3u << 20);
    ASSERT_NE(spool, nullptr);
    std::string_view contents = spool_answer(*spool, answer, 1 << 16);
    std::string_view parts[] = {
        c.head,
        c.payload_in_spool ? contents.substr(1, payload.size()) : std::string_view(elsewhere), "}"};
    auto got = send_and_receive(*t, parts, spool.get());
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_TRUE(*got == c.head + payload + "}") << "head of " << c.head.size() << " bytes";
    spool.reset();
    EXPECT_TRUE(body_files(settings).empty()) << "head of " << c.head.size() << " bytes";
  }
}

TEST(SqliteBodySpool, ASpoolIsFinishedOnceASecondSendWritesItsOwnFile) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  const std::string payload = pattern(8, 2u << 20);
  const std::string answer = "[" + payload + "]";
  auto spool = t->open_body_spool(3u << 20);
  ASSERT_NE(spool, nullptr);
  std::string_view contents = spool_answer(*spool, answer, 1 << 20);
  std::string_view parts[] = {"{\"p\":", contents.substr(1, payload.size()), "}"};
  for (int i = 0; i < 2; ++i) {
    OutgoingMessage message{"asya-out", {}, 0ms};
    message.parts = parts;
    message.spool = spool.get();
    ASSERT_TRUE(t->send_many(std::span(&message, 1)).at(0).ok());
  }
  EXPECT_EQ(body_files(settings).size(), 2u);
  for (int i = 0; i < 2; ++i) {
    auto got = t->receive("asya-out", 1, 5s);
    ASSERT_TRUE(got.ok() && got->size() == 1u);
    EXPECT_TRUE(got->front().body == "{\"p\":" + payload + "}") << "message " << i;
    ASSERT_TRUE(t->ack(got->front()).ok());
  }
  spool.reset();
  EXPECT_TRUE(body_files(settings).empty());
}

TEST(SqliteBodySpool, AnUnusedSpoolLeavesNoFileAndBodiesKeptInTheDatabaseGetNoSpool) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  {
    auto t = make_sqlite_transport(Options{}, settings);
    auto spool = t->open_body_spool(3u << 20);
    ASSERT_NE(spool, nullptr);
    spool_answer(*spool, pattern(9, 3u << 20), 1 << 20);
    EXPECT_EQ(body_files(settings).size(), 1u);
    spool.reset();
    EXPECT_TRUE(body_files(settings).empty());
  }
  settings.file_body_bytes = 0;
  auto t = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(t->open_body_spool(3u << 20), nullptr);
  settings.file_body_bytes = 4u << 20;  // kept in the database up to 4 MiB: no spool for 3 MiB
  auto t4 = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(t4->open_body_spool(3u << 20), nullptr);
  EXPECT_NE(t4->open_body_spool(5u << 20), nullptr);
}

}  // namespace
}  // namespace asya::transport
