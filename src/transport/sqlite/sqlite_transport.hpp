// The embedded queue transport: every queue lives in one SQLite database file that many
// processes share (`asya up` runs each actor's sidecar as its own process on one file).
//
// Storage (WAL mode, schema version 3 in PRAGMA user_version):
//   queues(name TEXT PRIMARY KEY, created_at_ms)           -- ensure_queue / list_queues
//   messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue, visible_at_ms, delivery_count, lease,
//            sent_at_ms, body_file)                        -- one small row per unacked message
//   bodies(id INTEGER PRIMARY KEY, body BLOB)              -- its body, same id
//   <path>.bodies/<body_file>                              -- or its body as a file
//   lease_owners(owner, host, pid, started)                -- transport instances (lease owners)
//   lease_owner_numbers(id, last)                          -- the last owner number handed out
//   waiters(token, queue, owner, host, pid, visibility_ms, since_ms, message_id)
//                                                          -- receive() calls waiting (hand-off)
//   <path>.wake/slots-<owner>                              -- hand-off slots (a copy, not a record)
// A body up to file_body_bytes goes into `bodies` in the send transaction. A larger one is
// written first (outside any lock) to `<path>.bodies/m-<unique>.body.tmp`, fsync'd, renamed to
// its final name, the directory fsync'd; then the row naming it is inserted. Either way the body
// is never written again: the lease updates only touch `messages`, so receiving a 100 MB message
// costs a read of it, not a rewrite. A receive of one message reads its body, when kept in
// `bodies` and at most 256 KiB, inside the lease's transaction; other bodies are read after the
// lease committed, outside any write transaction; either way straight into Delivery::body
// (incremental blob I/O, or one read pass of the file). ack() deletes the row (and an inline body)
// in one transaction, then the body file. A crash between a body file and its row leaves a file no
// row names: such files older than 15 minutes are removed on open and every 10 minutes, after
// checking under the write lock that no row names them (send checks under the same lock that its
// file still exists). Opening a file of an older layout (version 1: bodies inline in `messages`,
// user_version 0; version 2: no body_file column) migrates it once, in one transaction; a file with
// an unknown schema version is refused (ConfigError naming the version). A message is ready when
// visible_at_ms <= now; receive() leases it by setting visible_at_ms to now + visibility_timeout, a
// fresh lease token and delivery_count + 1, all in one `BEGIN IMMEDIATE` transaction, so two
// processes never lease the same message. ack() deletes the row and nack()/extend_lease() move
// visible_at_ms, each only while the row still carries the caller's lease token: after the lease
// expired and the message was leased again elsewhere they fail and change nothing. AUTOINCREMENT
// keeps ids increasing even after the queue drains. Leases of a process that died: a lease token is
// (owner << 32) | counter, and an instance records its owner number (unique on the file, allocated
// at open) with its machine (boot id + pid namespace), pid and the pid's start time in
// `lease_owners` when it opens the file. Opening the
// file releases at once (visible again, delivery count kept) the leases of this machine's owners
// whose process is gone, so a restarted sidecar does not wait for the leases its killed predecessor
// held; a live owner's leases are never touched, and other machines' owners are left to their lease
// expiry. Receive order is FIFO per queue by (visible_at_ms, id): messages sent without delay come
// out in commit order; a redelivered message takes its place by the time it became visible again.
// The messages of one batch are handed out in id (send) order.
//
// Locking: SQLite has one write lock per file. A write transaction here holds it only while its
// own statements run (send: two inserts, or one insert and a stat of its body file; receive: one
// lease UPDATE; ack: two deletes; nack and extend: one UPDATE), never across a wait, a body read,
// a body file write or caller code. A process paused (SIGSTOP, a debugger) between calls
// therefore blocks nobody; one paused *inside* such a statement (e.g. while a body of up to
// ASYA_SQLITE_FILE_BODY_BYTES, or any body with the threshold 0, is being inserted) blocks every
// other writer of the file until it resumes, and their calls fail after ASYA_SQLITE_BUSY_TIMEOUT
// with an error saying the lock was held too long (nothing is lost; the sidecar retries or
// nacks). A killed process releases the lock at once.
// Group commit (group_commit.hpp): the sends and acks that threads of one process have pending at
// the same moment share one write transaction (at most 64); a lone one is committed at once, no
// timer ever waits for company. Each call still returns only after the commit that contains it.
// Opening: two processes creating the same new file at once race to switch it to WAL mode, which
// SQLite reports as "database is locked" without waiting; opening retries the mode switch and
// the table setup with backoff (1 ms doubling to 50 ms) until ASYA_SQLITE_BUSY_TIMEOUT.
//
// Durability: send() returns after its transaction committed. With synchronous=NORMAL (default)
// a commit survives a crash of any process but the last commits may be lost on power loss;
// ASYA_SQLITE_SYNCHRONOUS=full also survives power loss at about a third of the throughput. A
// body file is fsync'd (with its directory) before its row is inserted in both modes, so a row
// never names a body a power loss truncated.
//
// Waking a blocked receive(): per queue (queue_waker.hpp). send() and nack() read the one byte
// of the queue's wake file `<path>.wake/<queue>` (IN_ACCESS): nack() after its commit, a send
// just before the COMMIT of its group-commit transaction with the write lock held
// (group_commit.hpp), so that the receiver's wake-up overlaps the COMMIT; the woken receiver's
// lease waits for the lock (retrying at once, yielding, for up to 200 µs before sleeping) and so
// sees the commit. The first look at each new wake generation that a read finds empty is
// repeated under the write lock (a lease attempt): a read after the wake but before the COMMIT
// would miss the message, and no further wake-up would come (lease.hpp). inotify reports the
// read only to the processes receiving from that queue, so a commit wakes the receivers of its
// own queue and no other (an idle sidecar sleeps through the traffic of every other queue).
// Hand-off (hand_off.hpp, ASYA_SQLITE_HAND_OFF): a receive() about to wait registers in
// `waiters` (in the write transaction of its look under the lock); a send without delay leases
// its message to the oldest waiting row of its queue whose process still runs (same machine
// identity, pid and start time: process_identity.hpp) in its own transaction, and the woken
// receiver only reads it (no write transaction of its own on the wake-up path). A receive()
// leaving without a message deletes its row, taking a message handed meanwhile. A handed body of
// up to 16 KiB is also copied into the receiver's hand-off slot (hand_off_slots.hpp, a shared
// file `<path>.wake/slots-<owner>`), marked committed after the sender's COMMIT returned: the
// woken receiver takes it from there without reading the database at all.
// Leases expiring and delayed messages are waited for precisely (the earliest visible_at_ms of
// the queue), and a fallback poll (poll_interval) covers a wake-up that never comes (a writer
// killed between its commit and the wake file of a nack, a writer of an older Asya, file systems
// without inotify). No lock or connection is held while waiting.
// Threads: connections are pooled (one per concurrently calling thread, created on demand), each
// with its prepared statements cached. The instance must not cross fork(); create one per process.
//
// The parts, each with its own header: sqlite_settings.hpp (the variables), connection.hpp (a
// connection, its statements, the schema and migrations, the pool), body_files.hpp (bodies stored
// as files, the orphan sweep), lease_owners.hpp (owner numbers and lease tokens, releasing a dead
// process's leases),
// process_identity.hpp (which process a row names, whether it runs),
// queue_waker.hpp (per-queue wake-ups), group_commit.hpp (shared write transactions), lease.hpp
// (one lease transaction), hand_off.hpp (handing a message to a waiting receiver),
// hand_off_slots.hpp (the handed message copied to the receiver's shared slot), receiver.hpp
// (receive(): when to read, lease, register and wait), write_lock_stats.hpp (write-lock holds and
// waits); sqlite_transport.cpp puts them together.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transport/sqlite/sqlite_settings.hpp"
#include "transport/transport.hpp"

namespace asya::transport {

// Opens (creating the file, its parent directories and the tables when missing) the database at
// settings.path. Throws ConfigError when the file cannot be opened or initialised, naming the
// path and the SQLite error.
std::unique_ptr<Transport> make_sqlite_transport(const Options& options,
                                                 const SqliteSettings& settings);

// The registered factory ("sqlite"): the settings from options.environment, with
// options.sqlite_path (when set) instead of ASYA_SQLITE_PATH.
std::unique_ptr<Transport> make_sqlite_transport(const Options& options);

}  // namespace asya::transport
