// The settings of the SQLite queue transport (see sqlite_transport.hpp for what it stores where).
// Plain values: read once at start-up, then copied into every part of one transport instance.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/env.hpp"

namespace asya::transport {

struct SqliteSettings {
  std::string path = ".asya/queues.db";          // ASYA_SQLITE_PATH
  bool synchronous_full = false;                 // ASYA_SQLITE_SYNCHRONOUS=normal|full
  std::chrono::milliseconds busy_timeout{5000};  // ASYA_SQLITE_BUSY_TIMEOUT
  std::chrono::milliseconds poll_interval{100};  // ASYA_SQLITE_POLL_INTERVAL
  // Bodies larger than this are stored as files in `<path>.bodies/` instead of in the database;
  // 0 keeps every body in the database.
  std::uint64_t file_body_bytes = 1u << 20;  // ASYA_SQLITE_FILE_BODY_BYTES
  // Senders hand a new message to a receiver already waiting for one, and receivers register
  // while they wait (hand_off.hpp); false: neither (messages are leased by their receivers).
  bool hand_off = true;  // ASYA_SQLITE_HAND_OFF

  // Reads the variables above from `environment` (defaults when unset); throws ConfigError
  // naming a bad value.
  static SqliteSettings from_env(const Environment& environment = Environment());
};

}  // namespace asya::transport
