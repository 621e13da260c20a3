#include "local/handler_watcher.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace asya::local {

namespace fs = std::filesystem;

std::string python_module_of(const fs::path& relative_file) {
  std::string name = relative_file.filename().string();
  if (name.empty() || name[0] == '.' || name[0] == '#' || relative_file.extension() != ".py")
    return {};
  std::string module;
  for (const auto& part : relative_file.parent_path()) {
    if (part.empty() || part == ".") continue;
    module += part.string() + ".";
  }
  std::string stem = relative_file.stem().string();
  if (stem == "__init__") {
    if (module.empty()) return {};
    module.pop_back();
    return module;
  }
  return module + stem;
}

bool handler_uses_module(const std::string& handler, const std::string& module) {
  if (module.empty()) return false;
  return handler == module || handler.rfind(module + ".", 0) == 0;
}

HandlerWatcher::HandlerWatcher(std::chrono::milliseconds settle)
    : settle_(settle), fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}

HandlerWatcher::~HandlerWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

Status HandlerWatcher::watch(const std::string& actor, const std::string& handler,
                             const fs::path& folder) {
  if (fd_ < 0) return Error{fmt::format("--reload: inotify_init1: {}", std::strerror(errno))};
  fs::path root = folder.lexically_normal();
  bool known = roots_.count(root) > 0;
  roots_[root].push_back({actor, handler});
  if (known) return Status::Ok();
  std::vector<fs::path> queue{root};
  int watched = 0;
  while (!queue.empty() && watched < kMaxFolders) {
    fs::path dir = queue.back();
    queue.pop_back();
    int wd = ::inotify_add_watch(fd_, dir.c_str(),
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR | IN_EXCL_UNLINK);
    if (wd < 0) {
      if (dir == root)
        return Error{fmt::format("--reload: cannot watch {} (actor {}): {}{}", dir.string(), actor,
                                 std::strerror(errno),
                                 errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "")};
      continue;  // a sub-folder that vanished or cannot be read: its files are not watched
    }
    folders_[wd] = Folder{root, dir.lexically_relative(root)};
    ++watched;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::error_code type_ec;
      if (!entry.is_directory(type_ec) || entry.is_symlink(type_ec)) continue;
      std::string name = entry.path().filename().string();
      if (name.empty() || name[0] == '.' || name == "__pycache__" || name == "node_modules" ||
          fs::exists(entry.path() / "pyvenv.cfg", type_ec))
        continue;
      queue.push_back(entry.path());
    }
  }
  return Status::Ok();
}

void HandlerWatcher::on_file(const Folder& folder, const std::string& name,
                             SteadyClock::time_point now) {
  fs::path relative = (folder.relative / name).lexically_normal();
  std::string module = python_module_of(relative);
  if (module.empty()) return;
  const auto& watchers = roots_[folder.root];
  bool any_handler = false;
  for (const auto& w : watchers)
    any_handler = any_handler || handler_uses_module(w.handler, module);
  for (const auto& w : watchers) {
    if (any_handler && !handler_uses_module(w.handler, module)) continue;
    pending_[w.actor] = Pending{folder.root / relative, now};
  }
}

std::vector<HandlerWatcher::Change> HandlerWatcher::poll(SteadyClock::time_point now) {
  if (fd_ >= 0) {
    alignas(inotify_event) char buffer[16 * 1024];
    while (true) {
      ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n <= 0) break;  // EAGAIN: nothing more now
      for (char* p = buffer; p < buffer + n;) {
        auto* event = reinterpret_cast<inotify_event*>(p);
        p += sizeof(inotify_event) + event->len;
        if (event->len == 0 || (event->mask & IN_ISDIR)) continue;
        auto it = folders_.find(event->wd);
        if (it != folders_.end()) on_file(it->second, event->name, now);
      }
    }
  }
  std::vector<Change> settled;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now - it->second.last >= settle_) {
      settled.push_back({it->first, it->second.file});
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return settled;
}

}  // namespace asya::local
