#include "wire/frame.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "wire/socket_io.hpp"

namespace asya::wire {
namespace {

std::string framed(std::string_view body) {
  unsigned char header[4];
  encode_length(static_cast<std::uint32_t>(body.size()), header);
  return std::string(reinterpret_cast<char*>(header), 4) + std::string(body);
}

struct SocketPair {
  int a = -1, b = -1;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
  void close_b() {
    ::close(b);
    b = -1;
  }
};

TEST(Frame, LengthIsBigEndian) {
  unsigned char out[4];
  encode_length(0x01020304u, out);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 2);
  EXPECT_EQ(out[2], 3);
  EXPECT_EQ(out[3], 4);
  EXPECT_EQ(decode_length(out), 0x01020304u);
  encode_length(0xFFFFFFFFu, out);
  EXPECT_EQ(decode_length(out), 0xFFFFFFFFu);
}

TEST(FrameDecoder, YieldsFramesFedOneByteAtATime) {
  std::string stream = framed("{\"a\":1}") + framed("") + framed("[2]");
  FrameDecoder decoder(1024);
  std::vector<std::string> frames;
  std::string frame;
  for (char c : stream) {
    ASSERT_TRUE(decoder.feed(std::string_view(&c, 1)).ok());
    while (decoder.next(frame)) frames.push_back(frame);
  }
  EXPECT_EQ(frames, (std::vector<std::string>{"{\"a\":1}", "", "[2]"}));
  EXPECT_EQ(decoder.pending_bytes(), 0u);
}

TEST(FrameDecoder, YieldsSeveralFramesFromOneFeedAndKeepsThePartialRest) {
  std::string stream = framed("one") + framed("two") + framed("three").substr(0, 6);
  FrameDecoder decoder(1024);
  ASSERT_TRUE(decoder.feed(stream).ok());
  std::string frame;
  ASSERT_TRUE(decoder.next(frame));
  EXPECT_EQ(frame, "one");
  ASSERT_TRUE(decoder.next(frame));
  EXPECT_EQ(frame, "two");
  EXPECT_FALSE(decoder.next(frame));
  EXPECT_EQ(decoder.pending_bytes(), 6u);
  ASSERT_TRUE(decoder.feed("ree").ok());
  ASSERT_TRUE(decoder.next(frame));
  EXPECT_EQ(frame, "three");
}

TEST(FrameDecoder, RefusesOversizeFrameAsSoonAsTheHeaderArrives) {
  FrameDecoder decoder(100);
  unsigned char header[4];
  encode_length(101, header);
  ASSERT_TRUE(decoder.feed(std::string_view(reinterpret_cast<char*>(header), 3)).ok());
  Status s = decoder.feed(std::string_view(reinterpret_cast<char*>(header) + 3, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("frame of 101 bytes exceeds ASYA_MAX_MESSAGE_BYTES=100"),
            std::string::npos)
      << s.message();
}

TEST(FrameDecoder, RefusesOversizeFrameBehindAValidOne) {
  FrameDecoder decoder(10);
  unsigned char header[4];
  encode_length(4'000'000'000u, header);
  Status s = decoder.feed(framed("ok") + std::string(reinterpret_cast<char*>(header), 4));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("4000000000"), std::string::npos);
}

TEST(FrameIo, RoundTripsFramesOnASocket) {
  SocketPair p;
  ASSERT_TRUE(write_frame(p.a, "{\"hello\":\"world\"}").ok());
  ASSERT_TRUE(write_frame(p.a, "").ok());
  std::string out = "previous content";
  ASSERT_TRUE(read_frame(p.b, out, 1024).ok());
  EXPECT_EQ(out, "{\"hello\":\"world\"}");
  ASSERT_TRUE(read_frame(p.b, out, 1024).ok());
  EXPECT_EQ(out, "");
}

TEST(FrameIo, TransfersALargeFrameThroughASmallSocketBuffer) {
  SocketPair p;
  std::string body(20u << 20, 'x');
  body[12345] = 'y';
  std::thread writer([&] { EXPECT_TRUE(write_frame(p.a, body, 10'000).ok()); });
  std::string out;
  Status s = read_frame(p.b, out, 64u << 20, 10'000);
  writer.join();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out.size(), body.size());
  EXPECT_TRUE(out == body);
}

// Both ends of a sidecar-runtime connection ask for a 4 MiB send buffer; the kernel grants at most
// net.core.wmem_max (and reports twice the granted value, its bookkeeping share included).
TEST(FrameIo, RaisedSendBufferIsFourMiBWithinTheSystemLimit) {
  SocketPair p;
  int before = 0;
  socklen_t size = sizeof before;
  ASSERT_EQ(::getsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &before, &size), 0);
  detail::raise_send_buffer(p.a);
  int after = 0;
  ASSERT_EQ(::getsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &after, &size), 0);
  long wmem_max = 0;
  std::ifstream("/proc/sys/net/core/wmem_max") >> wmem_max;
  ASSERT_GT(wmem_max, 0);
  const long granted = std::min<long>(detail::kSocketSendBufferBytes, wmem_max);
  EXPECT_EQ(after, std::max<long>(before, 2 * granted));
  // A frame larger than the old buffer still goes through whole, and a raised buffer takes a
  // 1 MiB frame without a reader when the system allows it.
  if (granted >= (2 << 20)) {
    std::string body(1u << 20, 'z');
    EXPECT_TRUE(write_frame(p.a, body, 0).ok());  // no reader yet: fits in the buffer
    std::string out;
    ASSERT_TRUE(read_frame(p.b, out, 2u << 20, 10'000).ok());
    EXPECT_TRUE(out == body);
  }
}

TEST(FrameIo, RefusesOversizeFrameWithoutAllocatingIt) {
  SocketPair p;
  unsigned char header[4];
  encode_length(200u << 20, header);
  ASSERT_EQ(::write(p.a, header, 4), 4);
  std::string out;
  Status s = read_frame(p.b, out, 1u << 20);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("frame of 209715200 bytes exceeds ASYA_MAX_MESSAGE_BYTES=1048576"),
            std::string::npos)
      << s.message();
  EXPECT_LT(out.capacity(), 1024u);
}

TEST(FrameIo, EofBeforeAnyByteIsReportedAsEof) {
  SocketPair p;
  p.close_b();
  std::string out;
  Status s = read_frame(p.a, out, 1024);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "eof");
}

TEST(FrameIo, EofInsideAFrameIsATruncation) {
  SocketPair p;
  std::string partial = framed("0123456789").substr(0, 8);
  ASSERT_EQ(::write(p.b, partial.data(), partial.size()), 8);
  p.close_b();
  std::string out;
  Status s = read_frame(p.a, out, 1024);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message(), "eof");
  EXPECT_NE(s.message().find("after 8 of 14 bytes"), std::string::npos) << s.message();
}

TEST(FrameIo, ReadTimesOutWhenNothingArrives) {
  SocketPair p;
  std::string out;
  auto start = std::chrono::steady_clock::now();
  Status s = read_frame(p.a, out, 1024, 100);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
  EXPECT_GE(elapsed, std::chrono::milliseconds(100));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(FrameIo, WriteTimesOutWhenThePeerDoesNotRead) {
  SocketPair p;
  std::string body(32u << 20, 'x');  // far more than a socket buffer holds
  Status s = write_frame(p.a, body, 100);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
}

TEST(FrameIo, WriteToAClosedPeerFailsWithoutSigpipe) {
  SocketPair p;
  p.close_b();
  Status s = write_frame(p.a, "{}");  // SIGPIPE would kill the test process
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("closed"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace asya::wire
