#include "wire/call_order.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace asya::wire {
namespace {

constexpr auto kDeadline = std::chrono::seconds(30);

TEST(CallOrder, ALaterTicketBeginsOnlyAfterTheEarlierOneEnded) {
  CallOrder order;
  const auto first = order.take();
  const auto second = order.take();
  std::vector<int> ran;  // written by one holder at a time (the order is the lock)
  // The later ticket asks first: it must still wait for the earlier one.
  auto later = std::async(std::launch::async, [&] {
    order.begin(second);
    ran.push_back(2);
    order.end(second);
  });
  order.begin(first);
  ran.push_back(1);
  order.end(first);
  ASSERT_EQ(later.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
}

TEST(CallOrder, ATicketEndedUnusedDoesNotHoldBackTheNextOnes) {
  CallOrder order;
  const auto first = order.take();
  const auto unused = order.take();  // a request that called no handler, or whose peer closed
  const auto third = order.take();
  order.end(unused);
  order.begin(first);
  order.end(first);
  auto last = std::async(std::launch::async, [&] {
    order.begin(third);
    order.end(third);
  });
  EXPECT_EQ(last.wait_for(kDeadline), std::future_status::ready);
}

TEST(CallOrder, EndingATicketTwiceEndsItOnce) {
  CallOrder order;
  const auto first = order.take();
  const auto second = order.take();
  const auto third = order.take();
  order.end(first);
  order.end(first);  // e.g. after the call, and again when the request is done
  order.begin(second);
  std::vector<int> ran{2};
  auto later = std::async(std::launch::async, [&] {
    order.begin(third);
    ran.push_back(3);
    order.end(third);
  });
  order.end(first);  // once more while the second runs: the third still waits for it
  ran.push_back(22);
  order.end(second);
  ASSERT_EQ(later.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(ran, (std::vector<int>{2, 22, 3}));
}

TEST(CallOrder, ManyThreadsRunInTicketOrderWhateverOrderTheyAsk) {
  CallOrder order;
  constexpr int kThreads = 16;
  std::vector<CallOrder::Ticket> tickets;
  for (int i = 0; i < kThreads; ++i) tickets.push_back(order.take());
  std::vector<CallOrder::Ticket> ran;
  std::vector<std::thread> threads;
  for (int i = kThreads - 1; i >= 0; --i) {  // started last ticket first
    threads.emplace_back([&, ticket = tickets[static_cast<std::size_t>(i)]] {
      CallTurn turn(order, ticket);
      turn.begin();
      ran.push_back(ticket);
    });  // ~CallTurn ends it
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ran, tickets);
}

}  // namespace
}  // namespace asya::wire
