// What a sidecar tells its runtime it understands (PROTOCOL §3 "Answers without the payload"):
// the file `sidecar-features` next to the runtime's socket (the directory of `runtime-ready`),
// whose first line is the sidecar's pid and whose other lines name features, e.g.
//
//   4711
//   payload-unchanged
//
// The sidecar writes it (temporary + rename, so a reader never sees half of it) before it first
// connects. A runtime reads it for each connection it accepts, and uses a feature on that
// connection only when the file names it and the connection's peer is the process that wrote it
// (SO_PEERCRED pid = the file's pid), or the peer's pid is not visible (0: the sidecar runs in
// another pid namespace, e.g. another container of the pod, where the file is trusted as it is).
// So a file left behind by an earlier sidecar never makes a runtime answer in a form the sidecar
// now connected does not understand (an older sidecar, the published Go sidecar, a test client).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace asya::wire {

// The file name, next to the socket.
inline constexpr std::string_view kSidecarFeaturesFileName = "sidecar-features";
// A result element may say "payload_unchanged": true instead of carrying the payload.
inline constexpr std::string_view kPayloadUnchangedFeature = "payload-unchanged";

// The features file for a socket path: same directory, file name kSidecarFeaturesFileName.
std::string sidecar_features_file_for(std::string_view socket_path);

// Writes the features file for `socket_path`: `pid` on the first line, then each of `features`
// (none: the file says the sidecar declares nothing, replacing a stale one). Creates the socket's
// directory when missing. Not fsync'd (the file describes a running process). Fails, naming the
// file and the cause, when the directory is not writable; an old file is then removed if it can
// be (a stale one can still not mislead a runtime: its pid is not the new sidecar's).
Status write_sidecar_features(std::string_view socket_path, long pid,
                              std::initializer_list<std::string_view> features);

// Whether the features file's text declares `feature` for a connection whose peer has pid
// `peer_pid` (0: not visible from the runtime's pid namespace): the first line must be an
// integer pid equal to `peer_pid` (any pid when peer_pid is 0) and a later line exactly
// `feature` (blanks around lines ignored).
bool sidecar_declares(std::string_view contents, long peer_pid, std::string_view feature);

// For a runtime: whether the sidecar connected on `connection_fd` (an accepted Unix socket)
// declared `feature` in the features file for `socket_path`. False when the file is missing or
// unreadable, or the peer's credentials cannot be read. Blocking (reads a small file); cheap
// enough for once per connection.
bool peer_declares(int connection_fd, std::string_view socket_path, std::string_view feature);

// The same for any file of that shape (a pid, then one line per feature), such as a runtime's
// ready file read by the sidecar for the connection it opened (PROTOCOL §3): whether `file`
// declares `feature` for the peer of `connection_fd`.
bool peer_file_declares(int connection_fd, const std::string& file, std::string_view feature);

}  // namespace asya::wire
