// Hand-off slots: a copy of a handed message that the woken receiver takes from shared memory
// instead of reading the database (docs/transports.md, "Hand-off slots").
//
// Why: a receiver woken by a hand-off (hand_off.hpp) used to read its message from the database
// after the sender's COMMIT. That read starts a read transaction after another process committed,
// so SQLite empties its page cache and reads every page again, on a CPU that slept for
// milliseconds: 40-60 µs on this kind of VM, the largest part of what the woken receiver added
// after the COMMIT (docs/performance.md, "Hand-off slots").
//
// How: every receiving transport instance maps a small file of its own,
// `<database>.wake/slots-<owner>` (owner: its lease-owner number, lease_owners.hpp), created
// before its first registration as a waiter, removed by close() and, for a process that died (or
// an owner of an earlier boot), by the next transport that forgets its lease_owners row. A sender
// that hands a message of at most kSlotBodyBytes to a waiting receiver (inside its write
// transaction, holding the write lock) also writes the message's id and body into the receiver's
// slot for that registration's token
// (`stage`); after its COMMIT returned it marks the slot committed (`publish`). The woken receiver
// returns the message from its slot once the slot is marked committed for its own token; while
// it is staged but not yet committed it waits for that (yielding), and whenever the slot holds
// anything else it reads the database as before. Only right after its wake-up: a receiver that
// looks later (its fallback poll, after a wake-up it missed) reads the database, which also
// checks that the message is still leased with its token.
//
// The database stays the only record: a slot is a copy of a row the sender's committed
// transaction holds, leased to the receiver's token. A slot never published (the sender's COMMIT
// failed, the sender died before publish) only makes the receiver read the database after a short
// wait; a slot overwritten by another registration of the same slot index (slots are chosen by
// token modulo kSlots) no longer carries the receiver's token, and the receiver reads the
// database. Receivers of an older Asya have no slot file: senders find none and write nothing.
// Senders of an older Asya stage nothing: their receivers' slots never carry the token, and the
// receiver reads the database.
//
// Consistency: staging happens only under the database's write lock, so writers of one slot never
// run at once; a slot is a seqlock (its sequence is odd while being written), and a receiver
// accepts what it copied only when the sequence was even and the same before and after the copy,
// the slot's token is its own, and the slot's committed token (written by publish after the
// COMMIT) is its own.
//
// Threads: every method is thread-safe. The instance must not cross fork().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "transport/transport.hpp"

namespace asya::transport::sqlite {

// How many handed messages receivers of this process took from their slots (tests).
std::uint64_t hand_off_slot_takes();

class HandOffSlots {
 public:
  // Slots per receiving instance (its waiting receive() calls at once; more only share slots).
  static constexpr std::size_t kSlots = 32;
  // Bytes of one slot, its header included; larger bodies are read from the database.
  static constexpr std::size_t kSlotBytes = 16384;
  static constexpr std::size_t kHeaderBytes = 64;
  static constexpr std::size_t kSlotBodyBytes = kSlotBytes - kHeaderBytes;

  explicit HandOffSlots(const std::filesystem::path& database);
  ~HandOffSlots();
  HandOffSlots(const HandOffSlots&) = delete;
  HandOffSlots& operator=(const HandOffSlots&) = delete;

  // Receiver: maps this instance's own slot file (creating it, emptied), once. Call before
  // registering as a waiter. False (logged once) when it cannot: senders then stage nothing for
  // this instance and its receivers read the database.
  bool open_own(std::int64_t owner);

  // Sender, holding the write lock, in the transaction that hands `message_id` to `token`:
  // copies the message into the receiver's slot when the receiver has a slot file and the body
  // fits. The staged token is published or dropped by end_transaction().
  void stage(std::int64_t token, std::int64_t message_id, std::string_view body);

  // Sender: the transaction that staged is over; when it committed, marks its slots committed.
  // Called by the thread that ran the transaction, after its COMMIT (or ROLLBACK).
  void end_transaction(bool committed);

  // Receiver: what its own slot holds for `token`.
  enum class Take {
    kTaken,    // `delivery` is the message handed to `token` (committed)
    kStaged,   // staged for `token`, its COMMIT not marked yet: look again shortly
    kNothing,  // anything else: read the database
  };
  Take take(std::int64_t token, std::string_view queue, Delivery& delivery);

  // Receiver, on close(): unmaps and removes this instance's slot file.
  void remove_own();

  // Removes the slot file of `owner`, a process that is gone (its leases were released).
  void remove_file_of(std::int64_t owner);

  // The slot file of `owner`.
  std::filesystem::path path_of(std::int64_t owner) const;

 private:
  struct Mapping {
    char* base = nullptr;  // nullptr: the owner has no slot file (an older Asya)
  };
  char* slot_of(char* base, std::int64_t token) const;
  // The mapping of `owner`'s slot file (opened once per owner, at most kMaxMapped at a time).
  char* mapped(std::int64_t owner);
  void unmap_all_others();

  std::filesystem::path directory_;
  std::mutex mutex_;
  char* own_ = nullptr;
  std::int64_t own_owner_ = 0;
  bool own_tried_ = false;
  std::unordered_map<std::int64_t, Mapping> others_;
  std::vector<std::int64_t> staged_;
  std::vector<char*> staged_slots_;
};

}  // namespace asya::transport::sqlite
