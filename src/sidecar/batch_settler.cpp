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
    changed_.wait(lock, [this] { return !job_; });
  }
  held_ = std::move(job);
}

void BackgroundSettler::release() {
  if (!held_) return;
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !job_; });
    job_ = std::move(held_);
    held_ = nullptr;
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
  changed_.wait(lock, [this] { return !job_; });
}

void BackgroundSettler::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return job_ || stopping_; });
    if (!job_) return;  // stopping, nothing left
    lock.unlock();
    job_();  // job_ is only replaced once it is empty again, below
    lock.lock();
    job_ = nullptr;
    changed_.notify_all();
  }
}

}  // namespace asya::sidecar
