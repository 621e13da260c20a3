// What publisher.cpp and publisher_write.cpp share: a job of the Publisher and the channels.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "transport/rabbitmq/publisher.hpp"

namespace asya::transport::rabbitmq {

namespace publisher_detail {
constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kControlChannel = 2;
// Delay queues expire after an hour unused (see declare_delay_queue); redeclaring renews that, so
// a publisher redeclares a delay queue it has not declared for this long before using it.
constexpr auto kDelayRedeclare = std::chrono::minutes(5);
}  // namespace publisher_detail

struct Publisher::Job {
  enum class State { kQueued, kRunning, kUnconfirmed, kDone };
  // A publish (task empty) or a task run on the connection thread.
  std::string queue;
  std::string_view body;
  std::chrono::milliseconds bucket{0};
  std::uint32_t delivered = 0;
  std::function<Status(AmqpConnection&)> task;

  // Guarded by Publisher::mutex_.
  State state = State::kQueued;
  bool abandoned = false;
  Status result;
  std::string description;   // a task's, for errors ("declaring queue X", ...)
  Waiter* waiter = nullptr;  // the submit_all() call waiting for it, until that returns

  // For errors: the task's description, or "publish to queue X[ with delay Nms]" (built only when
  // needed: not once per message).
  std::string what() const {
    if (!description.empty() || task) return description;
    std::string text = "publish to queue \"" + queue + "\"";
    if (bucket.count() > 0) text += " with delay " + std::to_string(bucket.count()) + "ms";
    return text;
  }
};

}  // namespace asya::transport::rabbitmq
