// The baseline peer of the socket rows: reads a length-framed message into a reused buffer and
// writes the same bytes back, one thread per connection, no parsing. What a runtime would cost if
// it did no work at all.
//
//   bench_raw_echo_server <socket path> [send buffer bytes]     (runs until killed)
//
// With a send buffer size, every accepted connection asks for it (SO_SNDBUF), as both ends of a
// sidecar-runtime connection do (src/wire/socket_io.hpp, kSocketSendBufferBytes); without, the
// kernel's default stays (net.core.wmem_default).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support/raw_io.hpp"

int main(int argc, char** argv) {
  using namespace asya::bench;
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: bench_raw_echo_server <socket path> [send buffer bytes]\n");
    return 2;
  }
  const int send_buffer_bytes = argc == 3 ? std::atoi(argv[2]) : 0;
  signal(SIGPIPE, SIG_IGN);
  std::string path = argv[1];
  ::unlink(path.c_str());
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    die("bind " + path);
  if (::listen(listener, 64) != 0) die("listen " + path);
  for (;;) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (send_buffer_bytes > 0)
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes, sizeof send_buffer_bytes);
    std::thread([fd] {
      std::vector<char> buffer;
      for (;;) {
        long size = read_framed(fd, buffer);
        if (size < 0) break;
        if (!write_framed(fd, std::string_view(buffer.data(), static_cast<std::size_t>(size))))
          break;
      }
      ::close(fd);
    }).detach();
  }
}
