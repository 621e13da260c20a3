// A worker's background settler (internal to the sidecar): settles a full batch (sends its
// outputs, acks its items; batch_settle.hpp) on its own thread while the worker calls the runtime
// with the next batch. On a saturated queue the sidecar's settling then overlaps the runtime's
// work instead of adding to it, and the runtime is not left idle between batches.
//
// The worker hands a batch's settling over with hold(): it starts only at release(), which the
// worker calls once it has leased the next batch, right before calling the runtime with it. So
// the next lease does not wait for the settling's write transactions (both take the SQLite write
// lock), and the settling runs while the runtime works. When nothing more is ready, the worker
// releases at once: a held batch's outputs never wait for a next batch.
//
// At most one job runs or is held at a time: hold() and run() wait for the previous job first. So
// outputs are still sent batch after batch, in order, and a worker holds at most two batches (the
// one being settled and the one in the runtime), plus the one leased ahead by a job that
// release(then) extended (batch_ahead.hpp). A job must own everything it touches: the caller
// returns before it runs.
//
// Threads: every method is called by the owning worker only. The thread starts at the first
// release() of a job: a worker that never settles in the background pays for no thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace asya::sidecar {

class BackgroundSettler {
 public:
  BackgroundSettler() = default;
  // Waits for the job in progress, then stops the thread.
  ~BackgroundSettler();
  BackgroundSettler(const BackgroundSettler&) = delete;
  BackgroundSettler& operator=(const BackgroundSettler&) = delete;

  // Waits until the previous job (if any) has finished, then keeps `job` without starting it.
  void hold(std::function<void()> job);
  // Whether a job is held (handed over and not released yet).
  bool holding() const { return held_ != nullptr; }
  // Starts the held job, if any, on the settler's thread; returns without waiting for it.
  void release();
  // Starts the held job, if any, followed by `then` on the settler's thread (`then` alone when
  // nothing is held); returns without waiting for them. The worker's next batch is leased so
  // (batch_ahead.hpp): after the held batch's settling, while the runtime works.
  void release(std::function<void()> then);
  // hold(job), then release().
  void run(std::function<void()> job);
  // Releases the held job, if any, and returns once no job is running (at once when idle).
  void wait();

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::function<void()> held_;  // the worker's only: handed over, not released yet
  std::function<void()> job_;   // released, not taken by the thread yet
  bool running_ = false;        // the thread is running a job
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace asya::sidecar
