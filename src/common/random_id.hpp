// Random identifiers: the one UUID generator of Asya (envelope ids from `asya send` and the
// gateway, MCP session ids) and random hex (trace context ids).
#pragma once

#include <cstddef>
#include <string>

namespace asya {

// A random (version 4, RFC 9562) UUID in lowercase, "5e6fdb2d-1d6b-4e91-baef-73e825434e7b".
// Thread-safe (one generator per thread, seeded from std::random_device); not for secrets.
std::string new_uuid();

// `digits` random lowercase hex digits. Thread-safe, like new_uuid().
std::string random_hex(std::size_t digits);

// Writes `digits` random lowercase hex digits to `out` (no allocation: for ids made per message).
// Thread-safe, like new_uuid().
void random_hex_into(char* out, std::size_t digits);

}  // namespace asya
