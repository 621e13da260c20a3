#include "common/shutdown_signals.hpp"

#include <pthread.h>

#include <ctime>
#include <string>

namespace asya {

SignalSet::SignalSet(std::initializer_list<int> signals) {
  sigemptyset(&set_);
  for (int signal : signals) sigaddset(&set_, signal);
}

void SignalSet::block() const {
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int SignalSet::wait_for(std::chrono::milliseconds timeout) const {
  if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
  timespec wait{static_cast<std::time_t>(timeout.count() / 1000),
                static_cast<long>(timeout.count() % 1000) * 1'000'000L};
  int signal = sigtimedwait(&set_, nullptr, &wait);
  return signal > 0 ? signal : 0;  // -1: EAGAIN (timeout) or EINTR (another signal)
}

bool SignalSet::contains(int signal) const {
  return sigismember(&set_, signal) == 1;
}

SignalWatcher::SignalWatcher(SignalSet signals, std::function<void(int)> on_signal)
    : thread_([this, signals, on_signal = std::move(on_signal)] {
        while (!stopping_.load()) {
          if (int signal = signals.wait_for(std::chrono::milliseconds(200))) on_signal(signal);
        }
      }) {}

SignalWatcher::~SignalWatcher() {
  stopping_.store(true);
  thread_.join();
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGCHLD:
      return "SIGCHLD";
    case SIGQUIT:
      return "SIGQUIT";
  }
  return "signal " + std::to_string(signal);
}

}  // namespace asya
