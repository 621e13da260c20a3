// The verified mark of the file payload store (docs/protocol.md §10 "Verified objects"): a note
// kept on an object's file, in the extended attribute user.asya.verified, saying "this file held
// exactly the bytes of SHA-256 S (N bytes) when it looked like this", so that the next reader can
// skip hashing it (about 55 ms per 100 MB) when the file still looks the same.
//
// Who writes one: the store's put() for objects/<sha256> (the writer hashed the bytes it wrote)
// and a reader whose hash of the file matched its reference. Who trusts one: a reader, only when
// the mark names the reference's SHA-256 and size and the file still has the size, modification
// time (ns) and inode the mark recorded, and a change time no later than a moment after the mark
// was written (kMarkSettle). Any change through the file system after the mark (a write,
// truncate, rename over, copy, touch, chmod, and, once the mark is older than kMarkSettle, a
// change that restores the modification time) fails one of these and the file is hashed
// again. What a mark does not catch is stated in docs/protocol.md: damage below the file system,
// and a deliberate forger with write access to the store (who can rewrite queue bodies as well).
//
// File systems without user extended attributes (EOPNOTSUPP) just hash every time: no error,
// one debug log per process. Thread-safe; every function works through a descriptor the caller
// opened, so a file renamed over the path meanwhile is not confused with the one checked.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace asya::payload {

inline constexpr const char* kVerifiedMarkAttribute = "user.asya.verified";

// How long after a mark was written the file's change time may still show that write (the mark
// is written twice: first to move the change time, then with that change time inside; the second
// write lands microseconds later unless the thread is preempted). A change within this time
// after the mark that also restores the modification time is the one change a mark misses.
inline constexpr std::chrono::milliseconds kMarkSettle{100};

// Whether the file open as `fd`, whose fstat() is `state`, carries a mark that vouches for
// `size_bytes` bytes of SHA-256 `sha256` and still fits the file (see above). False for no mark,
// a malformed or foreign mark, a file that changed since, or a file system without user
// attributes. Blocking (one fgetxattr).
bool has_verified_mark(int fd, const struct stat& state, std::string_view sha256,
                       std::uint64_t size_bytes);

// Marks the file open as `fd` as holding the bytes of SHA-256 `sha256`. `verified`: the file's
// fstat() from before the caller read (and hashed) or wrote those bytes; nothing is marked when
// the file's size, modification time or inode differ from it by now. The caller vouches for the
// content. On success, `after` (when
// given) is the file's fstat() after the mark (its change time moved). Best effort: false when
// nothing was marked (no user attributes, a read-only store, no permission; logged at debug
// level once per process). Blocking (two fsetxattr and an fstat).
bool write_verified_mark(int fd, const struct stat& verified, std::string_view sha256,
                         struct stat* after = nullptr);

// Opens `path` (an object the caller just wrote with exactly the bytes of `sha256`, via
// temporary file and rename) and marks it. Best effort, as write_verified_mark.
bool mark_written_object(const std::string& path, std::string_view sha256,
                         std::uint64_t size_bytes);

// The mark's text for a file state (exposed for tests):
// "v1 sha256=<hex> size=<n> mtime_ns=<n> ino=<n> ctime_ns=<n>".
std::string format_verified_mark(std::string_view sha256, const struct stat& state,
                                 std::int64_t ctime_ns);

// Tests only: when true, every attribute call behaves as on a file system without user
// extended attributes (EOPNOTSUPP).
void set_verified_marks_unsupported_for_testing(bool unsupported);

}  // namespace asya::payload
