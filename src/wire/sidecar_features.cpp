#include "wire/sidecar_features.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/durable_file.hpp"

namespace asya::wire {
namespace {

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trimmed(std::string_view line) {
  while (!line.empty() && blank(line.front())) line.remove_prefix(1);
  while (!line.empty() && blank(line.back())) line.remove_suffix(1);
  return line;
}

}  // namespace

std::string sidecar_features_file_for(std::string_view socket_path) {
  const std::size_t slash = socket_path.rfind('/');
  if (slash == std::string_view::npos) return std::string(kSidecarFeaturesFileName);
  return std::string(socket_path.substr(0, slash + 1)) + std::string(kSidecarFeaturesFileName);
}

Status write_sidecar_features(std::string_view socket_path, long pid,
                              std::initializer_list<std::string_view> features) {
  const std::filesystem::path path = sidecar_features_file_for(socket_path);
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  std::string contents = fmt::format("{}\n", pid);
  for (std::string_view feature : features) contents += fmt::format("{}\n", feature);
  FileWriteOptions options;
  options.temporary_path = fmt::format("{}.{}.tmp", path.string(), pid);
  options.durable = false;
  Status written = write_file_atomically(path, contents, options);
  if (!written) std::filesystem::remove(path, ec);  // best effort; its pid is not ours anyway
  return written;
}

bool sidecar_declares(std::string_view contents, long peer_pid, std::string_view feature) {
  std::size_t newline = contents.find('\n');
  if (newline == std::string_view::npos) return false;
  const std::string_view first = trimmed(contents.substr(0, newline));
  long pid = 0;
  auto [end, error] = std::from_chars(first.data(), first.data() + first.size(), pid);
  if (error != std::errc() || end != first.data() + first.size() || pid <= 0) return false;
  if (peer_pid != 0 && peer_pid != pid) return false;
  contents.remove_prefix(newline + 1);
  while (!contents.empty()) {
    newline = contents.find('\n');
    if (trimmed(contents.substr(0, newline)) == feature) return true;
    if (newline == std::string_view::npos) break;
    contents.remove_prefix(newline + 1);
  }
  return false;
}

bool peer_file_declares(int connection_fd, const std::string& file, std::string_view feature) {
  ucred credentials{};
  socklen_t length = sizeof(credentials);
  if (::getsockopt(connection_fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0)
    return false;
  std::ifstream in(file);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  return sidecar_declares(text.str(), static_cast<long>(credentials.pid), feature);
}

bool peer_declares(int connection_fd, std::string_view socket_path, std::string_view feature) {
  return peer_file_declares(connection_fd, sidecar_features_file_for(socket_path), feature);
}

}  // namespace asya::wire
