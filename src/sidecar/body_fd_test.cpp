// body_fd.hpp: the file-descriptor form of a request whose body is kept as a file.
#include "sidecar/body_fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "wire/payload_fd.hpp"

namespace asya::sidecar {
namespace {

// A body kept as bytes [offset, ...) of a real file, as the SQLite transport hands it over.
struct KeptBody {
  std::string path;
  transport::DeliveryBody body;
  std::string text;
  KeptBody(const std::string& envelope, std::size_t offset) : text(envelope) {
    char name[] = "/tmp/asya-body-fd-XXXXXX";
    const int fd = ::mkstemp(name);
    path = name;
    const std::string file = std::string(offset, ' ') + envelope;
    EXPECT_EQ(::write(fd, file.data(), file.size()), static_cast<ssize_t>(file.size()));
    auto owner = std::shared_ptr<int>(new int(fd), [](int* kept) {
      ::close(*kept);
      delete kept;
    });
    body = transport::DeliveryBody(owner, text, 0, fd, offset);
  }
  ~KeptBody() { ::unlink(path.c_str()); }
};

std::string envelope_with(std::size_t payload_bytes) {
  return R"({"id":"b","route":{"actors":["a"]},"payload":")" + std::string(payload_bytes, 'x') +
         R"("})";
}

TEST(BodyFileRequest, ALargePayloadOfAKeptFileGoesAsItsRangeOfTheFile) {
  KeptBody kept(envelope_with(2u << 20), 3);
  const std::size_t at = kept.text.find("\"xx");
  const std::string_view payload = std::string_view(kept.text).substr(at, (2u << 20) + 2);
  auto request = body_file_request(kept.body, payload);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(request->fd_form.fd, kept.body.file_fd());
  EXPECT_EQ(request->request.payload_fd, &request->fd_form);
  EXPECT_EQ(request->request.size, kept.text.size());
  auto marker = wire::parse_payload_fd_marker(request->fd_form.text);
  ASSERT_TRUE(marker) << marker.error().message;
  EXPECT_EQ(marker->offset, 3 + at);
  EXPECT_EQ(marker->length, payload.size());
  EXPECT_EQ(marker->rest, R"({"id":"b","route":{"actors":["a"]},"payload":null})");
  // The bytes form is the body as it is.
  std::string written;
  ASSERT_TRUE(request->request
                  .write_body(wire::StreamSink([&](std::string_view part) {
                    written.append(part);
                    return Status::Ok();
                  }))
                  .ok());
  EXPECT_EQ(written, kept.text);
}

TEST(BodyFileRequest, SmallPayloadsAndBodiesNotKeptAsFilesGoAsBytes) {
  KeptBody small(envelope_with(1000), 0);
  const std::size_t at = small.text.find("\"xx");
  EXPECT_EQ(body_file_request(small.body, std::string_view(small.text).substr(at, 1002)), nullptr);
  const transport::DeliveryBody in_memory(envelope_with(2u << 20));
  const std::string_view text = in_memory.view();
  EXPECT_EQ(body_file_request(in_memory, text.substr(text.find("\"xx"), (2u << 20) + 2)), nullptr);
}

}  // namespace
}  // namespace asya::sidecar
