#include "local/managed_process.hpp"

#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

namespace asya::local {

CrashStreak::Verdict CrashStreak::record_crash(SteadyClock::time_point started,
                                               SteadyClock::time_point now) {
  bool quick = now - started < policy_.healthy_after;
  // A crash after a healthy run starts a new streak of one.
  quick_crashes_ = quick ? quick_crashes_ + 1 : 1;
  auto backoff = policy_.backoff_initial;
  for (int i = 1; i < quick_crashes_ && backoff < policy_.backoff_max; ++i) backoff *= 2;
  Verdict verdict;
  verdict.backoff = std::min(backoff, policy_.backoff_max);
  if (quick_crashes_ >= policy_.crash_loop_after && !crash_looping_) {
    crash_looping_ = true;
    verdict.entered_crash_loop = true;
  }
  return verdict;
}

CrashStreak::Verdict CrashStreak::record_start_failure() {
  ++quick_crashes_;
  Verdict verdict;
  verdict.backoff = policy_.backoff_max;
  if (quick_crashes_ >= policy_.crash_loop_after && !crash_looping_) {
    crash_looping_ = true;
    verdict.entered_crash_loop = true;
  }
  return verdict;
}

bool CrashStreak::note_running(SteadyClock::time_point started, SteadyClock::time_point now) {
  if (quick_crashes_ == 0 || now - started < policy_.healthy_after) return false;
  bool was_looping = crash_looping_;
  quick_crashes_ = 0;
  crash_looping_ = false;
  return was_looping;
}

ManagedProcess::ManagedProcess(std::string name, std::optional<RestartPolicy> restart)
    : name_(std::move(name)),
      restarting_(restart.has_value()),
      streak_(restart.value_or(RestartPolicy{})) {}

ManagedProcess::~ManagedProcess() {
  if (pid_) ::kill(pid_, SIGKILL);
}

Status ManagedProcess::start(const ProcessSpec& spec, SteadyClock::time_point now) {
  spec_ = spec;
  spec_->output_fd = -1;  // a pipe given for this start is the caller's, closed after it
  waiting_for_restart_ = false;
  auto pid = spawn(spec);
  if (!pid) return Error{fmt::format("{}: {}", name_, pid.error().message)};
  pid_ = *pid;
  stopping_ = false;
  started_ = now;
  return Status::Ok();
}

Status ManagedProcess::restart(SteadyClock::time_point now) {
  if (!spec_) return Error{fmt::format("{}: never started", name_)};
  ProcessSpec spec = *spec_;
  return start(spec, now);
}

std::optional<ManagedProcess::Exit> ManagedProcess::on_exit(pid_t pid,
                                                            SteadyClock::time_point now) {
  if (pid == 0 || pid != pid_) return std::nullopt;
  pid_ = 0;
  Exit exit;
  exit.expected = stopping_;
  if (!stopping_ && restarting_) {
    auto verdict = streak_.record_crash(started_, now);
    exit.backoff = verdict.backoff;
    exit.entered_crash_loop = verdict.entered_crash_loop;
    restart_at_ = now + verdict.backoff;
    waiting_for_restart_ = true;
  }
  return exit;
}

void ManagedProcess::stop(SteadyClock::time_point deadline) {
  waiting_for_restart_ = false;
  if (!pid_ || stopping_) return;
  stopping_ = true;
  deadline_ = deadline;
  ::kill(pid_, SIGTERM);
}

void ManagedProcess::enforce_deadline(SteadyClock::time_point now) {
  if (pid_ && stopping_ && now >= deadline_) ::kill(pid_, SIGKILL);
}

void ManagedProcess::kill_now() {
  if (pid_) ::kill(pid_, SIGKILL);
}

void ManagedProcess::signal(int signal) const {
  if (pid_) ::kill(pid_, signal);
}

bool ManagedProcess::restart_due(SteadyClock::time_point now) const {
  return restarting_ && waiting_for_restart_ && pid_ == 0 && now >= restart_at_;
}

void ManagedProcess::note_running(SteadyClock::time_point now) {
  if (restarting_ && pid_) streak_.note_running(started_, now);
}

void ManagedProcess::retry_later(SteadyClock::time_point now) {
  if (!restarting_) return;
  waiting_for_restart_ = true;
  restart_at_ = now + streak_.policy().backoff_max;
}

}  // namespace asya::local
