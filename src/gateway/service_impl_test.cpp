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
