#include "transport/rabbitmq/amqp_connection.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/env.hpp"
#include "transport/rabbitmq/dial.hpp"

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

// "1s", "1500ms": a bound as the user wrote it, for messages.
std::string bound_text(std::chrono::milliseconds bound) {
  return format_duration(bound);
}

// A 406 on queue.declare because an argument that only the queue type decides differs from the
// existing queue's ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue ...").
bool is_queue_type_mismatch(const std::string& failure) {
  if (failure.find("PRECONDITION_FAILED") == std::string::npos) return false;
  for (const char* arg : {"'x-queue-type'", "'x-dead-letter-strategy'", "'x-overflow'"})
    if (failure.find(std::string("inequivalent arg ") + arg) != std::string::npos) return true;
  return false;
}

}  // namespace

std::string library_error_text(int status, int saved_errno) {
  std::string text = amqp_error_string2(status);
  if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno != 0)
    text += std::string(" (") + std::strerror(saved_errno) + ")";
  return text;
}

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

std::string AmqpConnection::login_failure_text(const amqp_rpc_reply_t& login,
                                               int saved_errno) const {
  const std::string where = settings_.describe();
  if (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      login.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* m = static_cast<amqp_connection_close_t*>(login.reply.decoded);
    const std::string text =
        std::to_string(m->reply_code) + " " + std::string(view_of(m->reply_text));
    if (m->reply_code == AMQP_ACCESS_REFUSED) {
      return "cannot log in to RabbitMQ at " + where + ": the broker refused user \"" +
             settings_.username + "\" (" + text +
             "): check the user and password (ASYA_RABBITMQ_URL, or ASYA_RABBITMQ_USERNAME and "
             "ASYA_RABBITMQ_PASSWORD)";
    }
    if (m->reply_code == AMQP_NOT_ALLOWED) {
      return "cannot open virtual host \"" + settings_.vhost + "\" on RabbitMQ at " + where +
             " as user \"" + settings_.username + "\" (" + text +
             "): check that the vhost exists and the user has permissions on it";
    }
    return "the broker at " + where + " closed the connection while logging in: " + text;
  }
  if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && interrupted_.load())
    return "stopping: gave up the AMQP handshake with " + where;
  if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
      login.library_error == AMQP_STATUS_TIMEOUT) {
    // The TCP connect succeeded (the kernel accepts for a frozen process too) and then nothing.
    return "no answer to the AMQP handshake within " + bound_text(settings_.step_timeout()) +
           " (ASYA_RABBITMQ_RPC_TIMEOUT) from " + where +
           ": is the broker frozen or overloaded, or is " + settings_.host + ":" +
           std::to_string(settings_.port) + " not a RabbitMQ AMQP port?";
  }
  if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    // No answer from the broker: it died, is stopping or starting, or a proxy cut the line. The
    // credentials were not even checked, so they are not the suspect.
    return "the connection to RabbitMQ at " + where +
           " was lost during the AMQP handshake, before the broker checked the credentials (is "
           "the broker stopping, starting, overloaded or frozen?): " +
           library_error_text(login.library_error, saved_errno);
  }
  return "cannot log in to RabbitMQ at " + where + ": " + reply_text(login);
}

AmqpConnection::~AmqpConnection() {
  close();
}

int AmqpConnection::fd() const {
  return state_ ? amqp_get_sockfd(state_) : -1;
}

Status AmqpConnection::open(int channels) {
  close();
  broken_ = false;
  if (interrupted_.load()) return Error{"stopping: not connecting to " + settings_.describe()};
  const std::string where = settings_.describe();
  const std::chrono::milliseconds step = settings_.step_timeout();
  timeval step_timeval{static_cast<time_t>(step.count() / 1000),
                       static_cast<suseconds_t>(step.count() % 1000 * 1000)};
  if (settings_.tls) {
    // rabbitmq-c's TLS connect runs on a thread of its own (dial.hpp): a stop ends the wait.
    auto opened = open_tls(settings_, step, interrupted_);
    if (!opened) return opened.error();
    state_ = *opened;
  } else {
    const std::string host_port = settings_.host + ":" + std::to_string(settings_.port);
    auto addresses = lookup_.resolve(settings_.host, settings_.port, step, interrupted_);
    Result<int> fd = addresses ? connect_tcp(**addresses, host_port, step, interrupted_)
                               : Result<int>(addresses.error());
    if (!fd) return Error{"cannot connect to RabbitMQ at " + where + ": " + fd.error().message};
    state_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) {
      ::close(*fd);
      close();
      return Error{"cannot create a socket for " + where};
    }
    amqp_tcp_socket_set_sockfd(socket, *fd);  // rabbitmq-c owns it from here
  }
  // A write the broker takes nothing of (it stopped reading: frozen, or its buffers full) fails
  // after the step timeout, also with the heartbeat off, where rabbitmq-c would wait forever.
  bound_writes(amqp_get_sockfd(state_), step);
  {
    // From here a stop (interrupt()) cuts a stuck handshake or RPC short.
    std::lock_guard lock(fd_mutex_);
    live_fd_ = amqp_get_sockfd(state_);
    if (interrupted_.load()) ::shutdown(live_fd_, SHUT_RDWR);
  }
  // The handshake and every RPC (channel open, qos, consume, declare, close) wait at most one
  // step for the broker's answer: a frozen broker or a peer that is no broker fails the attempt
  // (the link retries), instead of holding it for rabbitmq-c's 12 s handshake or forever.
  amqp_set_handshake_timeout(state_, &step_timeval);
  amqp_set_rpc_timeout(state_, &step_timeval);
  amqp_rpc_reply_t login = amqp_login(
      state_, settings_.vhost.c_str(), 0, kFrameMax, static_cast<int>(settings_.heartbeat.count()),
      AMQP_SASL_METHOD_PLAIN, settings_.username.c_str(), settings_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    const int saved_errno = errno;
    Error error{login_failure_text(login, saved_errno)};
    close();
    return error;
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

void AmqpConnection::interrupt() {
  interrupted_.store(true);
  std::lock_guard lock(fd_mutex_);
  // The fd stays open (only the owner closes it, after clearing live_fd_ under this lock): a
  // blocked poll() or recv() on it returns at once and rabbitmq-c fails the call.
  if (live_fd_ >= 0) ::shutdown(live_fd_, SHUT_RDWR);
}

void AmqpConnection::close() {
  if (state_ == nullptr) return;
  if (!broken_ && !interrupted_.load()) {
    // Best effort, bounded by the step timeout; a dead broker just fails it.
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  }
  {
    std::lock_guard lock(fd_mutex_);
    live_fd_ = -1;
  }
  amqp_destroy_connection(state_);
  state_ = nullptr;
}

bool AmqpConnection::set_cork(bool on) {
  int value = on ? 1 : 0;
  return fd() >= 0 && ::setsockopt(fd(), IPPROTO_TCP, TCP_CORK, &value, sizeof value) == 0;
}

std::string AmqpConnection::heartbeat_timeout_text() const {
  // The negotiated interval (the broker may propose a shorter one); rabbitmq-c gives up after two.
  const int interval = state_ != nullptr ? amqp_get_heartbeat(state_)
                                         : static_cast<int>(settings_.heartbeat.count());
  return "no heartbeat from the broker for " + std::to_string(2 * interval) + " s (2 x the " +
         std::to_string(interval) +
         " s heartbeat, ASYA_RABBITMQ_HEARTBEAT): is the broker frozen or overloaded, or the "
         "network to it cut?";
}

Status AmqpConnection::check_status(int status, std::string_view what) {
  const int saved_errno = errno;  // the failed socket call's, before anything else runs
  if (status == AMQP_STATUS_OK) return Status::Ok();
  broken_ = true;
  // rabbitmq-c's own text ("heartbeat timeout, connection closed") says neither how long nor why.
  std::string why;
  if (status == AMQP_STATUS_HEARTBEAT_TIMEOUT) {
    why = heartbeat_timeout_text();
  } else if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno == ETIMEDOUT) {
    // The kernel gave up (bound_writes): the broker took nothing written for a whole step.
    why = "the broker took nothing written to it for " + bound_text(settings_.step_timeout()) +
          " (ASYA_RABBITMQ_RPC_TIMEOUT): is it frozen, blocking publishers (a resource alarm), "
          "or the network to it cut?";
  } else {
    why = library_error_text(status, saved_errno);
  }
  return Error{std::string(what) + " on " + settings_.describe() + " failed: " + why};
}

Status AmqpConnection::check(const amqp_rpc_reply_t& reply, amqp_channel_t channel,
                             std::string_view what) {
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return Status::Ok();
  const bool library = reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION;
  std::string text =
      std::string(what) + " on " + settings_.describe() + " failed: " +
      (library && interrupted_.load()                                    ? std::string("stopping")
       : library && reply.library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT ? heartbeat_timeout_text()
       : library && reply.library_error == AMQP_STATUS_TIMEOUT
           ? "no answer from the broker within " + bound_text(settings_.step_timeout()) +
                 " (ASYA_RABBITMQ_RPC_TIMEOUT): is the broker frozen or overloaded?"
           : reply_text(reply));
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
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  const std::string failure = reply.reply_type == AMQP_RESPONSE_NORMAL ? "" : reply_text(reply);
  if (Status st = check(reply, channel, std::string(what) + " \"" + queue + "\""); !st) {
    if (!passive && is_open() && is_queue_type_mismatch(failure)) {
      // The queue exists with the other type (made before the default became quorum, or by a
      // process with another ASYA_RABBITMQ_QUEUE_TYPE): use it as it is rather than stop a
      // deployment; only a new queue gets the configured type.
      if (warned_type_.insert(queue).second) {
        spdlog::warn(
            "rabbitmq: queue \"{}\" on {} exists as a {} queue while "
            "ASYA_RABBITMQ_QUEUE_TYPE={} ({}); using it as it is (the setting applies to new "
            "queues). To change its type, drain and delete it (rabbitmqctl delete_queue {}); "
            "the next declaration recreates it.",
            queue, settings_.describe(), settings_.quorum ? "classic" : "quorum",
            settings_.quorum ? "quorum" : "classic", failure, queue);
      }
      return declare(channel, queue, true, amqp_empty_table, what);
    }
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
