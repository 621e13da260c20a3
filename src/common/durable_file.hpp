// Replacing a file so that a reader (or a crash) never sees part of it: the one file writer of
// Asya (SQLite message bodies, the file result store, `asya up`'s status and pid files, the
// runtime's ready file).
//
// write_file_atomically() writes a temporary file beside the target, fsyncs it, renames it over
// the target and fsyncs the directory, so that once it returns the new content survives a crash
// and a reader sees either the old file or the whole new one.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <span>
#include <string_view>

#include "common/result.hpp"

namespace asya {

struct FileWriteOptions {
  // The temporary file, in the target's directory; empty means "<target>.tmp".
  std::filesystem::path temporary_path;
  // Create the temporary with O_EXCL: fail instead of reusing a name another writer is using.
  bool exclusive = false;
  // Write `path` itself, with no temporary and no rename (then fsync it and its directory): for a
  // file that no reader opens before the writer has published it some other way (SQLite body
  // files: a row names one only after this returned). Saves the journal commit of the rename; a
  // crash or a failure midway can leave a partial file under the final name (removed on failure,
  // best effort), so readers must not look for it by its name alone.
  bool in_place = false;
  // fsync the file before the rename and the directory after it. false keeps the write atomic
  // for readers but not durable across a crash (status files rewritten every second).
  bool durable = true;
  mode_t mode = 0644;
  // A fault-injection point (common/failpoint.hpp) reached once the temporary is written, before
  // the fsync and rename; empty for none.
  std::string_view failpoint;
};

// Replaces `path` with `contents` (see above). Large contents are handed to the disk in 8 MiB
// chunks while they are written, so the final fsync waits for the tail only. On failure the
// temporary is removed and the error names the step, the file and the cause ("writing
// /d/x.tmp failed: No space left on device"); when only the directory fsync failed, `path`
// already has the new contents. Blocks for the writes and fsyncs; thread-safe for distinct
// temporary paths.
Status write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                             const FileWriteOptions& options = {});

// The same with the contents given as `parts`, written one after the other (gathered writes:
// the file holds exactly what the parts joined would be, never assembled in memory).
Status write_file_atomically(const std::filesystem::path& path,
                             std::span<const std::string_view> parts,
                             const FileWriteOptions& options = {});

// write_file_atomically's writer, for a caller that manages the file itself (the file payload
// store names an object only once it is written): writes `parts` whole to the open file `fd` from
// its current offset (short writes and EINTR retried); with `start_writeback`, each 8 MiB is handed
// to the disk as soon as it is written (sync_file_range, asynchronous), so that a later fsync
// waits for the tail only. An Error names `name` and the cause ("writing /d/x.tmp failed: No
// space left on device"); the file then holds a prefix of the parts. Blocking.
Status write_parts(int fd, std::span<const std::string_view> parts, bool start_writeback,
                   const std::filesystem::path& name);

// fsyncs `directory` so that entries created, renamed or removed in it survive a crash.
Status fsync_directory(const std::filesystem::path& directory);

}  // namespace asya
