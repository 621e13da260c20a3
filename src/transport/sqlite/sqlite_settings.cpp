#include "transport/sqlite/sqlite_settings.hpp"

#include <string>

namespace asya::transport {

SqliteSettings SqliteSettings::from_env(const Environment& environment) {
  SqliteSettings s;
  s.path = environment.string("ASYA_SQLITE_PATH", s.path);
  s.synchronous_full =
      environment.choice("ASYA_SQLITE_SYNCHRONOUS", "normal", {"normal", "full"}) == "full";
  s.busy_timeout = environment.duration("ASYA_SQLITE_BUSY_TIMEOUT", s.busy_timeout);
  s.poll_interval = environment.duration("ASYA_SQLITE_POLL_INTERVAL", s.poll_interval);
  if (s.poll_interval < std::chrono::milliseconds(1)) {
    throw ConfigError("ASYA_SQLITE_POLL_INTERVAL=\"" + format_duration(s.poll_interval) +
                      "\" is too short: use at least 1ms (default 100ms)");
  }
  s.hand_off = environment.boolean("ASYA_SQLITE_HAND_OFF", s.hand_off);
  try {
    s.file_body_bytes = environment.bytes("ASYA_SQLITE_FILE_BODY_BYTES", s.file_body_bytes);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(e.what()) +
                      "; bodies above this size are stored as files next to the database, 0 "
                      "keeps them all inside it (default 1MiB)");
  }
  return s;
}

}  // namespace asya::transport
