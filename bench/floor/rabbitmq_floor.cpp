// bench_floor_rabbitmq: the physical floor of `sidecar_cpu_per_msg_rabbitmq`: the least CPU a
// consumer process can spend per message on a durable hop through RabbitMQ, fed one message at a
// time at a steady rate by another process. rabbitmq-c only, no Asya code (docs/performance.md,
// "The physical floor of the CPU rows").
//
//   consume --host H --port P --vhost V [--queue-type quorum|classic]
//       until killed, on one connection: basic.consume of "asya-floor-in" (manual acks, prefetch
//       1), and per delivery: publish its body persistent to "asya-floor-out" and wait for the
//       broker's confirm, then ack the delivery. It sleeps in rabbitmq-c's blocking read (poll on
//       the socket) between messages: the broker's delivery is the wake-up.
//   pace --host H --port P --vhost V --rate R --seconds S [--payload B] [--queue-type ...]
//        [--timeout S]
//       publishes R*S persistent messages to "asya-floor-in", one per 1/R s (no confirms: waiting
//       for them would slow the pacer below its rate), then waits until
//       "asya-floor-out" holds as many more as it held before (the consumer passed them all on)
//       and prints {"sent": N, "msgs_per_s": R'}.
//
// Both declare the same topology: a durable direct exchange "asya-floor", durable queues of the
// given type (quorum by default, the transport's default) bound by their names. One connection
// with two channels (publish with confirms, consume) is the least a durable hop needs; the
// transport uses two connections.
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <cinttypes>
#include <cstring>
#include <string>
#include <thread>

#include "floor/floor_args.hpp"
#include "support/raw_io.hpp"

namespace {

using namespace asya::bench;
using namespace asya::bench::floor;

constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kConsumeChannel = 2;
const char* const kExchange = "asya-floor";
const char* const kIn = "asya-floor-in";
const char* const kOut = "asya-floor-out";

void check(amqp_rpc_reply_t reply, const char* what) {
  if (reply.reply_type != AMQP_RESPONSE_NORMAL)
    throw std::runtime_error(std::string("rabbitmq ") + what + " failed (reply type " +
                             std::to_string(reply.reply_type) + ")");
}

// One connection with a publish channel (in confirm mode when `confirms`) and a consume channel;
// the topology declared.
amqp_connection_state_t connect(const Args& args, bool confirms) {
  std::string host = args.text("host", "127.0.0.1");
  int port = static_cast<int>(args.number("port", 5672));
  std::string queue_type = args.text("queue-type", "quorum");
  if (queue_type != "classic" && queue_type != "quorum")
    throw std::runtime_error("--queue-type \"" + queue_type + "\" is not known: quorum or classic");
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(socket, host.c_str(), port) != AMQP_STATUS_OK)
    throw std::runtime_error("cannot connect to " + host + ":" + std::to_string(port));
  check(amqp_login(conn, args.text("vhost", "/").c_str(), 0, 131072, 60, AMQP_SASL_METHOD_PLAIN,
                   args.text("user", "guest").c_str(), args.text("password", "guest").c_str()),
        "login");
  for (amqp_channel_t channel : {kPublishChannel, kConsumeChannel}) {
    amqp_channel_open(conn, channel);
    check(amqp_get_rpc_reply(conn), "channel.open");
  }
  amqp_exchange_declare(conn, kPublishChannel, amqp_cstring_bytes(kExchange),
                        amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "exchange.declare");
  amqp_table_entry_t type_entry;
  type_entry.key = amqp_cstring_bytes("x-queue-type");
  type_entry.value.kind = AMQP_FIELD_KIND_UTF8;
  type_entry.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_table_t queue_args =
      queue_type == "quorum" ? amqp_table_t{1, &type_entry} : amqp_empty_table;
  for (const char* name : {kIn, kOut}) {
    amqp_queue_declare(conn, kPublishChannel, amqp_cstring_bytes(name), 0, 1, 0, 0, queue_args);
    check(amqp_get_rpc_reply(conn), "queue.declare");
    amqp_queue_bind(conn, kPublishChannel, amqp_cstring_bytes(name), amqp_cstring_bytes(kExchange),
                    amqp_cstring_bytes(name), amqp_empty_table);
    check(amqp_get_rpc_reply(conn), "queue.bind");
  }
  if (confirms) {
    amqp_confirm_select(conn, kPublishChannel);
    check(amqp_get_rpc_reply(conn), "confirm.select");
  }
  return conn;
}

amqp_basic_properties_t persistent() {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");
  return props;
}

// Waits for the confirm of the publish just made (one at a time: the first basic.ack or
// basic.nack on the publish channel is its own).
void wait_confirm(amqp_connection_state_t conn) {
  for (;;) {
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
      throw std::runtime_error("waiting for a confirm failed");
    if (frame.frame_type != AMQP_FRAME_METHOD || frame.channel != kPublishChannel) continue;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) return;
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD)
      throw std::runtime_error("the broker nacked a publish");
  }
}

int consume(const Args& args) {
  amqp_connection_state_t conn = connect(args, /*confirms=*/true);
  // Prefetch 1: the broker sends the next delivery only after this one's ack, so nothing but the
  // confirm arrives while the consumer waits for it.
  amqp_basic_qos(conn, kConsumeChannel, 0, 1, 0);
  check(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, kConsumeChannel, amqp_cstring_bytes(kIn), amqp_empty_bytes, 0,
                     /*no_ack=*/0, 0, amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "basic.consume");
  amqp_basic_properties_t props = persistent();
  for (;;) {
    amqp_maybe_release_buffers(conn);
    amqp_envelope_t envelope;
    check(amqp_consume_message(conn, &envelope, nullptr, 0), "consume");
    if (amqp_basic_publish(conn, kPublishChannel, amqp_cstring_bytes(kExchange),
                           amqp_cstring_bytes(kOut), 0, 0, &props,
                           envelope.message.body) != AMQP_STATUS_OK)
      throw std::runtime_error("basic.publish failed");
    wait_confirm(conn);
    if (amqp_basic_ack(conn, kConsumeChannel, envelope.delivery_tag, 0) != AMQP_STATUS_OK)
      throw std::runtime_error("basic.ack failed");
    amqp_destroy_envelope(&envelope);
  }
}

// Messages ready in `queue` (queue.declare passive).
std::uint64_t ready_count(amqp_connection_state_t conn, const char* queue) {
  auto* ok = amqp_queue_declare(conn, kPublishChannel, amqp_cstring_bytes(queue), 1, 0, 0, 0,
                                amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "queue.declare (passive)");
  return ok->message_count;
}

int pace(const Args& args) {
  double rate = args.number("rate", 100);
  std::uint64_t total = paced_count(rate, args.number("seconds", 1));
  double timeout_s = args.number("timeout", 60);
  std::string body = envelope_with_payload(static_cast<std::size_t>(args.number("payload", 64)));
  // No confirms: waiting for each (a quorum queue's fsync, milliseconds under load) made the
  // pacer fall behind its rate; the messages are persistent all the same.
  amqp_connection_state_t conn = connect(args, /*confirms=*/false);
  std::uint64_t out_before = ready_count(conn, kOut);
  amqp_basic_properties_t props = persistent();
  std::int64_t start = monotonic_ns();
  for (std::uint64_t i = 0; i < total; ++i) {
    sleep_until_ns(start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate));
    if (amqp_basic_publish(conn, kPublishChannel, amqp_cstring_bytes(kExchange),
                           amqp_cstring_bytes(kIn), 0, 0, &props,
                           amqp_bytes_t{body.size(), body.data()}) != AMQP_STATUS_OK)
      throw std::runtime_error("basic.publish failed");
  }
  double elapsed_s = static_cast<double>(monotonic_ns() - start) / 1e9;
  std::int64_t deadline = monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9);
  for (;;) {
    std::uint64_t out = ready_count(conn, kOut);
    if (out >= out_before + total) break;
    if (monotonic_ns() > deadline) {
      std::fprintf(stderr,
                   "bench_floor_rabbitmq: %" PRIu64 " of %" PRIu64
                   " messages reached "
                   "%s after %.0f s: is a consumer running?\n",
                   out - out_before, total, kOut, timeout_s);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  std::printf("{\"sent\": %" PRIu64 ", \"msgs_per_s\": %.1f}\n", total,
              static_cast<double>(total) / elapsed_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "";
  try {
    Args args(argc, argv, 2);
    if (command == "consume") return consume(args);
    if (command == "pace") return pace(args);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_floor_rabbitmq: %s\n", error.what());
    return 2;
  }
  std::fprintf(stderr,
               "usage: bench_floor_rabbitmq consume --host H --port P --vhost V "
               "[--queue-type quorum|classic]\n"
               "       bench_floor_rabbitmq pace --host H --port P --vhost V --rate R --seconds S "
               "[--payload B] [--queue-type quorum|classic] [--timeout S]\n");
  return 2;
}
