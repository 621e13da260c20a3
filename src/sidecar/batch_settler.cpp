#include "sidecar/batch_settler.hpp"

#include <utility>

namespace asya::sidecar {

BackgroundSettler::~BackgroundSettler() {
  wait();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackgroundSettler::hold(std::function<void()> job) {
  release();  // a held job is never overtaken
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !job_ && !running_; });
  }
  held_ = std::move(job);
}

void BackgroundSettler::release() {
  if (!held_) return;
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !job_ && !running_; });
    job_ = std::move(held_);
    held_ = nullptr;
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  changed_.notify_all();
}

void BackgroundSettler::release(std::function<void()> then) {
  if (!then) return release();
  std::function<void()> job;
  if (held_) {
    job = [held = std::move(held_), then = std::move(then)] {
      held();
      then();
    };
    held_ = nullptr;
  } else {
    job = std::move(then);
  }
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !job_ && !running_; });
    job_ = std::move(job);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  changed_.notify_all();
}

void BackgroundSettler::run(std::function<void()> job) {
  hold(std::move(job));
  release();
}

void BackgroundSettler::wait() {
  release();
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !job_ && !running_; });
}

void BackgroundSettler::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return job_ || stopping_; });
    if (!job_) return;  // stopping, nothing left
    std::function<void()> job = std::move(job_);
    job_ = nullptr;
    running_ = true;
    lock.unlock();
    job();
    job = nullptr;  // what the job owned is destroyed here, on this thread, outside the lock
    lock.lock();
    running_ = false;
    changed_.notify_all();
  }
}

}  // namespace asya::sidecar
