// Plain-syscall helpers for the *baseline* side of the benchmarks: the physical cost Asya is
// compared with. Deliberately not the project's framing code (src/wire): a baseline must not
// share Asya's implementation, or a slowdown there would hide in both columns.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace asya::bench {

// Exits the process with a message naming what failed; benchmarks have no recovery path.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s: %s\n", what.c_str(), errno ? std::strerror(errno) : "");
  std::exit(2);
}

inline bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline bool read_all(int fd, char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Writes a 4-byte big-endian length and the body with one writev (no copy of the body).
inline bool write_framed(int fd, std::string_view body) {
  unsigned char header[4] = {
      static_cast<unsigned char>(body.size() >> 24), static_cast<unsigned char>(body.size() >> 16),
      static_cast<unsigned char>(body.size() >> 8), static_cast<unsigned char>(body.size())};
  iovec parts[2] = {{header, 4}, {const_cast<char*>(body.data()), body.size()}};
  std::size_t total = 4 + body.size();
  std::size_t done = 0;
  while (done < total) {
    std::size_t skip = done;
    iovec current[2];
    int count = 0;
    for (iovec part : parts) {
      if (skip >= part.iov_len) {
        skip -= part.iov_len;
        continue;
      }
      current[count++] = {static_cast<char*>(part.iov_base) + skip, part.iov_len - skip};
      skip = 0;
    }
    ssize_t n = ::writev(fd, current, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads one framed body into `buffer` (grown, never shrunk). Returns the body size, -1 on EOF or
// error.
inline long read_framed(int fd, std::vector<char>& buffer) {
  unsigned char header[4];
  if (!read_all(fd, reinterpret_cast<char*>(header), 4)) return -1;
  std::size_t size = (std::size_t(header[0]) << 24) | (std::size_t(header[1]) << 16) |
                     (std::size_t(header[2]) << 8) | header[3];
  if (buffer.size() < size) buffer.resize(size);
  if (!read_all(fd, buffer.data(), size)) return -1;
  return static_cast<long>(size);
}

inline int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The q-quantile (0..1) of `samples` (reordered).
inline double quantile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  std::size_t index = std::min(samples.size() - 1, static_cast<std::size_t>(q * samples.size()));
  std::nth_element(samples.begin(), samples.begin() + static_cast<long>(index), samples.end());
  return samples[index];
}

// An envelope (PROTOCOL §1) for actor `actor` whose payload is {"message": "<n x's>"}.
inline std::string envelope_with_payload(std::size_t payload_bytes, const std::string& id = "bench",
                                         const std::string& actor = "bench") {
  std::string body = "{\"id\":\"" + id + "\",\"route\":{\"actors\":[\"" + actor +
                     "\"],\"current\":0},\"payload\":{\"message\":\"";
  body.append(payload_bytes, 'x');
  body += "\"}}";
  return body;
}

}  // namespace asya::bench
