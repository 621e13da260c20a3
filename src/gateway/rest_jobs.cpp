// GET /envelopes?status=&tool=&limit=&cursor=: recent jobs, newest first, in pages.
#include <boost/json.hpp>

#include <charconv>
#include <cstring>

#include "common/json_text.hpp"
#include "common/percent_decode.hpp"
#include "gateway/api.hpp"

namespace asya::gateway {

namespace json = boost::json;
using boost::asio::awaitable;
using http::Response;

namespace {

constexpr std::size_t kDefaultLimit = 50;
constexpr std::size_t kMaxLimit = 500;

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const std::string& bytes) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out += kBase64Url[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += kBase64Url[(buffer << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> from_base64url(const std::string& text) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const char* at = std::strchr(kBase64Url, c);
    if (!at || c == '\0') return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(at - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

// The opaque cursor: base64url("<created_ms>.<order>:<job id>"), `order` the job's place among
// the jobs of its millisecond (JobCursor). A gateway of an earlier version gave
// base64url("<created_ms>:<job id>"), still accepted (the order is then looked up by the id); it
// in turn refuses the new form with a 400, as any cursor it did not give.
std::string encode_cursor(const JobCursor& cursor) {
  std::string plain = std::to_string(cursor.created_ms);
  if (cursor.order) {
    plain += '.';
    plain += std::to_string(*cursor.order);
  }
  return base64url(plain + ":" + cursor.id);
}

std::optional<JobCursor> decode_cursor(const std::string& text) {
  auto raw = from_base64url(text);
  if (!raw) return std::nullopt;
  auto colon = raw->find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == raw->size()) return std::nullopt;
  JobCursor cursor;
  const char* const end_of_time = raw->data() + colon;
  auto [end, ec] = std::from_chars(raw->data(), end_of_time, cursor.created_ms);
  if (ec != std::errc()) return std::nullopt;
  if (end != end_of_time) {
    std::int64_t order = 0;
    if (*end != '.') return std::nullopt;
    auto [order_end, order_ec] = std::from_chars(end + 1, end_of_time, order);
    if (order_ec != std::errc() || order_end != end_of_time) return std::nullopt;
    cursor.order = order;
  }
  cursor.id = raw->substr(colon + 1);
  // Job ids are text (UUIDs): an id that is not UTF-8 or holds a control character was never
  // given out, and would reach PostgreSQL (an old cursor's id is looked up), which refuses it.
  if (!api::plain_text(cursor.id)) return std::nullopt;
  return cursor;
}

// One job of the list: what a table row needs, without payloads or results.
json::object summary_json(const Job& job) {
  json::object o{{"id", job.id},
                 {"tool", job.tool},
                 {"status", job_status_name(job.status)},
                 {"progress_percent", job.progress_percent},
                 {"message", job.message},
                 {"current_actor_idx", job.current_actor_idx},
                 {"created_at", format_time(job.created_at)},
                 {"updated_at", format_time(job.updated_at)}};
  json::array actors;
  for (const auto& a : job.actors) actors.push_back(json::string(a));
  o["actors"] = std::move(actors);
  if (is_final(job.status)) {
    o["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(job.updated_at - job.created_at)
            .count();
  }
  if (job.status == JobStatus::failed) o["error"] = describe_failure(job);
  if (job.branches.size() > 1) o["branches"] = job.branches.size();
  return o;
}

}  // namespace

awaitable<Response> Api::list_envelopes(const http::Request& request, const Caller& caller) {
  JobFilter filter;
  if (caller.isolated) filter.owner = caller.owner;
  std::optional<JobCursor> after;
  std::size_t limit = kDefaultLimit;
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
    auto name = percent_decode(pair.substr(0, eq), /*plus_is_space=*/true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1),
                                /*plus_is_space=*/true);
    if (!name || !value)
      co_return Response::error(
          400, "query parameter \"" + std::string(pair) + "\" has a broken percent-escape");
    if (*name == "status") {
      auto status = parse_job_status(*value);
      if (!status)
        co_return Response::error(400,
                                  "status must be pending, running, succeeded, failed or "
                                  "cancelled, got \"" +
                                      *value + "\"");
      filter.status = status;
    } else if (*name == "tool") {
      if (value->empty() || !api::plain_text(*value))
        co_return Response::error(400, "tool must name a tool, got \"" + *value + "\"");
      filter.tool = *value;
    } else if (*name == "limit") {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
      if (ec != std::errc() || end != value->data() + value->size() || n < 1 || n > kMaxLimit)
        co_return Response::error(400, "limit must be an integer from 1 to " +
                                           std::to_string(kMaxLimit) + ", got \"" + *value + "\"");
      limit = n;
    } else if (*name == "cursor") {
      after = decode_cursor(*value);
      if (!after)
        co_return Response::error(400, "cursor \"" + *value +
                                           "\" is not one this gateway gave out (use next_cursor "
                                           "of a previous answer as it is)");
    } else {
      co_return Response::error(400, "unknown query parameter \"" + *name +
                                         "\" (GET /envelopes accepts status, tool, limit, cursor)");
    }
  }
  auto work = [this, filter, after, limit] {
    return service_.store().list_jobs(filter, after, limit);
  };
  auto page = co_await service_.blocking<Result<JobPage>>(std::move(work));
  if (!page.ok()) co_return Response::error(503, page.error().message);
  json::array jobs;
  for (const auto& job : page.value().jobs) jobs.push_back(summary_json(job));
  json::object answer{{"jobs", std::move(jobs)}};
  answer["next_cursor"] =
      page.value().next ? json::value(encode_cursor(*page.value().next)) : json::value(nullptr);
  co_return Response::json(200, to_json_text(answer));
}

}  // namespace asya::gateway
