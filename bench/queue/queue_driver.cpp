// bench_queue: the process-level drivers of the queue rows. Each subcommand prints one JSON object
// on stdout (bench/run reads it). The Asya side goes through the project's Transport (whatever
// ASYA_TRANSPORT names, "sqlite" by default, configured from the environment like a sidecar);
// the raw-* subcommands are the physical baselines and use SQLite's C API directly.
//
//   raw-cycle  --db PATH --threads N --seconds S [--payload B]
//       insert, lease, delete on one table in a tight loop (each its own transaction).
//   hop        --pid SIDECAR --in Q --out Q --count N [--warmup W] [--payload B] [--poll-ms P]
//       warms the sidecar up with W messages, stops it (SIGSTOP), queues N envelopes (send_many
//       in chunks: faster to fill, the same messages), resumes it
//       and times until N more arrived on --out, counting them every P ms (default 2; on RabbitMQ
//       each count is a queue.declare on the broker being measured, so bench/run uses 20 there).
//   wakeup     --queue Q --samples N     cross-process publish -> receive latency (Transport)
//   raw-wakeup --db PATH --samples N     same, the receiver polling the table in a tight loop
//   pace       --queue Q --rate R --seconds S [--payload B]   sends at a fixed rate
//   forward    --in Q --out Q            a bare consumer (receive, send, ack) until SIGTERM
//   raw-rabbitmq --host H --port P --vhost V [--mode loop|forward|window] [--seconds S]
//                [--count N] [--prefetch 10] [--payload B] [--queue-type classic|quorum]
//       rabbitmq-c, one connection, durable queues bound to a durable direct exchange, persistent
//       messages, publisher confirms, manual acks with the prefetch. loop (for S seconds): publish
//       and wait for its confirm, consume it back, ack, one message at a time on one queue.
//       forward: fill queue "in" with N messages, then per message: take it from "in", publish
//       it to "out" and wait for the confirm, ack it on "in" - the broker work of one hop.
//       window: fill "in" with N, then take them with the prefetch, publish each to "out" at once
//       (up to --prefetch publishes unconfirmed) and ack its input when its confirm arrives
//       (basic.ack multiple up to the highest confirmed) - a durable hop with the confirm window,
//       the floor of a sidecar at concurrency > 1.
//   wait       --queue Q --count N [--timeout S]   waits until Q holds at least N messages
//   send-lines --queue Q --file F    queues every non-empty line of F as one message (send_many)
//   pipeline   --in Q --out Q --count N --rate R --seconds S
//       burst of N (time until all arrive), then a paced run measuring send -> arrival latency.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/env.hpp"
#include "common/log.hpp"
#include "support/raw_io.hpp"
#include "transport/transport.hpp"

namespace {

using namespace asya::bench;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// --name value pairs.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0 || i + 1 >= argc)
        throw std::runtime_error("expected --name value, got \"" + key + "\"");
      values_[key.substr(2)] = argv[++i];
    }
  }
  std::string text(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) throw std::runtime_error("missing --" + name);
    return it->second;
  }
  std::string text(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  double number(const std::string& name) const { return std::stod(text(name)); }
  double number(const std::string& name, double fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : std::stod(it->second);
  }

 private:
  std::map<std::string, std::string> values_;
};

// prefix + i (spelled out: GCC 12 warns wrongly on "literal" + std::to_string(i)).
std::string numbered(const char* prefix, std::uint64_t i) {
  std::string out(prefix);
  out += std::to_string(i);
  return out;
}

std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// An envelope for actor `actor` whose payload carries the send time: {"t": ns, "message": "..."}.
std::string stamped_envelope(const std::string& id, const std::string& actor,
                             std::size_t payload_bytes, std::int64_t t_ns) {
  std::string body = "{\"id\":\"" + id + "\",\"route\":{\"actors\":[\"" + actor +
                     "\"],\"current\":0},\"payload\":{\"t\":" + std::to_string(t_ns) +
                     ",\"message\":\"";
  body.append(payload_bytes, 'x');
  body += "\"}}";
  return body;
}

// The actor names of a route given as "a,b,c".
std::string actors_json(const std::string& list) {
  std::string out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (!out.empty()) out += ',';
    out += '"';
    out.append(list, start, comma - start);
    out += '"';
    start = comma + 1;
  }
  return out;
}

std::string route_envelope(const std::string& id, const std::string& actors,
                           std::size_t payload_bytes, std::int64_t t_ns) {
  std::string body = "{\"id\":\"" + id + "\",\"route\":{\"actors\":[" + actors_json(actors) +
                     "],\"current\":0},\"payload\":{\"t\":" + std::to_string(t_ns) +
                     ",\"message\":\"";
  body.append(payload_bytes, 'x');
  body += "\"}}";
  return body;
}

// The "t" stamped into a payload by stamped_envelope (the first "\"t\":" in the body), or -1.
std::int64_t stamp_of(const std::string& body) {
  std::size_t at = body.find("\"t\":");
  if (at == std::string::npos) return -1;
  return std::strtoll(body.c_str() + at + 4, nullptr, 10);
}

std::unique_ptr<asya::transport::Transport> open_transport() {
  asya::transport::Options options;
  options.visibility_timeout = std::chrono::minutes(10);
  return asya::transport::make_transport(asya::env_string("ASYA_TRANSPORT", "sqlite"), options);
}

void check(const asya::Status& status, const char* what) {
  if (!status) throw std::runtime_error(std::string(what) + ": " + status.message());
}

// Sends retried at most 3 times when the transport reports a failure (seen: SQLite "database is
// locked" under heavy contention); counted and printed so a run shows it happened.
std::uint64_t g_send_retries = 0;

void send_retrying(asya::transport::Transport& transport, const std::string& queue,
                   const std::string& body) {
  for (int attempt = 0;; ++attempt) {
    asya::Status status = transport.send(queue, body);
    if (status) return;
    if (attempt == 3) throw std::runtime_error("send: " + status.message());
    ++g_send_retries;
    std::fprintf(stderr, "bench_queue: send failed, retrying: %s\n", status.message().c_str());
  }
}

// Queues every body on `queue` with send_many() in chunks: SQLite commits up to 64 messages per
// write transaction and RabbitMQ publishes a chunk before awaiting its confirms, where send()
// costs a transaction or a confirm round trip per message. The queue holds the same messages
// either way; only filling it takes less time (a hop's fill is not timed). Messages whose send
// failed are sent again, at most 3 times (counted in g_send_retries).
void send_all(asya::transport::Transport& transport, const std::string& queue,
              const std::vector<std::string>& bodies) {
  constexpr std::size_t kChunk = 512;
  for (std::size_t first = 0; first < bodies.size(); first += kChunk) {
    std::vector<std::size_t> pending;
    for (std::size_t i = first; i < std::min(bodies.size(), first + kChunk); ++i)
      pending.push_back(i);
    for (int attempt = 0; !pending.empty(); ++attempt) {
      std::vector<asya::transport::OutgoingMessage> messages;
      for (std::size_t i : pending) messages.push_back({queue, bodies[i]});
      std::vector<asya::Status> sent = transport.send_many(messages);
      std::vector<std::size_t> failed;
      std::string error;
      for (std::size_t k = 0; k < pending.size(); ++k) {
        if (sent[k]) continue;
        failed.push_back(pending[k]);
        error = sent[k].message();
      }
      if (!failed.empty() && attempt == 3) throw std::runtime_error("send: " + error);
      if (!failed.empty()) {
        g_send_retries += failed.size();
        std::fprintf(stderr, "bench_queue: %zu send(s) failed, retrying: %s\n", failed.size(),
                     error.c_str());
      }
      pending = std::move(failed);
    }
  }
}

std::uint64_t arrived(asya::transport::Transport& transport, const std::string& queue) {
  auto stats = transport.stats(queue);
  if (!stats) throw std::runtime_error("stats " + queue + ": " + stats.error().message);
  return stats->ready + stats->in_flight + stats->delayed;
}

// On SQLite, how many rows were ever inserted into the queue file (its AUTOINCREMENT sequence), an
// O(1) read. Counting a queue is not: stats() reads every row of the queue, 1-2 ms at 4,000 rows
// and more as a run's outputs pile up on asya-happy-end, so polling it every 2 ms took a large
// share of a core from the processes being measured. Unset (nullopt) on other transports.
class InsertedRows {
 public:
  InsertedRows() {
    if (asya::env_string("ASYA_TRANSPORT", "sqlite") != "sqlite") return;
    std::string path = asya::env_string("ASYA_SQLITE_PATH", ".asya/queues.db");
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db_, "SELECT seq FROM sqlite_sequence WHERE name = 'messages'", -1,
                           &select_, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db_);  // counted the slow way
      db_ = nullptr;
      return;
    }
    sqlite3_busy_timeout(db_, 1000);
  }
  ~InsertedRows() {
    sqlite3_finalize(select_);
    sqlite3_close_v2(db_);
  }
  InsertedRows(const InsertedRows&) = delete;
  InsertedRows& operator=(const InsertedRows&) = delete;

  std::optional<std::int64_t> now() {
    if (db_ == nullptr) return std::nullopt;
    std::optional<std::int64_t> out;
    int rc = sqlite3_step(select_);
    if (rc == SQLITE_ROW) out = sqlite3_column_int64(select_, 0);
    if (rc == SQLITE_DONE) out = 0;
    sqlite3_reset(select_);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* select_ = nullptr;
};

// Polls every `poll` until `queue` holds `count` messages (each poll is a query on the broker or
// the database, so a short interval loads what is being measured). On SQLite the queue is counted
// only when the rows inserted since its last count could have made up the difference (rows on
// the queue can only come from inserts), so most polls are an O(1) read of the id sequence. Near
// the end it polls sooner (down to 2 ms): the time of the last arrival is what is measured, and a
// whole interval past it would add up to `poll` to it (20 ms on RabbitMQ: a tenth of a
// 500-message burst at 5,000 msg/s).
void wait_arrived(asya::transport::Transport& transport, const std::string& queue,
                  std::uint64_t count, double timeout_s,
                  std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  const auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(timeout_s);
  InsertedRows inserted;
  std::optional<std::int64_t> counted_at = inserted.now();  // read before the count it bounds
  const std::uint64_t first = arrived(transport, queue);
  std::uint64_t have = first;
  while (have < count) {
    if (Clock::now() > deadline)
      throw std::runtime_error("timed out waiting for " + std::to_string(count) + " messages on " +
                               queue + " (have " + std::to_string(arrived(transport, queue)) + ")");
    auto wait = poll;
    if (have > first) {
      // The time the rest needs at the rate seen so far.
      const double per_message = seconds_since(start) / static_cast<double>(have - first);
      const auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::duration<double>(per_message * static_cast<double>(count - have)));
      wait = std::clamp(rest, std::min(poll, std::chrono::milliseconds(2)), poll);
    }
    std::this_thread::sleep_for(wait);
    std::optional<std::int64_t> now = inserted.now();
    if (now && counted_at && static_cast<std::uint64_t>(*now - *counted_at) < count - have)
      continue;  // too few rows were inserted anywhere since the last count
    counted_at = now;
    have = arrived(transport, queue);
  }
}

// ---- raw SQLite ----

struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      throw std::runtime_error("open " + path);
    sqlite3_busy_timeout(db, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(
        "CREATE TABLE IF NOT EXISTS q(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, "
        "body BLOB NOT NULL, visible_at INTEGER NOT NULL, lease INTEGER)");
    exec("CREATE INDEX IF NOT EXISTS q_visible ON q(queue, visible_at, id)");
  }
  ~RawDb() { sqlite3_close_v2(db); }
  void exec(const char* sql) {
    char* error = nullptr;
    for (int attempt = 0;; ++attempt) {
      if (sqlite3_exec(db, sql, nullptr, nullptr, &error) == SQLITE_OK) return;
      if (attempt < 100 && (sqlite3_errcode(db) & 0xff) == SQLITE_BUSY) {
        sqlite3_free(error);
        std::this_thread::sleep_for(milliseconds(10));
        continue;
      }
      std::string text = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(std::string(sql) + ": " + text);
    }
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("prepare: ") + sqlite3_errmsg(db));
    return s;
  }
  void step_done(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw std::runtime_error(std::string("step: ") + sqlite3_errmsg(db));
  }
};

std::int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int raw_cycle(const Args& args) {
  std::string path = args.text("db");
  int threads = static_cast<int>(args.number("threads", 1));
  double seconds = args.number("seconds", 1.5);
  std::string body = envelope_with_payload(static_cast<std::size_t>(args.number("payload", 64)));
  { RawDb init(path); }
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> cycles{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      RawDb db(path);
      sqlite3_stmt* insert =
          db.prepare("INSERT INTO q(queue, body, visible_at) VALUES('q', ?1, ?2)");
      sqlite3_stmt* lease = db.prepare(
          "UPDATE q SET visible_at = ?2, lease = ?3 WHERE id = (SELECT id FROM q WHERE queue = 'q' "
          "AND visible_at <= ?1 ORDER BY visible_at, id LIMIT 1) RETURNING id, body");
      sqlite3_stmt* remove = db.prepare("DELETE FROM q WHERE id = ?1 AND lease = ?2");
      std::int64_t token = static_cast<std::int64_t>(t) << 40;
      while (!go) std::this_thread::yield();
      std::uint64_t mine = 0;
      while (!stop) {
        std::int64_t now = wall_ms();
        sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_STATIC);
        sqlite3_bind_int64(insert, 2, now);
        db.step_done(insert);
        ++token;
        sqlite3_bind_int64(lease, 1, now);
        sqlite3_bind_int64(lease, 2, now + 600000);
        sqlite3_bind_int64(lease, 3, token);
        std::int64_t id = -1;
        if (sqlite3_step(lease) == SQLITE_ROW) {
          id = sqlite3_column_int64(lease, 0);
          // Read the body as a consumer would.
          volatile int size = sqlite3_column_bytes(lease, 1);
          (void)size;
          while (sqlite3_step(lease) == SQLITE_ROW) {
          }
        }
        sqlite3_reset(lease);
        if (id < 0) continue;
        sqlite3_bind_int64(remove, 1, id);
        sqlite3_bind_int64(remove, 2, token);
        db.step_done(remove);
        ++mine;
      }
      cycles += mine;
      sqlite3_finalize(insert);
      sqlite3_finalize(lease);
      sqlite3_finalize(remove);
    });
  }
  auto start = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  double elapsed = seconds_since(start);
  std::printf("{\"msgs_per_s\": %.1f, \"cycles\": %" PRIu64 ", \"threads\": %d}\n",
              static_cast<double>(cycles.load()) / elapsed, cycles.load(), threads);
  return 0;
}

int raw_wakeup(const Args& args) {
  std::string path = args.text("db");
  int samples = static_cast<int>(args.number("samples", 200));
  { RawDb init(path); }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) die("pipe");
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    RawDb db(path);
    sqlite3_stmt* peek = db.prepare("SELECT id, body FROM q WHERE queue = 'w' LIMIT 1");
    sqlite3_stmt* remove = db.prepare("DELETE FROM q WHERE id = ?1");
    for (int i = 0; i < samples; ++i) {
      std::int64_t id = -1;
      std::string body;
      while (id < 0) {
        if (sqlite3_step(peek) == SQLITE_ROW) {
          id = sqlite3_column_int64(peek, 0);
          body.assign(static_cast<const char*>(sqlite3_column_blob(peek, 1)),
                      static_cast<std::size_t>(sqlite3_column_bytes(peek, 1)));
        }
        sqlite3_reset(peek);
      }
      double latency_us = static_cast<double>(monotonic_ns() - stamp_of(body)) / 1e3;
      sqlite3_bind_int64(remove, 1, id);
      db.step_done(remove);
      if (::write(pipe_fds[1], &latency_us, sizeof latency_us) != sizeof latency_us) _exit(1);
    }
    sqlite3_finalize(peek);
    sqlite3_finalize(remove);
    _exit(0);
  }
  ::close(pipe_fds[1]);
  RawDb db(path);
  sqlite3_stmt* insert = db.prepare("INSERT INTO q(queue, body, visible_at) VALUES('w', ?1, 0)");
  std::vector<double> latencies;
  for (int i = 0; i < samples; ++i) {
    std::this_thread::sleep_for(milliseconds(3 + i % 5));
    std::string body = stamped_envelope(numbered("w", i), "bench", 64, monotonic_ns());
    sqlite3_bind_blob64(insert, 1, body.data(), body.size(), SQLITE_TRANSIENT);
    db.step_done(insert);
    double latency_us = 0;
    if (!read_all(pipe_fds[0], reinterpret_cast<char*>(&latency_us), sizeof latency_us))
      die("raw-wakeup receiver died");
    latencies.push_back(latency_us);
  }
  sqlite3_finalize(insert);
  ::waitpid(child, nullptr, 0);
  double p50 = quantile(latencies, 0.5);
  double p99 = quantile(latencies, 0.99);
  std::printf("{\"p50_us\": %.1f, \"p99_us\": %.1f, \"samples\": %d}\n", p50, p99, samples);
  return 0;
}

// ---- raw RabbitMQ ----

void amqp_check(amqp_rpc_reply_t reply, const char* what) {
  if (reply.reply_type != AMQP_RESPONSE_NORMAL)
    throw std::runtime_error(std::string("rabbitmq ") + what + " failed (reply type " +
                             std::to_string(reply.reply_type) + ")");
}

int raw_rabbitmq(const Args& args) {
  std::string host = args.text("host", "127.0.0.1");
  int port = static_cast<int>(args.number("port", 5672));
  std::string vhost = args.text("vhost", "/");
  double seconds = args.number("seconds", 2);
  int prefetch = static_cast<int>(args.number("prefetch", 10));
  std::string mode = args.text("mode", "loop");
  if (mode != "loop" && mode != "forward" && mode != "window")
    throw std::runtime_error("--mode \"" + mode + "\" is not known: use loop, forward or window");
  std::string queue_type = args.text("queue-type", "classic");
  if (queue_type != "classic" && queue_type != "quorum")
    throw std::runtime_error("--queue-type \"" + queue_type + "\" is not known: classic or quorum");
  auto count = static_cast<std::uint64_t>(args.number("count", 2000));
  std::string body = envelope_with_payload(static_cast<std::size_t>(args.number("payload", 64)));
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(sock, host.c_str(), port) != AMQP_STATUS_OK)
    throw std::runtime_error("cannot connect to " + host + ":" + std::to_string(port));
  amqp_check(amqp_login(conn, vhost.c_str(), 0, 131072, 60, AMQP_SASL_METHOD_PLAIN,
                        args.text("user", "guest").c_str(), args.text("password", "guest").c_str()),
             "login");
  const amqp_channel_t publish_channel = 1, consume_channel = 2;
  amqp_channel_open(conn, publish_channel);
  amqp_check(amqp_get_rpc_reply(conn), "channel.open");
  amqp_channel_open(conn, consume_channel);
  amqp_check(amqp_get_rpc_reply(conn), "channel.open");
  // loop: publish to and consume from one queue. forward: consume "in" (filled with --count
  // messages first), publish each to "out", ack it on "in" (the work of one hop).
  const bool window = mode == "window";
  const bool forward = mode == "forward" || window;
  amqp_bytes_t exchange = amqp_cstring_bytes("asya-raw");
  amqp_bytes_t queue = amqp_cstring_bytes(forward ? "asya-raw-out" : "asya-raw-bench");
  amqp_bytes_t in_queue = forward ? amqp_cstring_bytes("asya-raw-in") : queue;
  amqp_exchange_declare(conn, publish_channel, exchange, amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                        amqp_empty_table);
  amqp_check(amqp_get_rpc_reply(conn), "exchange.declare");
  amqp_table_entry_t type_entry;
  type_entry.key = amqp_cstring_bytes("x-queue-type");
  type_entry.value.kind = AMQP_FIELD_KIND_UTF8;
  type_entry.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_table_t queue_args =
      queue_type == "quorum" ? amqp_table_t{1, &type_entry} : amqp_empty_table;
  for (amqp_bytes_t name : {queue, in_queue}) {
    amqp_queue_declare(conn, publish_channel, name, 0, 1, 0, 0, queue_args);
    amqp_check(amqp_get_rpc_reply(conn), "queue.declare");
    amqp_queue_bind(conn, publish_channel, name, exchange, name, amqp_empty_table);
    amqp_check(amqp_get_rpc_reply(conn), "queue.bind");
  }
  amqp_confirm_select(conn, publish_channel);
  amqp_check(amqp_get_rpc_reply(conn), "confirm.select");

  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");
  amqp_bytes_t message{body.size(), body.data()};

  if (forward) {
    // Fill "in": publish them all, then wait for the confirm of the last (confirms are in order).
    for (std::uint64_t i = 0; i < count; ++i)
      if (amqp_basic_publish(conn, publish_channel, exchange, in_queue, 0, 0, &props, message) !=
          AMQP_STATUS_OK)
        throw std::runtime_error("basic.publish failed");
    for (std::uint64_t confirmed = 0; confirmed < count;) {
      amqp_maybe_release_buffers(conn);
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
        throw std::runtime_error("waiting for a confirm failed");
      if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD)
        confirmed = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded)->delivery_tag;
    }
  }
  amqp_basic_qos(conn, consume_channel, 0, static_cast<uint16_t>(prefetch), 0);
  amqp_check(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, consume_channel, in_queue, amqp_empty_bytes, 0, /*no_ack=*/0, 0,
                     amqp_empty_table);
  amqp_check(amqp_get_rpc_reply(conn), "basic.consume");

  // Publishes one message and waits for its confirm (basic.ack on the publish channel); a
  // delivery arriving meanwhile on the consume channel is kept for the consume step.
  std::vector<amqp_envelope_t> pending;
  auto publish_confirmed = [&] {
    if (amqp_basic_publish(conn, publish_channel, exchange, queue, 0, 0, &props, message) !=
        AMQP_STATUS_OK)
      throw std::runtime_error("basic.publish failed");
    for (;;) {
      amqp_maybe_release_buffers_on_channel(conn, publish_channel);
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
        throw std::runtime_error("waiting for a confirm failed");
      if (frame.frame_type == AMQP_FRAME_METHOD && frame.channel == publish_channel &&
          frame.payload.method.id == AMQP_BASIC_ACK_METHOD)
        return;
      if (frame.frame_type == AMQP_FRAME_METHOD && frame.channel == consume_channel &&
          frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        // Read the rest of this delivery (header + body) before the next confirm.
        amqp_envelope_t envelope;
        std::memset(&envelope, 0, sizeof envelope);
        auto* deliver = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
        envelope.delivery_tag = deliver->delivery_tag;
        envelope.channel = frame.channel;
        amqp_message_t content;
        amqp_check(amqp_read_message(conn, frame.channel, &content, 0), "read message");
        amqp_destroy_message(&content);
        pending.push_back(envelope);
        continue;
      }
      if (frame.frame_type == AMQP_FRAME_METHOD &&
          frame.payload.method.id == AMQP_BASIC_NACK_METHOD)
        throw std::runtime_error("broker nacked a publish");
    }
  };
  auto consume_one = [&]() -> std::uint64_t {
    if (!pending.empty()) {
      std::uint64_t tag = pending.back().delivery_tag;
      pending.pop_back();
      return tag;
    }
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    amqp_check(amqp_consume_message(conn, &envelope, nullptr, 0), "consume");
    std::uint64_t tag = envelope.delivery_tag;
    amqp_destroy_envelope(&envelope);
    return tag;
  };

  std::uint64_t cycles = 0;
  auto start = Clock::now();
  auto until =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  if (window) {
    // Deliveries are taken and published in order and confirms come in order, so the inputs
    // of the confirmed publishes are a prefix of the deliveries: one basic.ack(multiple) acks
    // them all.
    std::deque<std::uint64_t> waiting;    // input tags delivered, not yet published
    std::deque<std::uint64_t> published;  // input tag of publish seq next_confirm + i
    std::uint64_t next_confirm = 1;
    std::uint64_t confirmed_upto = 0;
    std::set<std::uint64_t> confirmed_single;
    auto publish_waiting = [&] {
      while (!waiting.empty() && published.size() < static_cast<std::size_t>(prefetch)) {
        if (amqp_basic_publish(conn, publish_channel, exchange, queue, 0, 0, &props, message) !=
            AMQP_STATUS_OK)
          throw std::runtime_error("basic.publish failed");
        published.push_back(waiting.front());
        waiting.pop_front();
      }
    };
    while (cycles < count) {
      amqp_maybe_release_buffers(conn);
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
        throw std::runtime_error("waiting for a frame failed");
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      if (frame.channel == consume_channel &&
          frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        auto tag = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded)->delivery_tag;
        amqp_message_t content;
        amqp_check(amqp_read_message(conn, frame.channel, &content, 0), "read message");
        amqp_destroy_message(&content);
        waiting.push_back(tag);
        publish_waiting();
      } else if (frame.channel == publish_channel &&
                 frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        // A single confirm may come before those of earlier publishes: they are kept until
        // the prefix is complete.
        if (ack->multiple)
          confirmed_upto = std::max(confirmed_upto, ack->delivery_tag);
        else
          confirmed_single.insert(ack->delivery_tag);
        std::uint64_t input = 0;
        while (!published.empty() &&
               (next_confirm <= confirmed_upto || confirmed_single.erase(next_confirm))) {
          input = published.front();
          published.pop_front();
          ++next_confirm;
          ++cycles;
        }
        if (input != 0 &&
            amqp_basic_ack(conn, consume_channel, input, /*multiple=*/1) != AMQP_STATUS_OK)
          throw std::runtime_error("basic.ack failed");
        publish_waiting();
      } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        throw std::runtime_error("broker nacked a publish");
      }
    }
  }
  if (forward && !window) {
    for (; cycles < count; ++cycles) {
      std::uint64_t tag = consume_one();
      publish_confirmed();
      if (amqp_basic_ack(conn, consume_channel, tag, 0) != AMQP_STATUS_OK)
        throw std::runtime_error("basic.ack failed");
    }
  }
  while (!forward && Clock::now() < until) {
    publish_confirmed();
    std::uint64_t tag = consume_one();
    if (amqp_basic_ack(conn, consume_channel, tag, 0) != AMQP_STATUS_OK)
      throw std::runtime_error("basic.ack failed");
    ++cycles;
  }
  double elapsed = seconds_since(start);
  amqp_channel_close(conn, consume_channel, AMQP_REPLY_SUCCESS);
  amqp_channel_close(conn, publish_channel, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  std::printf("{\"msgs_per_s\": %.1f, \"cycles\": %" PRIu64 "}\n",
              static_cast<double>(cycles) / elapsed, cycles);
  return 0;
}

// ---- through the Transport ----

int wakeup(const Args& args) {
  std::string queue = args.text("queue", "asya-wakeup");
  int samples = static_cast<int>(args.number("samples", 200));
  {
    auto transport = open_transport();
    check(transport->ensure_queue(queue), "ensure_queue");
    transport->close();
  }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) die("pipe");
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    auto transport = open_transport();
    for (int i = 0; i < samples;) {
      auto got = transport->receive(queue, 1, std::chrono::seconds(10));
      if (!got) _exit(1);
      for (auto& delivery : *got) {
        double latency_us = static_cast<double>(monotonic_ns() - stamp_of(delivery.body)) / 1e3;
        (void)transport->ack(delivery);
        if (::write(pipe_fds[1], &latency_us, sizeof latency_us) != sizeof latency_us) _exit(1);
        ++i;
      }
    }
    transport->close();
    _exit(0);
  }
  ::close(pipe_fds[1]);
  auto transport = open_transport();
  std::vector<double> latencies;
  for (int i = 0; i < samples; ++i) {
    // Let the receiver settle into its blocking wait: this is the wake-up from idle.
    std::this_thread::sleep_for(milliseconds(3 + i % 5));
    send_retrying(*transport, queue,
                  stamped_envelope(numbered("w", i), "bench", 64, monotonic_ns()));
    double latency_us = 0;
    if (!read_all(pipe_fds[0], reinterpret_cast<char*>(&latency_us), sizeof latency_us))
      die("wakeup receiver died");
    latencies.push_back(latency_us);
  }
  ::waitpid(child, nullptr, 0);
  transport->close();
  double p50 = quantile(latencies, 0.5);
  double p99 = quantile(latencies, 0.99);
  std::printf("{\"p50_us\": %.1f, \"p99_us\": %.1f, \"samples\": %d}\n", p50, p99, samples);
  return 0;
}

// Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). kill()
// returns before the target's threads have stopped: a thread running on another CPU, or waiting
// for one on a loaded machine, still executes until it next enters the kernel, and may take the
// write lock meanwhile.
bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator tasks("/proc/" + std::to_string(pid) + "/task", ec);
  if (ec) return false;
  for (; !ec && tasks != std::filesystem::directory_iterator(); tasks.increment(ec)) {
    std::ifstream stat(tasks->path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(") ");
    if (close == std::string::npos || close + 2 >= text.size()) return false;
    char state = text[close + 2];
    if (state != 'T' && state != 't') return false;
  }
  return !ec;
}

// Stops `pid` (SIGSTOP) at a moment when it holds no SQLite write lock: a process stopped inside
// a write transaction would block every other writer of the file until it is resumed (the
// producer's sends then fail with "database is locked" after ASYA_SQLITE_BUSY_TIMEOUT). The probe
// runs only once every thread has stopped; before that, a thread not yet stopped could take the
// lock right after the probe released it.
void stop_outside_transaction(pid_t pid) {
  if (asya::env_string("ASYA_TRANSPORT", "sqlite") != "sqlite") {
    ::kill(pid, SIGSTOP);
    return;
  }
  RawDb probe(asya::env_string("ASYA_SQLITE_PATH", ".asya/queues.db"));
  sqlite3_busy_timeout(probe.db, 0);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    ::kill(pid, SIGSTOP);
    auto stop_deadline = Clock::now() + std::chrono::seconds(10);
    while (!all_threads_stopped(pid)) {
      if (Clock::now() > stop_deadline) {
        ::kill(pid, SIGCONT);
        throw std::runtime_error("process " + std::to_string(pid) +
                                 " did not stop within 10 s of SIGSTOP");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (sqlite3_exec(probe.db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
      sqlite3_exec(probe.db, "ROLLBACK", nullptr, nullptr, nullptr);
      return;
    }
    ::kill(pid, SIGCONT);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  throw std::runtime_error("could not stop the sidecar outside a write transaction");
}

int hop(const Args& args) {
  pid_t pid = static_cast<pid_t>(args.number("pid"));
  std::string in = args.text("in");
  std::string out = args.text("out");
  std::string actor = args.text("actor", "bench");  // or the route: "a,b,c"
  auto count = static_cast<std::uint64_t>(args.number("count"));
  auto warmup = static_cast<std::uint64_t>(args.number("warmup", 20));
  auto payload = static_cast<std::size_t>(args.number("payload", 64));
  double timeout = args.number("timeout", 120);
  std::chrono::milliseconds poll(static_cast<int>(args.number("poll-ms", 2)));
  auto transport = open_transport();
  check(transport->ensure_queue(in), "ensure_queue");
  check(transport->ensure_queue(out), "ensure_queue");
  std::uint64_t before = arrived(*transport, out);
  for (std::uint64_t i = 0; i < warmup; ++i)
    send_retrying(*transport, in, route_envelope(numbered("warm-", i), actor, 64, 0));
  wait_arrived(*transport, out, before + warmup, timeout);

  std::vector<std::string> bodies;
  bodies.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i)
    bodies.push_back(route_envelope(numbered("m-", i), actor, payload, 0));
  stop_outside_transaction(pid);
  auto fill_start = Clock::now();
  if (payload >= (std::size_t{1} << 20)) {
    // A large body gains nothing from sharing a transaction: one send() each, as before.
    for (const std::string& body : bodies) send_retrying(*transport, in, body);
  } else {
    send_all(*transport, in, bodies);
  }
  double fill_seconds = seconds_since(fill_start);
  auto start = Clock::now();
  ::kill(pid, SIGCONT);
  wait_arrived(*transport, out, before + warmup + count, timeout, poll);
  double elapsed = seconds_since(start);
  transport->close();
  std::printf("{\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"count\": %" PRIu64
              ", \"fill_seconds\": %.3f, \"send_retries\": %" PRIu64 "}\n",
              elapsed, static_cast<double>(count) / elapsed, count, fill_seconds, g_send_retries);
  return 0;
}

// Every non-empty line of --file is one message (an envelope) for --queue, queued with
// send_all(); prints how many and how long it took.
int send_lines(const Args& args) {
  std::string queue = args.text("queue");
  std::ifstream in(args.text("file"), std::ios::binary);
  if (!in) throw std::runtime_error("cannot read --file " + args.text("file"));
  std::vector<std::string> bodies;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) bodies.push_back(std::move(line));
  auto transport = open_transport();
  check(transport->ensure_queue(queue), "ensure_queue");
  auto start = Clock::now();
  send_all(*transport, queue, bodies);
  double elapsed = seconds_since(start);
  transport->close();
  std::printf("{\"sent\": %zu, \"seconds\": %.3f, \"send_retries\": %" PRIu64 "}\n", bodies.size(),
              elapsed, g_send_retries);
  return 0;
}

int wait(const Args& args) {
  std::string queue = args.text("queue");
  auto count = static_cast<std::uint64_t>(args.number("count"));
  auto transport = open_transport();
  check(transport->ensure_queue(queue), "ensure_queue");
  auto start = Clock::now();
  wait_arrived(*transport, queue, count, args.number("timeout", 60));
  std::printf("{\"seconds\": %.3f, \"count\": %" PRIu64 "}\n", seconds_since(start),
              arrived(*transport, queue));
  transport->close();
  return 0;
}

int pace(const Args& args) {
  std::string queue = args.text("queue");
  std::string actor = args.text("actor", "bench");
  double rate = args.number("rate");
  double seconds = args.number("seconds");
  auto payload = static_cast<std::size_t>(args.number("payload", 64));
  auto transport = open_transport();
  check(transport->ensure_queue(queue), "ensure_queue");
  auto total = static_cast<std::uint64_t>(rate * seconds);
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(i / rate)));
    send_retrying(*transport, queue, stamped_envelope(numbered("p-", i), actor, payload, 0));
  }
  double elapsed = seconds_since(start);
  transport->close();
  std::printf("{\"sent\": %" PRIu64 ", \"msgs_per_s\": %.1f}\n", total,
              static_cast<double>(total) / elapsed);
  return 0;
}

std::atomic<bool> g_stop{false};

int forward(const Args& args) {
  std::string in = args.text("in");
  std::string out = args.text("out");
  struct sigaction action {};
  action.sa_handler = [](int) { g_stop = true; };
  sigaction(SIGTERM, &action, nullptr);
  auto transport = open_transport();
  check(transport->ensure_queue(in), "ensure_queue");
  check(transport->ensure_queue(out), "ensure_queue");
  std::thread stopper([&] {
    while (!g_stop) std::this_thread::sleep_for(milliseconds(50));
    transport->interrupt();
  });
  std::uint64_t forwarded = 0;
  while (!g_stop) {
    auto got = transport->receive(in, 1, std::chrono::seconds(1));
    if (!got) continue;
    for (auto& delivery : *got) {
      check(transport->send(out, delivery.body), "send");
      check(transport->ack(delivery), "ack");
      ++forwarded;
    }
  }
  stopper.join();
  transport->close();
  std::printf("{\"forwarded\": %" PRIu64 "}\n", forwarded);
  return 0;
}

int pipeline(const Args& args) {
  std::string in = args.text("in");
  std::string out = args.text("out");
  std::string actors = args.text("actors");
  auto count = static_cast<std::uint64_t>(args.number("count"));
  double rate = args.number("rate");
  double seconds = args.number("seconds");
  double timeout = args.number("timeout", 120);
  auto transport = open_transport();
  check(transport->ensure_queue(in), "ensure_queue");
  check(transport->ensure_queue(out), "ensure_queue");
  // Messages already on the out queue (an earlier run's outputs) are consumed too: counted in.
  const std::uint64_t before = arrived(*transport, out);

  // The consumer of the last queue (standing in for happy-end) records send -> arrival latency.
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> record{false};
  std::atomic<bool> stop{false};
  std::vector<double> latencies;
  std::thread consumer([&] {
    while (!stop) {
      auto got = transport->receive(out, 16, milliseconds(200));
      if (!got) continue;
      for (auto& delivery : *got) {
        std::int64_t t = stamp_of(delivery.body);
        if (record && t > 0) latencies.push_back(static_cast<double>(monotonic_ns() - t) / 1e3);
        (void)transport->ack(delivery);
        ++received;
      }
    }
  });
  auto wait_received = [&](std::uint64_t n) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
    while (received < n) {
      if (Clock::now() > deadline) {
        stop = true;
        transport->interrupt();
        consumer.join();
        throw std::runtime_error("timed out: " + std::to_string(received.load()) + " of " +
                                 std::to_string(n) + " arrived on " + out);
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
  };
  // Warm-up, then throughput: N sent as fast as possible, timed until the last arrives.
  for (int i = 0; i < 10; ++i)
    send_retrying(*transport, in, route_envelope(numbered("warm-", i), actors, 64, 0));
  wait_received(before + 10);
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < count; ++i)
    send_retrying(*transport, in, route_envelope(numbered("b-", i), actors, 64, 0));
  wait_received(before + 10 + count);
  double burst_seconds = seconds_since(start);
  // Latency at a steady rate well below saturation.
  record = true;
  auto total = static_cast<std::uint64_t>(rate * seconds);
  auto paced_start = Clock::now();
  for (std::uint64_t i = 0; i < total; ++i) {
    std::this_thread::sleep_until(paced_start + std::chrono::duration_cast<Clock::duration>(
                                                    std::chrono::duration<double>(i / rate)));
    send_retrying(*transport, in, route_envelope(numbered("l-", i), actors, 64, monotonic_ns()));
  }
  wait_received(before + 10 + count + total);
  stop = true;
  transport->interrupt();
  consumer.join();
  transport->close();
  double p50 = quantile(latencies, 0.5) / 1e3;
  double p95 = quantile(latencies, 0.95) / 1e3;
  double p99 = quantile(latencies, 0.99) / 1e3;
  std::printf("{\"msgs_per_s\": %.1f, \"burst\": %" PRIu64
              ", \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, "
              "\"latency_samples\": %zu, \"rate\": %.1f}\n",
              static_cast<double>(count) / burst_seconds, count, p50, p95, p99, latencies.size(),
              rate);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  asya::log::init("bench-queue", "warn");  // transport warnings: JSON on stderr, never stdout
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_queue "
                 "raw-cycle|raw-wakeup|raw-rabbitmq|wakeup|hop|pace|wait|send-lines|forward|"
                 "pipeline "
                 "--name value ...\n");
    return 2;
  }
  std::string command = argv[1];
  try {
    Args args(argc, argv, 2);
    if (command == "raw-cycle") return raw_cycle(args);
    if (command == "raw-wakeup") return raw_wakeup(args);
    if (command == "wakeup") return wakeup(args);
    if (command == "hop") return hop(args);
    if (command == "pace") return pace(args);
    if (command == "wait") return wait(args);
    if (command == "send-lines") return send_lines(args);
    if (command == "raw-rabbitmq") return raw_rabbitmq(args);
    if (command == "forward") return forward(args);
    if (command == "pipeline") return pipeline(args);
    std::fprintf(stderr,
                 "bench_queue: unknown command \"%s\": use raw-cycle, raw-wakeup, raw-rabbitmq, "
                 "wakeup, hop, "
                 "pace, wait, send-lines, forward or pipeline\n",
                 command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_queue %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
