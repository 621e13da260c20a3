// The cancellation feed GET /envelopes/cancellations (PROTOCOL §7), a sidecar endpoint: the jobs
// cancelled after a position of the job store's cancellation log, held open (long poll) until
// there is one or the wait is over.
#include <boost/json.hpp>

#include <charconv>

#include "common/json_text.hpp"
#include "common/percent_decode.hpp"
#include "gateway/api.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

// At most this many entries per answer (the sidecar asks again at once when "more" is set).
constexpr std::size_t kFeedPage = 1000;
// The longest a request may be held. Sidecars ask for less (ASYA_GATEWAY_CANCEL_FEED_WAIT).
constexpr std::int64_t kMaxWaitMs = 60'000;

template <class Int>
bool parse_integer(const std::string& text, Int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

awaitable<Response> Api::cancellation_feed(const http::Request& request) {
  std::int64_t after = -1;
  std::int64_t wait_ms = 0;
  auto question = request.target.find('?');
  std::string_view query = question == std::string::npos
                               ? std::string_view()
                               : std::string_view(request.target).substr(question + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq));
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!name || !value)
      co_return Response::error(
          400, "query parameter \"" + std::string(pair) + "\" has a broken percent-escape");
    if (*name == "after") {
      if (!parse_integer(*value, after) || after < -1)
        co_return Response::error(400,
                                  "after must be -1 (from the oldest entry kept) or a position "
                                  "a previous answer gave as next_after, got \"" +
                                      *value + "\"");
    } else if (*name == "wait_ms") {
      if (!parse_integer(*value, wait_ms) || wait_ms < 0 || wait_ms > kMaxWaitMs)
        co_return Response::error(400, "wait_ms must be an integer from 0 to " +
                                           std::to_string(kMaxWaitMs) + ", got \"" + *value + "\"");
    } else {
      co_return Response::error(400, "unknown query parameter \"" + *name +
                                         "\" (GET /envelopes/cancellations accepts after, "
                                         "wait_ms)");
    }
  }
  // Subscribed before the first read, so a cancel between a read and the wait wakes the wait.
  // Woken by this gateway's cancels at once, by other replicas' through the store's notification
  // (PostgreSQL), and without either after the poll interval (a lost notification).
  auto subscription = service_.notifier().subscribe(kCancellationNotice);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    auto work = [this, after] { return service_.store().cancellations_after(after, kFeedPage); };
    auto page = co_await service_.blocking<Result<CancellationPage>>(std::move(work));
    if (!page.ok()) co_return Response::error(503, page.error().message);
    const CancellationPage& p = page.value();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!p.cancellations.empty() || p.reset || left.count() <= 0) {
      json::array ids;
      for (const Cancellation& c : p.cancellations) ids.emplace_back(c.job_id);
      json::object answer{{"next_after", p.next_after}, {"cancelled", std::move(ids)}};
      if (p.more) answer["more"] = true;
      if (p.reset) answer["reset"] = true;
      co_return Response::json(200, to_json_text(answer));
    }
    after = p.next_after;
    co_await subscription->wait(std::min(left, service_.poll_interval()));
  }
}

}  // namespace asya::gateway
