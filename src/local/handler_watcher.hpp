// `asya up --reload`: notices when the Python source of an actor's handler changes (inotify).
//
// Each watched actor names the folder its runtime imports from (its working directory) and its
// ASYA_HANDLER. Every folder under it is watched (hidden folders, __pycache__ and virtual
// environments are skipped; at most kMaxFolders per actor; folders created later are not
// watched). A change is a `.py` file written and closed or moved into place; editor files
// (`.name`, `#name#`, `name~`, `.swp`, vim's `4913`) are not `.py` files and are ignored. The
// change goes to the actors whose handler module is that file (`a/b.py` is module `a.b`,
// `a/__init__.py` is `a`); a file that is no actor's handler module (a helper it imports) goes
// to every actor of the folder. Not thread-safe: the supervisor's control loop polls it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "local/managed_process.hpp"

namespace asya::local {

class HandlerWatcher {
 public:
  static constexpr int kMaxFolders = 256;

  struct Change {
    std::string actor;
    std::filesystem::path file;  // absolute; the last changed file when there were several
  };

  // `settle`: a change is reported once no further change of that actor came for this long
  // (an editor's save is several file operations).
  explicit HandlerWatcher(std::chrono::milliseconds settle = std::chrono::milliseconds(300));
  HandlerWatcher(const HandlerWatcher&) = delete;
  HandlerWatcher& operator=(const HandlerWatcher&) = delete;
  ~HandlerWatcher();

  // Watches `folder` for `actor`, whose runtime loads ASYA_HANDLER=`handler`. The error names
  // the folder and the cause (inotify limits: fs.inotify.max_user_watches).
  Status watch(const std::string& actor, const std::string& handler,
               const std::filesystem::path& folder);

  // Reads what happened since the last call (never blocks) and returns the actors whose files
  // changed and have settled, one entry per actor.
  std::vector<Change> poll(SteadyClock::time_point now);

 private:
  struct Watcher {
    std::string actor;
    std::string handler;
  };
  struct Folder {
    std::filesystem::path root;      // the folder given to watch()
    std::filesystem::path relative;  // of this watched folder under root
  };
  struct Pending {
    std::filesystem::path file;
    SteadyClock::time_point last;
  };
  void on_file(const Folder& folder, const std::string& name, SteadyClock::time_point now);

  std::chrono::milliseconds settle_;
  int fd_ = -1;
  std::map<int, Folder> folders_;                                // by watch descriptor
  std::map<std::filesystem::path, std::vector<Watcher>> roots_;  // actors by root
  std::map<std::string, Pending> pending_;                       // by actor
};

// The module a source file is, relative to the folder it is imported from: "a/b.py" -> "a.b",
// "a/__init__.py" -> "a"; empty for anything that is not a Python source file an editor saved
// (".a.py", "#a.py#", "a.py~", "a.py.swp", "a.txt").
std::string python_module_of(const std::filesystem::path& relative_file);

// Whether ASYA_HANDLER `handler` ("module.function", "package.module.Class.method") lives in
// `module` or in a package `module` is part of.
bool handler_uses_module(const std::string& handler, const std::string& module);

}  // namespace asya::local
