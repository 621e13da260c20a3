// PublishFrames (publish_frames.hpp): the frames of several publishes encoded by the transport
// and written with one sendmsg(). No broker needed: the bytes are read back from a socket pair
// and decoded with rabbitmq-c's own decoders. Publishing through a real broker with these frames
// is what every broker test of the transport does (tests/transport/test_rabbitmq.py).
#include "transport/rabbitmq/publish_frames.hpp"

#include <amqp_framing.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace asya::transport::rabbitmq {
namespace {

struct Frame {
  int type = 0;
  int channel = 0;
  std::string payload;
};

std::uint64_t get(const std::string& s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// Splits a byte stream into frames; fails the test on a wrong frame-end octet.
std::vector<Frame> frames_of(const std::string& bytes) {
  std::vector<Frame> out;
  std::size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_GE(bytes.size() - at, 8u) << "a truncated frame at " << at;
    if (bytes.size() - at < 8) break;
    Frame f;
    f.type = static_cast<int>(get(bytes, at, 1));
    f.channel = static_cast<int>(get(bytes, at + 1, 2));
    auto size = static_cast<std::size_t>(get(bytes, at + 3, 4));
    EXPECT_LE(at + 8 + size, bytes.size());
    f.payload = bytes.substr(at + 7, size);
    EXPECT_EQ(static_cast<unsigned char>(bytes[at + 7 + size]), AMQP_FRAME_END);
    out.push_back(std::move(f));
    at += 8 + size;
  }
  return out;
}

struct Publish {
  std::string exchange, routing_key, message_id, body;
  std::int64_t delivery_count = 0;  // the x-asya-delivery-count header, 0: none
  bool mandatory = true;
};

// Decodes the publishes of a stream (method, header, body frames) with rabbitmq-c's decoders.
std::vector<Publish> publishes_of(const std::string& bytes) {
  std::vector<Publish> out;
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  auto frames = frames_of(bytes);
  for (std::size_t i = 0; i < frames.size();) {
    const Frame& m = frames[i];
    EXPECT_EQ(m.type, AMQP_FRAME_METHOD);
    EXPECT_EQ(get(m.payload, 0, 4), AMQP_BASIC_PUBLISH_METHOD);
    void* decoded = nullptr;
    std::string args = m.payload.substr(4);
    EXPECT_EQ(amqp_decode_method(AMQP_BASIC_PUBLISH_METHOD, &pool,
                                 amqp_bytes_t{args.size(), args.data()}, &decoded),
              0);
    auto* publish = static_cast<amqp_basic_publish_t*>(decoded);
    Publish p;
    p.exchange.assign(static_cast<char*>(publish->exchange.bytes), publish->exchange.len);
    p.routing_key.assign(static_cast<char*>(publish->routing_key.bytes), publish->routing_key.len);
    p.mandatory = publish->mandatory != 0;
    const Frame& h = frames.at(i + 1);
    EXPECT_EQ(h.type, AMQP_FRAME_HEADER);
    EXPECT_EQ(get(h.payload, 0, 2), AMQP_BASIC_CLASS);
    const auto body_size = static_cast<std::size_t>(get(h.payload, 4, 8));
    std::string props = h.payload.substr(12);
    void* properties = nullptr;
    EXPECT_EQ(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                     amqp_bytes_t{props.size(), props.data()}, &properties),
              0);
    auto* basic = static_cast<amqp_basic_properties_t*>(properties);
    EXPECT_EQ(basic->delivery_mode, 2);
    p.message_id.assign(static_cast<char*>(basic->message_id.bytes), basic->message_id.len);
    if (basic->_flags & AMQP_BASIC_HEADERS_FLAG) {
      EXPECT_EQ(basic->headers.num_entries, 1);
      p.delivery_count = basic->headers.entries[0].value.value.i64;
    }
    i += 2;
    if (body_size > 0) {
      EXPECT_EQ(frames.at(i).type, AMQP_FRAME_BODY);
      p.body = frames.at(i).payload;
      ++i;
    }
    EXPECT_EQ(p.body.size(), body_size);
    out.push_back(std::move(p));
  }
  empty_amqp_pool(&pool);
  return out;
}

bool add(PublishFrames& frames, const Publish& p, std::size_t frame_max = 131072) {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = 2;
  props.message_id = amqp_bytes_t{p.message_id.size(), const_cast<char*>(p.message_id.data())};
  amqp_table_entry_t count;
  if (p.delivery_count > 0) {
    count.key = amqp_cstring_bytes("x-asya-delivery-count");
    count.value.kind = AMQP_FIELD_KIND_I64;
    count.value.value.i64 = p.delivery_count;
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{1, &count};
  }
  return frames.add(1, p.exchange, p.routing_key, p.mandatory, props, p.body, frame_max);
}

// Writes `frames` into one end of a socket pair whose send buffer is small and non-blocking (so
// the write is partial and waits for room) while a thread reads the other end; returns what came.
std::string written(PublishFrames& frames) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  std::string got;
  std::thread reader([&] {
    char buf[1000];  // small reads: the writer's buffer fills up several times
    for (;;) {
      ssize_t n = ::read(fds[1], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
  });
  Status st = frames.write(fds[0], std::chrono::seconds(30));
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(frames.empty());
  ::close(fds[0]);
  reader.join();
  ::close(fds[1]);
  return got;
}

TEST(RabbitmqFramesTest, OnePublishIsTheFramesRabbitmqCWouldSend) {
  PublishFrames frames;
  Publish p{"asya", "asya-happy-end", "223", std::string(151, 'x')};
  ASSERT_TRUE(add(frames, p));
  EXPECT_EQ(frames.count(), 1u);
  std::string bytes = written(frames);
  // As rabbitmq-c's amqp_basic_publish writes it (seen with strace): method frame of 27 bytes,
  // content header of 19 (delivery mode 2 and message id "223"), body frame of 151.
  std::string expected(
      "\x01\x00\x01\x00\x00\x00\x1b\x00\x3c\x00\x28\x00\x00\x04"
      "asya\x0e"
      "asya-happy-end\x01\xce",
      35);
  expected += std::string(
      "\x02\x00\x01\x00\x00\x00\x13\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x97\x10\x80\x02\x03"
      "223\xce",
      27);
  expected += std::string("\x03\x00\x01\x00\x00\x00\x97", 7) + p.body + "\xce";
  EXPECT_EQ(bytes, expected);
}

TEST(RabbitmqFramesTest, ManyPublishesSmallAndLargeArriveWholeAndInOrder) {
  PublishFrames frames;
  std::vector<Publish> sent;
  for (int i = 0; i < 300; ++i) {
    Publish p{
        "asya", "asya-q" + std::to_string(i % 7), std::to_string(i + 1),
        // empty, small (copied) and large (written from where it is) bodies
        i % 10 == 0 ? std::string() : std::string(i % 3 == 0 ? 20000 + i : 50 + i, 'a' + i % 26)};
    p.delivery_count = i % 4;
    p.mandatory = i % 5 != 0;
    sent.push_back(p);
  }
  for (const Publish& p : sent) ASSERT_TRUE(add(frames, p));
  EXPECT_EQ(frames.count(), sent.size());
  std::vector<Publish> got = publishes_of(written(frames));
  ASSERT_EQ(got.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[i].exchange, sent[i].exchange);
    EXPECT_EQ(got[i].routing_key, sent[i].routing_key);
    EXPECT_EQ(got[i].message_id, sent[i].message_id);
    EXPECT_EQ(got[i].delivery_count, sent[i].delivery_count);
    EXPECT_EQ(got[i].mandatory, sent[i].mandatory);
    EXPECT_EQ(got[i].body, sent[i].body) << "publish " << i;
  }
}

TEST(RabbitmqFramesTest, ABodyNeedingTwoFramesIsLeftToRabbitmqC) {
  PublishFrames frames;
  Publish fits{"asya", "q", "1", std::string(4096 - 8, 'x')};
  Publish larger{"asya", "q", "2", std::string(4096 - 7, 'x')};
  EXPECT_TRUE(add(frames, fits, 4096));
  EXPECT_FALSE(add(frames, larger, 4096));
  EXPECT_EQ(frames.count(), 1u);  // the refused one added nothing
  std::vector<Publish> got = publishes_of(written(frames));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, fits.body);
}

TEST(RabbitmqFramesTest, AWriteToAClosedPeerFailsAndClears) {
  PublishFrames frames;
  ASSERT_TRUE(add(frames, Publish{"asya", "q", "1", "body"}));
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ::close(fds[1]);
  Status st = frames.write(fds[0], std::chrono::seconds(5));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("writing publishes to the broker failed"), std::string::npos)
      << st.message();
  EXPECT_TRUE(frames.empty());
  ::close(fds[0]);
}

}  // namespace
}  // namespace asya::transport::rabbitmq
