// Fuzzes asya::wire::FrameDecoder against a simple reference model of the framing
// (4-byte big-endian length, then that many bytes). The input is fed in chunks whose sizes come
// from the input itself; the decoder must yield exactly the reference frames, report an oversize
// frame on the feed that completes its header, and never allocate the announced size.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "wire/frame.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_frame_decoder: property violated: %s\n", what);
  std::abort();
}

void check(bool condition, const char* what) {
  if (!condition) fail(what);
}

constexpr std::size_t kMaxMessageBytes = 4096;

struct Reference {
  std::vector<std::string_view> frames;
  std::size_t error_at = SIZE_MAX;  // bytes that must be fed before the oversize error
  std::size_t pending = 0;
};

Reference decode_reference(std::string_view stream) {
  Reference ref;
  std::size_t pos = 0;
  while (stream.size() - pos >= 4) {
    const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + pos);
    std::uint32_t size = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    if (size > kMaxMessageBytes) {
      ref.error_at = pos + 4;
      return ref;
    }
    if (stream.size() - pos - 4 < size) break;
    ref.frames.push_back(stream.substr(pos + 4, size));
    pos += 4 + size;
  }
  ref.pending = stream.size() - pos;
  return ref;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // First byte: chunking pattern; the rest: the byte stream.
  const unsigned pattern = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  const Reference ref = decode_reference(stream);

  {
    unsigned char header[4];
    asya::wire::encode_length(static_cast<std::uint32_t>(size * 2654435761u), header);
    check(asya::wire::decode_length(header) == static_cast<std::uint32_t>(size * 2654435761u),
          "length round trip");
  }

  asya::wire::FrameDecoder decoder(kMaxMessageBytes);
  std::vector<std::string> frames;
  std::size_t fed = 0;
  std::size_t step = 0;
  bool errored = false;
  std::string frame;
  while (fed < stream.size()) {
    // Chunk sizes 1..64 varying with the pattern byte, sometimes the whole rest.
    std::size_t chunk =
        ((pattern >> (step % 8)) & 1) ? 1 + (pattern * (step + 1)) % 64 : stream.size() - fed;
    if (chunk > stream.size() - fed) chunk = stream.size() - fed;
    ++step;
    asya::Status status = decoder.feed(stream.substr(fed, chunk));
    fed += chunk;
    if (!status.ok()) {
      check(ref.error_at != SIZE_MAX, "decoder refused a frame the reference accepts");
      check(fed >= ref.error_at, "oversize reported before its header arrived");
      check(status.message().find("exceeds ASYA_MAX_MESSAGE_BYTES=4096") != std::string::npos,
            "oversize message names the limit");
      errored = true;
      break;
    }
    check(fed < ref.error_at, "oversize header seen but not reported");
    while (decoder.next(frame)) frames.push_back(frame);
    check(decoder.pending_bytes() <= kMaxMessageBytes + 4 + 64 || ref.error_at != SIZE_MAX,
          "pending bytes beyond one frame");
  }
  check(errored == (ref.error_at != SIZE_MAX), "oversize error mismatch");
  check(frames.size() <= ref.frames.size(), "more frames than the reference");
  for (std::size_t i = 0; i < frames.size(); ++i) {
    check(frames[i] == ref.frames[i], "frame bytes differ from the reference");
  }
  if (!errored) {
    check(frames.size() == ref.frames.size(), "frame count differs from the reference");
    check(decoder.pending_bytes() == ref.pending, "pending bytes differ from the reference");
    check(!decoder.next(frame), "next() returned a frame after the stream was drained");
  }
  return 0;
}
