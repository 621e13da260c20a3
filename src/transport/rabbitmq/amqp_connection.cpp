#include "transport/rabbitmq/amqp_connection.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <array>
#include <string>

namespace asya::transport::rabbitmq {

namespace {

constexpr int kFrameMax = 131072;

std::string method_error(const amqp_rpc_reply_t& reply) {
  switch (reply.reply.id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
      return "connection closed by the broker: " + std::to_string(m->reply_code) + " " +
             std::string(view_of(m->reply_text));
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
      return std::to_string(m->reply_code) + " " + std::string(view_of(m->reply_text));
    }
    default:
      return "unexpected method " + std::to_string(reply.reply.id) + " from the broker";
  }
}

amqp_table_entry_t string_entry(const char* key, const std::string& value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = bytes_of(value);
  return e;
}

amqp_table_entry_t long_entry(const char* key, std::int64_t value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = value;
  return e;
}

}  // namespace

std::string reply_text(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply (missing RPC reply type)";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      return method_error(reply);
  }
  return "unknown reply";
}

AmqpConnection::AmqpConnection(const RabbitmqSettings& settings) : settings_(settings) {}

AmqpConnection::~AmqpConnection() {
  close();
}

int AmqpConnection::fd() const {
  return state_ ? amqp_get_sockfd(state_) : -1;
}

Status AmqpConnection::open(int channels) {
  close();
  broken_ = false;
  state_ = amqp_new_connection();
  const std::string where = settings_.describe();
  amqp_socket_t* socket = nullptr;
  if (settings_.tls) {
    socket = amqp_ssl_socket_new(state_);
    if (socket && !settings_.ca_file.empty() &&
        amqp_ssl_socket_set_cacert(socket, settings_.ca_file.c_str()) != AMQP_STATUS_OK) {
      close();
      return Error{"cannot read ASYA_RABBITMQ_CA_FILE=\"" + settings_.ca_file + "\" for " + where};
    }
    if (socket) {
      amqp_ssl_socket_set_verify_peer(socket, 1);
      amqp_ssl_socket_set_verify_hostname(socket, 1);
    }
  } else {
    socket = amqp_tcp_socket_new(state_);
  }
  if (socket == nullptr) {
    close();
    return Error{"cannot create a socket for " + where};
  }
  timeval connect_timeout{10, 0};
  int rc =
      amqp_socket_open_noblock(socket, settings_.host.c_str(), settings_.port, &connect_timeout);
  if (rc != AMQP_STATUS_OK) {
    close();
    return Error{"cannot connect to RabbitMQ at " + where + ": " + amqp_error_string2(rc)};
  }
  // RPCs (declare, qos, consume) must not hang forever on a stuck broker.
  timeval rpc_timeout{15, 0};
  amqp_set_rpc_timeout(state_, &rpc_timeout);
  amqp_rpc_reply_t login = amqp_login(
      state_, settings_.vhost.c_str(), 0, kFrameMax, static_cast<int>(settings_.heartbeat.count()),
      AMQP_SASL_METHOD_PLAIN, settings_.username.c_str(), settings_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string text = reply_text(login);
    close();
    return Error{"cannot log in to RabbitMQ at " + where +
                 " (check user, password and vhost): " + text};
  }
  for (int ch = 1; ch <= channels; ++ch) {
    amqp_channel_open(state_, static_cast<amqp_channel_t>(ch));
    if (Status st =
            check(amqp_get_rpc_reply(state_), static_cast<amqp_channel_t>(ch), "opening a channel");
        !st) {
      close();
      return st;
    }
  }
  return Status::Ok();
}

void AmqpConnection::close() {
  if (state_ == nullptr) return;
  if (!broken_) {
    // Best effort, bounded by the RPC timeout; a dead broker just fails it.
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(state_);
  state_ = nullptr;
}

Status AmqpConnection::check_status(int status, std::string_view what) {
  if (status == AMQP_STATUS_OK) return Status::Ok();
  broken_ = true;
  return Error{std::string(what) + " on " + settings_.describe() +
               " failed: " + amqp_error_string2(status)};
}

Status AmqpConnection::check(const amqp_rpc_reply_t& reply, amqp_channel_t channel,
                             std::string_view what) {
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return Status::Ok();
  std::string text =
      std::string(what) + " on " + settings_.describe() + " failed: " + reply_text(reply);
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    // The broker closed this channel only: confirm the close, then reopen it.
    amqp_channel_close_ok_t close_ok;
    if (amqp_send_method(state_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) !=
        AMQP_STATUS_OK) {
      broken_ = true;
      return Error{text};
    }
    amqp_channel_open(state_, channel);
    if (amqp_get_rpc_reply(state_).reply_type != AMQP_RESPONSE_NORMAL) broken_ = true;
    return Error{text};
  }
  broken_ = true;
  return Error{text};
}

Status AmqpConnection::declare_exchange(amqp_channel_t channel) {
  amqp_exchange_declare(state_, channel, bytes_of(settings_.exchange), amqp_cstring_bytes("direct"),
                        /*passive=*/0, /*durable=*/1, /*auto_delete=*/0, /*internal=*/0,
                        amqp_empty_table);
  return check(amqp_get_rpc_reply(state_), channel,
               "declaring exchange \"" + settings_.exchange + "\"");
}

Result<QueueCounts> AmqpConnection::declare(amqp_channel_t channel, const std::string& queue,
                                            bool passive, amqp_table_t arguments,
                                            std::string_view what) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(state_, channel, bytes_of(queue), passive ? 1 : 0, /*durable=*/1,
                         /*exclusive=*/0, /*auto_delete=*/0, arguments);
  if (Status st =
          check(amqp_get_rpc_reply(state_), channel, std::string(what) + " \"" + queue + "\"");
      !st) {
    return st.error();
  }
  return QueueCounts{ok->message_count, ok->consumer_count};
}

Status AmqpConnection::declare_queue(amqp_channel_t channel, const std::string& queue) {
  static const std::string kQuorum = "quorum";
  std::array<amqp_table_entry_t, 1> entries{string_entry("x-queue-type", kQuorum)};
  // Classic queues are declared without arguments, so queues made by other clients (the
  // published Go sidecar) are accepted as they are.
  amqp_table_t arguments = settings_.quorum ? amqp_table_t{1, entries.data()} : amqp_empty_table;
  auto declared = declare(channel, queue, false, arguments, "declaring queue");
  if (!declared) return declared.error();
  amqp_queue_bind(state_, channel, bytes_of(queue), bytes_of(settings_.exchange), bytes_of(queue),
                  amqp_empty_table);
  return check(amqp_get_rpc_reply(state_), channel,
               "binding queue \"" + queue + "\" to exchange \"" + settings_.exchange + "\"");
}

Status AmqpConnection::declare_delay_queue(amqp_channel_t channel, const std::string& delay_queue,
                                           const std::string& queue,
                                           std::chrono::milliseconds bucket) {
  static const std::string kQuorum = "quorum";
  static const std::string kAtLeastOnce = "at-least-once";
  static const std::string kRejectPublish = "reject-publish";
  std::array<amqp_table_entry_t, 7> entries;
  std::size_t n = 0;
  entries[n++] = long_entry("x-message-ttl", bucket.count());
  entries[n++] = string_entry("x-dead-letter-exchange", settings_.exchange);
  entries[n++] = string_entry("x-dead-letter-routing-key", queue);
  // Unused for an hour longer than the delay: gone. Publishers redeclare (renewing this lease)
  // well within that, so a message never outlives its queue.
  entries[n++] = long_entry("x-expires", bucket.count() + 3'600'000);
  if (settings_.quorum) {
    // Quorum queues can dead-letter at-least-once (classic ones only at-most-once).
    entries[n++] = string_entry("x-queue-type", kQuorum);
    entries[n++] = string_entry("x-dead-letter-strategy", kAtLeastOnce);
    entries[n++] = string_entry("x-overflow", kRejectPublish);
  }
  auto declared =
      declare(channel, delay_queue, false, amqp_table_t{static_cast<int>(n), entries.data()},
              "declaring delay queue");
  if (!declared) return declared.error();
  return Status::Ok();
}

Result<QueueCounts> AmqpConnection::inspect_queue(amqp_channel_t channel,
                                                  const std::string& queue) {
  return declare(channel, queue, true, amqp_empty_table, "inspecting queue");
}

}  // namespace asya::transport::rabbitmq
