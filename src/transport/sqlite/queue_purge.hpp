// Queue-wide operations of the SQLite transport (`asya queues`): purging one queue
// (Transport::purge: the rows of the messages nobody holds a lease on, and their inline bodies,
// go in one write transaction), its counts (Transport::stats) and the queue names
// (Transport::list_queues).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/transport.hpp"

namespace asya::transport::sqlite {

struct PurgedRows {
  std::uint64_t removed = 0;
  std::vector<std::string> body_files;  // of the removed rows: the caller deletes them after
};

// Deletes the messages of `queue` that are ready or delayed at `now_ms` (no live lease: a message
// whose lease expired counts as ready), with their inline bodies, in one `BEGIN IMMEDIATE`
// transaction. A queue that neither ensure_queue created nor any message names fails with an
// Error starting "queue_not_found:". Leased messages stay: their consumers ack or nack them.
Result<PurgedRows> purge_rows(Connection& db, std::string_view queue, std::int64_t now_ms);

// The messages of `queue` ready, leased and delayed at `now_ms` (one read on `db`).
Result<QueueStats> queue_stats(Connection& db, std::string_view queue, std::int64_t now_ms);

// The names of the queues ensured or holding messages, sorted.
Result<std::vector<std::string>> queue_names(Connection& db);

}  // namespace asya::transport::sqlite
