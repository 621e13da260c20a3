// The SQLite transport's body spool (transport/body_spool.hpp): a runtime's answer received
// straight into a body file, `<db>.bodies/m-<unique>-<n>.spooled.body`, which then becomes the
// output's body file. Without it a large output's bytes are received into fresh memory, then
// copied into a new body file; here they are copied once, into the file's page cache, while they
// arrive (docs/transports.md "Answers received into a body file").
//
// Layout while spooling: [0, kReserve) a hole left for the envelope's head, the answer from
// kReserve on. finish() writes the head so that it ends exactly where the payload starts, spaces
// before it, the tail right after the payload, cuts the file there and makes it durable (fsync of
// the file and of its directory): the file is then the message's body preceded by spaces, which
// BodyFiles::read skips for a `.spooled.body` file (a head never starts with a space, so they are
// never part of the body). Only then may a row name the file (the send inserts it after finish()
// returned), and the file is never written again; a crash before leaves a file no row names, which
// the orphan sweep removes like any other.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "transport/sqlite/body_files.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

class SqliteBodySpool : public BodySpool {
 public:
  // Room left before the answer for the head (and the spaces before it). A head longer than the
  // answer's bytes before its payload plus this cannot be finished here.
  static constexpr std::size_t kReserve = std::size_t{64} << 10;

  // Creates the spool's file in `files`' directory. `files` must outlive the spool.
  static Result<std::shared_ptr<SqliteBodySpool>> open(BodyFiles& files);
  // Unmaps; removes the file unless finish() made it a message's body.
  ~SqliteBodySpool() override;
  SqliteBodySpool(const SqliteBodySpool&) = delete;
  SqliteBodySpool& operator=(const SqliteBodySpool&) = delete;

  Status restart() override;
  Status append(std::string_view bytes) override;
  Result<std::string_view> contents() override;
  std::size_t size() const override { return size_; }

  // Turns the file into the body `parts` (head, payload, tail) when it can: the payload lies in
  // contents(), the head is not empty, does not start with a space and fits before the payload,
  // and the spool was not finished before. Returns the file's name once it is durable (reaching
  // the failpoint `sqlite.body_written`, as BodyFiles::write does), nullopt when it cannot (the
  // caller writes a body file of its own; nothing was changed), or an error (the file is then
  // unusable; the caller writes a body file of its own). Afterwards contents() past the tail must
  // not be read (the file was cut there).
  Result<std::optional<std::string>> finish(std::span<const std::string_view> parts);

  const std::string& name() const { return name_; }

 private:
  SqliteBodySpool(BodyFiles& files, std::string name, int fd);

  BodyFiles& files_;
  std::string name_;
  int fd_ = -1;
  std::size_t size_ = 0;    // answer bytes appended, from kReserve on
  std::size_t kicked_ = 0;  // of those, handed to the disk (sync_file_range)
  void* mapping_ = nullptr;
  std::size_t mapping_length_ = 0;
  std::string_view contents_;
  bool mapped_ = false;
  bool finished_ = false;  // finish() was tried: the file is never written again
  bool named_ = false;     // finish() succeeded: a row may name the file, it is not removed
};

// A new spool in `files`' directory for an answer of about `expected_bytes`, or null when such a
// body would not be a file (not above `file_body_bytes`, or that is 0) or the spool cannot be
// created (the reason is logged).
std::shared_ptr<BodySpool> open_spool(BodyFiles& files, std::size_t file_body_bytes,
                                      std::size_t expected_bytes);

// Writes the body file of `message` for send_many and sets `file_name`: the message's spool
// finished in place when it is a SqliteBodySpool that can be (see above), else a new file written
// from its parts (BodyFiles::write).
Status write_message_body(BodyFiles& files, const OutgoingMessage& message, std::string& file_name);

}  // namespace asya::transport::sqlite
