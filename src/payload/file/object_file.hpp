// Opening an object's file of the file payload store, for the store's readers and the sidecar's
// streamed and descriptor-passed reads (docs/protocol.md §10).
#pragma once

#include <sys/stat.h>

#include <filesystem>

#include "common/result.hpp"

namespace asya::payload {

// Opens the object's file read-only and fstat()s it into `st`; an Error starting with kNotFound
// when it is missing or is not a regular file (an object is never anything else), with
// kUnreadable when the file's own permissions deny this process (it can see the file, not open
// it: the message names its mode, owner and this process's user). O_NONBLOCK, so
// that a FIFO put in the store cannot block the open forever (it has no effect on a regular
// file's reads). The caller closes the descriptor.
Result<int> open_object_file(const std::filesystem::path& path, struct stat& st);

}  // namespace asya::payload
