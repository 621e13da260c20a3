// detail::run_on_then (Service::blocking_then): the work runs on the pool, the coroutine resumes on
// its own executor with the result, the follow-up runs on the same pool thread, and an exception
// of the work reaches the coroutine with no follow-up run.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <stdexcept>
#include <thread>

#include "gateway/service.hpp"

namespace asio = boost::asio;
using asya::gateway::detail::run_on_then;

TEST(RunOnThen, WorkAndFollowUpShareAPoolThreadAndTheCoroutineResumesOnItsOwn) {
  asio::io_context io;
  asio::thread_pool pool(2);
  std::thread::id io_thread = std::this_thread::get_id(), work_thread, follow_up_thread,
                  resumed_thread;
  std::atomic<bool> followed{false};
  int result = 0;
  auto work = [&] {
    work_thread = std::this_thread::get_id();
    return 41;
  };
  auto then = [&](const int& value) -> std::function<void()> {
    EXPECT_EQ(value, 41);
    return [&] {
      follow_up_thread = std::this_thread::get_id();
      followed = true;
    };
  };
  auto coroutine = [&]() -> asio::awaitable<void> {
    result = co_await run_on_then<int>(pool.get_executor(), work, then) + 1;
    resumed_thread = std::this_thread::get_id();
  };
  asio::co_spawn(io, coroutine(), asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(result, 42);
  EXPECT_TRUE(followed.load());
  EXPECT_EQ(resumed_thread, io_thread);
  EXPECT_NE(work_thread, io_thread);
  EXPECT_EQ(follow_up_thread, work_thread);
}

TEST(RunOnThen, NoFollowUpWhenThenReturnsNone) {
  asio::io_context io;
  asio::thread_pool pool(1);
  int result = 0;
  auto work = [] { return 7; };
  auto then = [](const int&) -> std::function<void()> { return {}; };
  auto coroutine = [&]() -> asio::awaitable<void> {
    result = co_await run_on_then<int>(pool.get_executor(), work, then);
  };
  asio::co_spawn(io, coroutine(), asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(result, 7);
}

TEST(RunOnThen, AnExceptionOfTheWorkReachesTheCoroutineAndNoFollowUpRuns) {
  asio::io_context io;
  asio::thread_pool pool(1);
  bool then_called = false;
  std::string caught;
  auto work = []() -> int { throw std::runtime_error("store broke"); };
  auto then = [&](const int&) -> std::function<void()> {
    then_called = true;
    return {};
  };
  auto coroutine = [&]() -> asio::awaitable<void> {
    try {
      co_await run_on_then<int>(pool.get_executor(), work, then);
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  };
  asio::co_spawn(io, coroutine(), asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(caught, "store broke");
  EXPECT_FALSE(then_called);
}

// detail::run_on (Service::blocking): posted to the pool and back, no coroutine spawned there.
TEST(RunOn, TheWorkRunsOnThePoolAndTheCoroutineResumesOnItsOwnThreadWithTheResult) {
  asio::io_context io;
  asio::thread_pool pool(2);
  std::thread::id io_thread = std::this_thread::get_id(), work_thread, resumed_thread;
  std::string result;
  auto coroutine = [&]() -> asio::awaitable<void> {
    std::function<std::string()> work = [&] {
      work_thread = std::this_thread::get_id();
      return std::string("job-1");
    };
    result = co_await asya::gateway::detail::run_on<std::string>(pool.get_executor(), work);
    resumed_thread = std::this_thread::get_id();
  };
  asio::co_spawn(io, coroutine(), asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(result, "job-1");
  EXPECT_NE(work_thread, io_thread);
  EXPECT_EQ(resumed_thread, io_thread);
}

TEST(RunOn, AnExceptionOfTheWorkReachesTheCoroutine) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::string caught;
  auto coroutine = [&]() -> asio::awaitable<void> {
    std::function<int()> work = []() -> int { throw std::runtime_error("store broke"); };
    try {
      co_await asya::gateway::detail::run_on<int>(pool.get_executor(), work);
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  };
  asio::co_spawn(io, coroutine(), asio::detached);
  io.run();
  pool.join();
  EXPECT_EQ(caught, "store broke");
}

// Notifier::notify posts to the io thread only when a subscription could be woken: a report about
// a job nobody follows (an async call) costs no wake-up of the io thread.
TEST(Notifier, NotifyPostsNothingWhenNobodyWaitsForTheJob) {
  asio::io_context io;
  asya::gateway::Notifier notifier(io);
  notifier.notify("job-1");
  notifier.notify("job-1", false);
  EXPECT_EQ(io.poll(), 0u);  // no handler was posted
  EXPECT_FALSE(notifier.has_waiters("job-1"));
}

TEST(Notifier, ASubscriberIsWokenAndAFinalOnlyOneOnlyByAChangeThatMayBeFinal) {
  asio::io_context io;
  asya::gateway::Notifier notifier(io);
  auto any = notifier.subscribe("job-1");
  auto final_only = notifier.subscribe("job-2", true);
  EXPECT_TRUE(notifier.has_waiters("job-1", false));
  EXPECT_FALSE(notifier.has_waiters("job-2", false));
  EXPECT_TRUE(notifier.has_waiters("job-2", true));
  EXPECT_FALSE(notifier.has_waiters("job-3"));

  notifier.notify("job-2", false);  // progress only: the final-only waiter sleeps on
  EXPECT_EQ(io.poll(), 0u);
  io.restart();

  // A wait after the notification returns at once (the flag is set on the io thread); one that
  // was not notified runs into its time limit.
  notifier.notify("job-1", false);
  notifier.notify("job-2", true);
  EXPECT_EQ(io.poll(), 2u);
  io.restart();
  bool first_woken = false, second_woken = false;
  auto wait = [&](asya::gateway::Notifier::Subscription& s, bool& woken) -> asio::awaitable<void> {
    co_await s.wait(std::chrono::hours(1));
    woken = true;
  };
  asio::co_spawn(io, wait(*any, first_woken), asio::detached);
  asio::co_spawn(io, wait(*final_only, second_woken), asio::detached);
  io.poll();
  EXPECT_TRUE(first_woken);
  EXPECT_TRUE(second_woken);

  // After the subscription ended, nothing is posted for its job any more.
  any.reset();
  EXPECT_FALSE(notifier.has_waiters("job-1"));
  io.restart();
  notifier.notify("job-1");
  EXPECT_EQ(io.poll(), 0u);
}
