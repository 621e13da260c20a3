// Reading the bodies of messages a lease just took (sqlite_transport.cpp's receive). A lease of
// one message reads a small body kept in the database inside its own write transaction, in the
// statement that selects the row (lease.cpp, kLease: one read transaction less per receive); the
// other bodies are read after it committed, outside any write transaction (read_leased_bodies),
// straight from the database pages (incremental blob I/O) or the body file into each Delivery's
// string: one copy, no SQLite-side buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/body_files.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

// At most this many body bytes are read inside a lease's write transaction (other writers wait
// for its lock meanwhile); the rest are read after it committed.
constexpr std::size_t kBodyBytesReadInLease = 256u << 10;

// After the lease committed: `out[i]` was leased with `token` as row `ids[i]`, its body in the
// file `files[i]` (empty: in the `bodies` table), already read when `read[i]` is set. Returns the
// deliveries in id (send) order with their bodies; a row gone meanwhile (the lease expired at once
// and another receiver acked it) is left out, and a row still under this lease whose body file is
// gone is dropped (it can never be delivered). An Error names the queue when a body cannot be
// read; the leased messages then come back after the visibility timeout.
Result<std::vector<Delivery>> read_leased_bodies(Connection& db, BodyFiles& body_files,
                                                 std::string_view queue, std::int64_t token,
                                                 std::vector<Delivery>& out,
                                                 const std::vector<std::int64_t>& ids,
                                                 const std::vector<std::string>& files,
                                                 const std::vector<char>& read);

}  // namespace asya::transport::sqlite
