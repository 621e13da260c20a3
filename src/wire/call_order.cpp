#include "wire/call_order.hpp"

namespace asya::wire {

CallOrder::Ticket CallOrder::take() {
  std::lock_guard lock(mutex_);
  return issued_++;
}

void CallOrder::begin(Ticket ticket) {
  std::unique_lock lock(mutex_);
  turn_.wait(lock, [&] { return next_ == ticket; });
}

void CallOrder::end(Ticket ticket) {
  {
    std::lock_guard lock(mutex_);
    if (ticket < next_ || ticket >= issued_) return;  // ended before (or never taken)
    if (ticket != next_) {
      ended_.insert(ticket);
      return;
    }
    ++next_;
    while (!ended_.empty() && *ended_.begin() == next_) {
      ended_.erase(ended_.begin());
      ++next_;
    }
  }
  turn_.notify_all();
}

}  // namespace asya::wire
