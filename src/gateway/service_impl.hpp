// Template definitions of service.hpp.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asya::gateway {

namespace detail {
// GCC 12 destroys twice a temporary lambda with non-trivial captures created inside a co_await
// expression. So callers name the lambda first and pass it by reference, Service::blocking is a
// plain function that builds the std::function, and only these helpers are coroutines.
template <class T>
boost::asio::awaitable<std::optional<T>> run_work(std::function<T()> work) {
  co_return work();
}

template <class T>
boost::asio::awaitable<T> run_on(boost::asio::thread_pool::executor_type pool,
                                 std::function<T()> work) {
  // Spawned on the pool, `work` runs there; the awaiting coroutine resumes on its own executor.
  std::optional<T> result = co_await boost::asio::co_spawn(pool, run_work<T>(std::move(work)),
                                                           boost::asio::use_awaitable);
  co_return std::move(*result);
}
}  // namespace detail

template <class T, class Work>
boost::asio::awaitable<T> Service::blocking(Work&& work) {
  return detail::run_on<T>(pool_.get_executor(), std::function<T()>(std::forward<Work>(work)));
}

}  // namespace asya::gateway
