// Internal to common/http (the plain HTTP/1.1 path, plain_http.hpp): one request and its answer
// over one open connection, and the waiting and wording both that and the connecting share.
#pragma once

#include <strings.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/http/client.hpp"
#include "common/http/plain_http.hpp"
#include "common/http/transfer.hpp"

namespace asya::http::detail {

using Clock = std::chrono::steady_clock;

// The largest status line and headers (together) and the longest chunk-size line accepted, as
// libcurl's CURL_MAX_HTTP_HEADER: a server that sends more gets an error, not our memory.
inline constexpr std::size_t kMaxHeadBytes = 100 * 1024;
inline constexpr std::size_t kMaxChunkLine = 1024;

// libcurl's wording of the same failures, so that a message reads the same on either path.
inline constexpr std::string_view kCouldNotResolve = "Couldn't resolve host name";
inline constexpr std::string_view kCouldNotConnect = "Couldn't connect to server";
inline constexpr std::string_view kTimedOut = "Timeout was reached";
inline constexpr std::string_view kSendError = "Failed sending data to the peer";
inline constexpr std::string_view kReceiveError = "Failure when receiving data from the peer";
inline constexpr std::string_view kGotNothing = "Server returned nothing (no headers, no data)";
inline constexpr std::string_view kWeirdReply = "Weird server reply";
inline constexpr std::string_view kPartial = "Transferred a partial file";

// One failed step of a call: its kind and libcurl-style reason and detail.
struct Failed {
  Failure kind = Failure::kNone;
  std::string_view reason;
  std::string detail;
  bool before_answer = false;  // no byte of the answer had arrived (a kept connection may retry)
};

// Header names compare without regard to case; header values lose the spaces and tabs around them
// (and a trailing CR).
inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
inline std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

// A deadline that never passes when the time allowed is zero (no limit).
Clock::time_point deadline_after(Clock::time_point start, std::chrono::milliseconds allowed);

enum class Wait { kReady, kTimeout, kCancelled };

// Waits until `fd` has `events`, in steps of at most 100 ms when there is a cancel flag to watch.
Wait wait_for(int fd, short events, Clock::time_point deadline, const std::atomic<bool>* cancel);

long long elapsed_ms(Clock::time_point since);

// The request line and headers; whether a body goes out follows client.hpp's Request::body.
std::string request_head(const PlainTarget& target, const Request& request, bool with_body);

// Sends `head` and `body` over the connected socket `fd` and reads the answer into `transfer`,
// within the timeouts and cancel flag of `request` (counted from `started`). On success (`failed`
// untouched, kind kNone), returns whether the connection can carry another call; on a failure,
// false with `failed` set.
bool exchange(int fd, const Request& request, Transfer& transfer, Clock::time_point started,
              std::string_view head, std::string_view body, Failed& failed);

}  // namespace asya::http::detail
