// Template definitions of service.hpp.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asya::gateway {

template <class T>
boost::asio::awaitable<T> Service::blocking(std::function<T()> work) {
  // co_spawn onto the pool runs `work` there; the awaiting coroutine resumes on its own executor.
  std::optional<T> result = co_await boost::asio::co_spawn(
      pool_,
      [work = std::move(work)]() -> boost::asio::awaitable<std::optional<T>> { co_return work(); },
      boost::asio::use_awaitable);
  co_return std::move(*result);
}

}  // namespace asya::gateway
