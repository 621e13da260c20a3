// Template definitions of service.hpp.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>

namespace asya::gateway {

namespace detail {
// GCC 12 destroys twice a temporary lambda with non-trivial captures created inside a co_await
// expression. So callers name the lambda first and pass it by reference, Service::blocking is a
// plain function that builds the std::function, and only these helpers are coroutines.
// Runs `work` on the pool and resumes the awaiting coroutine on its own executor with the result
// (or the exception `work` threw): one task posted each way, no coroutine spawned on the pool.
template <class T>
boost::asio::awaitable<T> run_on(boost::asio::thread_pool::executor_type pool,
                                 std::function<T()> work) {
  auto initiate = [pool, work = std::move(work)](auto handler) mutable {
    auto resume = boost::asio::get_associated_executor(handler);
    auto task = [handler = std::move(handler), guard = boost::asio::make_work_guard(resume),
                 work = std::move(work)]() mutable {
      std::exception_ptr failure;
      std::optional<T> value;
      try {
        value.emplace(work());
      } catch (...) {
        failure = std::current_exception();
      }
      auto executor = guard.get_executor();
      boost::asio::post(
          executor, [handler = std::move(handler), failure, value = std::move(value)]() mutable {
            std::move(handler)(failure, std::move(value));
          });
      guard.reset();
    };
    boost::asio::post(pool, std::move(task));
  };
  std::optional<T> result =
      co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                           void(std::exception_ptr, std::optional<T>)>(
          std::move(initiate), boost::asio::use_awaitable);
  co_return std::move(*result);
}

// Like run_on, then runs what `then` returns on the same pool thread once the awaiting coroutine
// has been handed the result: one task on the pool instead of two (each a futex wake-up and two
// task switches).
template <class T>
boost::asio::awaitable<T> run_on_then(boost::asio::thread_pool::executor_type pool,
                                      std::function<T()> work,
                                      std::function<std::function<void()>(const T&)> then) {
  auto initiate = [pool, work = std::move(work), then = std::move(then)](auto handler) mutable {
    auto resume = boost::asio::get_associated_executor(handler);
    auto task = [handler = std::move(handler), guard = boost::asio::make_work_guard(resume),
                 work = std::move(work), then = std::move(then)]() mutable {
      std::exception_ptr failure;
      std::optional<T> value;
      std::function<void()> next;
      try {
        value.emplace(work());
        next = then(*value);
      } catch (...) {
        failure = std::current_exception();
      }
      auto executor = guard.get_executor();
      boost::asio::post(
          executor, [handler = std::move(handler), failure, value = std::move(value)]() mutable {
            std::move(handler)(failure, std::move(value));
          });
      guard.reset();
      if (next) next();
    };
    boost::asio::post(pool, std::move(task));
  };
  std::optional<T> result =
      co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                           void(std::exception_ptr, std::optional<T>)>(
          std::move(initiate), boost::asio::use_awaitable);
  co_return std::move(*result);
}
}  // namespace detail

template <class T, class Work>
boost::asio::awaitable<T> Service::blocking(Work&& work) {
  return detail::run_on<T>(pool_.get_executor(), std::function<T()>(std::forward<Work>(work)));
}

template <class T, class Work, class Then>
boost::asio::awaitable<T> Service::blocking_then(Work&& work, Then&& then) {
  return detail::run_on_then<T>(
      pool_.get_executor(), std::function<T()>(std::forward<Work>(work)),
      std::function<std::function<void()>(const T&)>(std::forward<Then>(then)));
}

}  // namespace asya::gateway
