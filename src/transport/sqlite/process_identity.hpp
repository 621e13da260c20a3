// Which process a row of the queue file names, and whether that process still runs: the one
// judgement behind releasing a dead process's leases (lease_owners.hpp) and handing a message only
// to a live waiting receiver (hand_off.hpp).
//
// A row names its process by (machine identity, pid, start time). The machine identity says in
// which pid namespace the pid means something: rows of another identity (another machine sharing
// the file over a network file system, another container sharing it through a volume, where pid 1
// is a different process in each) are never judged, alive or dead. Within one identity, a pid
// alone is not enough, as pids are reused: the process is the one recorded only while
// /proc/<pid>/stat shows the same start time (field 22, clock ticks since boot).
//
// Threads: the functions are thread-safe; a ProcessLiveness is thread-safe and must not cross
// fork() (its cached pidfds are the parent's).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace asya::transport::sqlite {

// This machine and pid namespace: "<boot id>/pid:[<inode>]" (the boot id is new at every boot and
// differs between machines; the inode names this process's pid namespace). When it cannot be
// established (no readable /proc, or /proc mounted from another pid namespace than this
// process's, so that /proc/<pid> would not show the process getpid() names), a value unique to
// this call ("unverified-<random>"): no other process then matches it, so nothing this process
// records is judged by another and it judges no other process's rows. `proc` is /proc (tests).
std::string machine_identity(const std::filesystem::path& proc = "/proc");

// The start time of `pid` (field 22 of <proc>/<pid>/stat), or "" when there is no such process or
// it is a zombie (it exited and waits to be reaped).
std::string process_start_time(pid_t pid, const std::filesystem::path& proc = "/proc");

// What is known of a process recorded by a process of this machine identity.
enum class ProcessState {
  kAlive,    // it runs: /proc shows the pid with the recorded start time
  kGone,     // no such pid, a zombie, or the pid is another process now
  kUnknown,  // nothing to compare (no start time recorded): never taken for alive nor gone
};

// The state of the process recorded as (`pid`, `started`), read from /proc now.
ProcessState process_state(pid_t pid, std::string_view started);

// process_state() for a sender judging waiting receivers inside its write transaction, where a
// read of /proc/<pid>/stat (about 30 µs on a loaded 2-core sandbox) would hold the write lock for
// longer than the rest of the send: a process confirmed alive once is kept as a pidfd
// (pidfd_open), and later checks ask that pidfd whether it exited (one poll(), which a reused pid
// cannot fool: the pidfd names the process, not the number). Without pidfds (kernel before 5.3,
// or refused by a seccomp profile) every check reads /proc. This process itself costs nothing.
class ProcessLiveness {
 public:
  ProcessLiveness();
  ~ProcessLiveness();
  ProcessLiveness(const ProcessLiveness&) = delete;
  ProcessLiveness& operator=(const ProcessLiveness&) = delete;

  ProcessState state(pid_t pid, std::string_view started);

  // At most this many processes are kept (a sidecar's replicas on one machine are far fewer);
  // beyond it the oldest entry is dropped and read again when asked.
  static constexpr std::size_t kMaxKept = 64;

 private:
  struct Kept {
    pid_t pid = 0;
    std::string started;
    int pidfd = -1;
  };

  const pid_t own_pid_;
  const std::string own_started_;
  std::mutex mutex_;
  std::vector<Kept> kept_;  // oldest first
};

}  // namespace asya::transport::sqlite
