#include "transport/sqs/sqs_transport.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "common/env.hpp"

namespace asya::transport {

namespace json = boost::json;
using std::chrono::milliseconds;

SqsSettings SqsSettings::from_env(const Environment& environment) {
  SqsSettings s;
  s.aws = aws::Config::from_env("ASYA_SQS_ENDPOINT", "SQS", environment);
  s.create_queues = environment.boolean("ASYA_SQS_CREATE_QUEUES", s.create_queues);
  s.wait_time_seconds = static_cast<int>(
      environment.integer("ASYA_SQS_WAIT_TIME_SECONDS", s.wait_time_seconds, 0, 20));
  s.request_timeout = environment.duration("ASYA_SQS_REQUEST_TIMEOUT", s.request_timeout);
  if (s.request_timeout < milliseconds(100)) {
    throw ConfigError("ASYA_SQS_REQUEST_TIMEOUT=\"" + format_duration(s.request_timeout) +
                      "\" is too short: use at least 100ms (default 30s)");
  }
  return s;
}

namespace {

// Whole seconds, rounded up, clamped to [0, max_seconds].
std::int64_t ceil_seconds(milliseconds value, std::int64_t max_seconds) {
  if (value.count() <= 0) return 0;
  return std::min<std::int64_t>((value.count() + 999) / 1000, max_seconds);
}

constexpr std::int64_t kMaxVisibilitySeconds = 43200;  // 12 h, SQS's limit
constexpr std::int64_t kMaxDelaySeconds = 900;         // 15 min, SQS's limit

class SqsTransport : public Transport {
 public:
  SqsTransport(const Options& options, SqsSettings settings)
      : options_(options),
        settings_(std::move(settings)),
        endpoint_(settings_.aws.endpoint.empty()
                      ? "https://sqs." + settings_.aws.region + ".amazonaws.com"
                      : settings_.aws.endpoint),
        client_(settings_.aws, aws::Scope{.region = "", .service = "sqs"}) {}

  std::string_view name() const override { return "sqs"; }

  Status ensure_queue(std::string_view queue) override {
    auto url = queue_url(queue, settings_.create_queues);
    if (!url) return url.error();
    return Status::Ok();
  }

  Result<std::vector<Delivery>> receive(std::string_view queue, std::size_t max_messages,
                                        milliseconds wait) override {
    std::vector<Delivery> out;
    if (interrupted_.load()) return out;
    auto url = queue_url(queue, settings_.create_queues);
    if (!url) return url.error();
    const auto deadline = std::chrono::steady_clock::now() + wait;
    const auto max_count = static_cast<std::int64_t>(std::clamp<std::size_t>(max_messages, 1, 10));
    const auto visibility = ceil_seconds(options_.visibility_timeout, kMaxVisibilitySeconds);
    while (true) {
      auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      std::int64_t wait_seconds =
          std::clamp<std::int64_t>(left.count() / 1000, 0, settings_.wait_time_seconds);
      json::object params{{"QueueUrl", *url},
                          {"MaxNumberOfMessages", max_count},
                          {"WaitTimeSeconds", wait_seconds},
                          {"VisibilityTimeout", visibility},
                          {"AttributeNames", json::array{"ApproximateReceiveCount"}},
                          {"MessageSystemAttributeNames", json::array{"ApproximateReceiveCount"}}};
      auto result = call("ReceiveMessage", queue, params, milliseconds(wait_seconds * 1000));
      if (!result) {
        if (interrupted_.load()) return out;
        return Error{result.error().message};
      }
      if (const json::value* messages = result->as_object().if_contains("Messages")) {
        for (const json::value& m : messages->as_array()) {
          Delivery d;
          d.queue = std::string(queue);
          d.body = std::string(m.at("Body").as_string());
          d.receipt = std::string(m.at("ReceiptHandle").as_string());
          d.delivery_count = 1;
          if (const json::value* attributes = m.as_object().if_contains("Attributes")) {
            if (const json::value* count =
                    attributes->as_object().if_contains("ApproximateReceiveCount")) {
              d.delivery_count =
                  static_cast<std::uint32_t>(std::stoul(std::string(count->as_string().c_str())));
            }
          }
          out.push_back(std::move(d));
        }
      }
      if (!out.empty() || interrupted_.load()) return out;
      left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return out;
      // Less than a second left: SQS cannot long-poll that briefly, so short-poll a few times.
      if (wait_seconds == 0) std::this_thread::sleep_for(std::min(left, milliseconds(200)));
    }
  }

  Status send(std::string_view queue, std::string_view body, milliseconds delay) override {
    if (body.size() > max_message_bytes()) return too_large(queue, body.size());
    auto url = queue_url(queue, settings_.create_queues);
    if (!url) return url.error();
    json::object params{{"QueueUrl", *url},
                        {"MessageBody", json::string_view(body.data(), body.size())}};
    if (delay.count() > 0) params["DelaySeconds"] = delay_seconds(queue, delay);
    auto result = call("SendMessage", queue, params);
    if (!result) return Error{result.error().message};
    return Status::Ok();
  }

  // SendMessageBatch: each queue's messages in calls of at most 10 entries and 256 KiB of bodies
  // (SQS's limits for one call); each entry's outcome is its message's Status, so a message SQS
  // refused fails alone. A message over the size limit fails alone without a call.
  std::vector<Status> send_many(std::span<const OutgoingMessage> messages) override {
    std::vector<Status> out(messages.size());
    std::vector<std::string> joined(messages.size());  // bodies given in parts (never, today)
    std::vector<std::string_view> bodies(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (!messages[i].parts.empty()) joined[i] = messages[i].joined();
      bodies[i] = messages[i].parts.empty() ? messages[i].body : std::string_view(joined[i]);
    }
    for (const auto& [queue, indexes] :
         by_queue(messages.size(), [&](std::size_t i) { return messages[i].queue; })) {
      auto url = queue_url(queue, settings_.create_queues);
      std::vector<std::size_t> chunk;
      std::size_t chunk_bytes = 0;
      auto flush = [&] {
        if (chunk.empty()) return;
        json::array entries;
        for (std::size_t k = 0; k < chunk.size(); ++k) {
          const OutgoingMessage& m = messages[chunk[k]];
          json::object entry{
              {"Id", std::to_string(k)},
              {"MessageBody", json::string_view(bodies[chunk[k]].data(), bodies[chunk[k]].size())}};
          if (m.delay.count() > 0) entry["DelaySeconds"] = delay_seconds(queue, m.delay);
          entries.push_back(std::move(entry));
        }
        apply_entries(call("SendMessageBatch", queue,
                           json::object{{"QueueUrl", *url}, {"Entries", std::move(entries)}}),
                      "SendMessageBatch", queue, chunk, out);
        chunk.clear();
        chunk_bytes = 0;
      };
      for (std::size_t i : indexes) {
        if (!url) {
          out[i] = url.error();
        } else if (bodies[i].size() > max_message_bytes()) {
          out[i] = too_large(queue, bodies[i].size());
        } else {
          if (chunk.size() == kMaxBatchEntries ||
              chunk_bytes + bodies[i].size() > kSqsMaxMessageBytes)
            flush();
          chunk.push_back(i);
          chunk_bytes += bodies[i].size();
        }
      }
      flush();
    }
    return out;
  }

  Status ack(const Delivery& delivery) override {
    auto url = queue_url(delivery.queue, false);
    if (!url) return url.error();
    auto result = call("DeleteMessage", delivery.queue,
                       json::object{{"QueueUrl", *url}, {"ReceiptHandle", delivery.receipt}});
    if (!result) return Error{result.error().message};
    return Status::Ok();
  }

  // DeleteMessageBatch: each queue's deliveries in calls of at most 10 entries; each entry's
  // outcome is its delivery's Status.
  std::vector<Status> ack_many(std::span<const Delivery* const> deliveries) override {
    std::vector<Status> out(deliveries.size());
    for (const auto& [queue, indexes] : by_queue(deliveries.size(), [&](std::size_t i) {
           return std::string_view(deliveries[i]->queue);
         })) {
      auto url = queue_url(queue, false);
      for (std::size_t first = 0; first < indexes.size(); first += kMaxBatchEntries) {
        std::span<const std::size_t> chunk(indexes.data() + first,
                                           std::min(kMaxBatchEntries, indexes.size() - first));
        if (!url) {
          for (std::size_t i : chunk) out[i] = url.error();
          continue;
        }
        json::array entries;
        for (std::size_t k = 0; k < chunk.size(); ++k)
          entries.push_back(json::object{{"Id", std::to_string(k)},
                                         {"ReceiptHandle", deliveries[chunk[k]]->receipt}});
        apply_entries(call("DeleteMessageBatch", queue,
                           json::object{{"QueueUrl", *url}, {"Entries", std::move(entries)}}),
                      "DeleteMessageBatch", queue, chunk, out);
      }
    }
    return out;
  }

  Status nack(const Delivery& delivery, milliseconds delay) override {
    return change_visibility(delivery, ceil_seconds(delay, kMaxVisibilitySeconds));
  }

  Status extend_lease(const Delivery& delivery, milliseconds visibility) override {
    return change_visibility(delivery, ceil_seconds(visibility, kMaxVisibilitySeconds));
  }

  Result<QueueStats> stats(std::string_view queue) override {
    auto url = queue_url(queue, false);
    if (!url) {
      if (url.error().message.find("QueueDoesNotExist") != std::string::npos) return QueueStats{};
      return url.error();
    }
    json::object params{{"QueueUrl", *url},
                        {"AttributeNames", json::array{"ApproximateNumberOfMessages",
                                                       "ApproximateNumberOfMessagesNotVisible",
                                                       "ApproximateNumberOfMessagesDelayed"}}};
    auto result = call("GetQueueAttributes", queue, params);
    if (!result) return Error{result.error().message};
    QueueStats stats;
    if (const json::value* attributes = result->as_object().if_contains("Attributes")) {
      auto number = [&](const char* key) -> std::uint64_t {
        const json::value* v = attributes->as_object().if_contains(key);
        return v && v->is_string() ? std::stoull(std::string(v->as_string().c_str())) : 0;
      };
      stats.ready = number("ApproximateNumberOfMessages");
      stats.in_flight = number("ApproximateNumberOfMessagesNotVisible");
      stats.delayed = number("ApproximateNumberOfMessagesDelayed");
    }
    return stats;
  }

  // PurgeQueue: SQS removes the messages (in flight too) within 60 s and does not count them.
  Result<std::optional<std::uint64_t>> purge(std::string_view queue) override {
    auto url = queue_url(queue, false);
    if (!url) {
      if (url.error().message.find("QueueDoesNotExist") != std::string::npos)
        return Error{"queue_not_found: " + url.error().message};
      return url.error();
    }
    std::string code;
    auto result = call("PurgeQueue", queue, json::object{{"QueueUrl", *url}}, {}, &code);
    if (!result) {
      if (code == "PurgeQueueInProgress")
        return Error{result.error().message + " (SQS allows one purge per queue every 60 s)"};
      return Error{result.error().message};
    }
    return std::optional<std::uint64_t>();
  }

  Result<std::vector<std::string>> list_queues() override {
    std::vector<std::string> names;
    std::string token;
    do {
      json::object params{{"MaxResults", 1000}};
      if (!token.empty()) params["NextToken"] = token;
      auto result = call("ListQueues", "", params);
      if (!result) return Error{result.error().message};
      token.clear();
      const json::object& object = result->as_object();
      if (const json::value* urls = object.if_contains("QueueUrls")) {
        for (const json::value& u : urls->as_array()) {
          std::string_view text = u.as_string();
          names.emplace_back(text.substr(text.rfind('/') + 1));
        }
      }
      if (const json::value* next = object.if_contains("NextToken"); next && next->is_string())
        token = std::string(next->as_string());
    } while (!token.empty());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::size_t max_message_bytes() const override {
    return std::min(kSqsMaxMessageBytes, options_.max_message_bytes);
  }

  void interrupt() override { interrupted_.store(true); }

  void close() override {
    interrupted_.store(true);
    client_.close();
  }

 private:
  static constexpr std::size_t kMaxBatchEntries = 10;  // SQS's limit per batch call

  Error too_large(std::string_view queue, std::size_t bytes) const {
    return Error{"message_too_large: a body of " + std::to_string(bytes) +
                 " bytes cannot be sent to SQS queue " + std::string(queue) + ": the limit is " +
                 std::to_string(max_message_bytes()) +
                 " bytes (SQS allows at most 256 KiB; ASYA_MAX_MESSAGE_BYTES may lower it)"};
  }

  // DelaySeconds for `delay`, rounded up; a delay longer than SQS allows is clamped (and logged).
  static std::int64_t delay_seconds(std::string_view queue, milliseconds delay) {
    if (delay > std::chrono::seconds(kMaxDelaySeconds)) {
      spdlog::warn(
          "sqs transport: a delay of {} for queue {} is longer than SQS allows; sending "
          "with the maximum, 15m",
          format_duration(delay), queue);
    }
    return ceil_seconds(delay, kMaxDelaySeconds);
  }

  // The indexes 0..count-1 grouped by the queue `queue_of` names, in order within each queue.
  template <class QueueOf>
  static std::map<std::string_view, std::vector<std::size_t>> by_queue(std::size_t count,
                                                                       QueueOf queue_of) {
    std::map<std::string_view, std::vector<std::size_t>> out;
    for (std::size_t i = 0; i < count; ++i) out[queue_of(i)].push_back(i);
    return out;
  }

  // Puts a batch call's answer into `out` for the messages `chunk` lists (entry Id k is
  // chunk[k]): Ok for an entry in "Successful", the entry's code and message for one in
  // "Failed", the call's error for all when the call failed, and an error for an entry the answer
  // does not mention (SQS answers for every entry; nothing is assumed done).
  void apply_entries(const Result<json::value>& answer, std::string_view action,
                     std::string_view queue, std::span<const std::size_t> chunk,
                     std::vector<Status>& out) const {
    if (!answer) {
      for (std::size_t i : chunk) out[i] = answer.error();
      return;
    }
    std::string what =
        "SQS " + std::string(action) + " on queue " + std::string(queue) + " at " + endpoint_;
    std::vector<bool> answered(chunk.size(), false);
    auto entry_index = [&](const json::value& entry) -> std::optional<std::size_t> {
      const json::value* id = entry.is_object() ? entry.as_object().if_contains("Id") : nullptr;
      if (id == nullptr || !id->is_string()) return std::nullopt;
      std::string_view text = id->as_string();
      std::size_t k = 0;
      for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        k = k * 10 + static_cast<std::size_t>(c - '0');
      }
      if (text.empty() || k >= chunk.size()) return std::nullopt;
      return k;
    };
    auto text_of = [](const json::value& entry, const char* key) {
      const json::value* v = entry.as_object().if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    const json::object& object = answer->as_object();
    if (const json::value* ok = object.if_contains("Successful"); ok && ok->is_array()) {
      for (const json::value& entry : ok->as_array()) {
        if (auto k = entry_index(entry)) {
          answered[*k] = true;
          out[chunk[*k]] = Status::Ok();
        }
      }
    }
    if (const json::value* failed = object.if_contains("Failed"); failed && failed->is_array()) {
      for (const json::value& entry : failed->as_array()) {
        if (auto k = entry_index(entry)) {
          answered[*k] = true;
          out[chunk[*k]] =
              Error{what + ": entry " + std::to_string(*k) + " failed: " + text_of(entry, "Code") +
                    ": " + text_of(entry, "Message")};
        }
      }
    }
    for (std::size_t k = 0; k < chunk.size(); ++k) {
      if (!answered[k])
        out[chunk[k]] = Error{what + ": the answer does not mention entry " + std::to_string(k) +
                              " of " + std::to_string(chunk.size())};
    }
  }

  Status change_visibility(const Delivery& delivery, std::int64_t seconds) {
    auto url = queue_url(delivery.queue, false);
    if (!url) return url.error();
    auto result = call("ChangeMessageVisibility", delivery.queue,
                       json::object{{"QueueUrl", *url},
                                    {"ReceiptHandle", delivery.receipt},
                                    {"VisibilityTimeout", seconds}});
    if (!result) return Error{result.error().message};
    return Status::Ok();
  }

  // The URL of `queue`, from the cache or GetQueueUrl; created when missing and `create`.
  Result<std::string> queue_url(std::string_view queue, bool create) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = urls_.find(queue); it != urls_.end()) return it->second;
    }
    std::string code;
    auto found = call("GetQueueUrl", queue, json::object{{"QueueName", queue}}, {}, &code);
    if (!found && code == "QueueDoesNotExist" && create) {
      json::object params{
          {"QueueName", queue},
          {"Attributes", json::object{{"VisibilityTimeout",
                                       std::to_string(ceil_seconds(options_.visibility_timeout,
                                                                   kMaxVisibilitySeconds))}}}};
      found = call("CreateQueue", queue, params, {}, &code);
      // Another process created it between the two calls with other attributes (CreateQueue is
      // idempotent only for identical ones; an end actor's default lease differs from an
      // actor's). Every receive names its own VisibilityTimeout, so the queue's default does not
      // matter: use the queue that exists.
      if (!found && (code == "QueueNameExists" || code == "QueueAlreadyExists"))
        found = call("GetQueueUrl", queue, json::object{{"QueueName", queue}}, {}, &code);
    }
    if (!found) {
      if (code == "QueueDoesNotExist") {
        return Error{"SQS queue " + std::string(queue) + " does not exist (QueueDoesNotExist) at " +
                     endpoint_ +
                     (create ? ""
                             : "; it is not created here: create it first, or set "
                               "ASYA_SQS_CREATE_QUEUES=true")};
      }
      return Error{found.error().message};
    }
    const json::value* url = found->as_object().if_contains("QueueUrl");
    if (url == nullptr || !url->is_string())
      return Error{"SQS GetQueueUrl for " + std::string(queue) + " answered without a QueueUrl"};
    std::string text(url->as_string());
    std::lock_guard lock(mutex_);
    urls_.emplace(std::string(queue), text);
    return text;
  }

  // One SQS JSON-protocol call; returns the parsed answer. `queue` only names the queue in
  // errors. `long_poll` is added to the HTTP timeout (ReceiveMessage's wait). When SQS answered
  // with an error, `code` gets its short type ("QueueDoesNotExist"). A cached queue URL is
  // forgotten when SQS says the queue does not exist (deleted meanwhile).
  Result<json::value> call(std::string_view action, std::string_view queue,
                           const json::object& params, milliseconds long_poll = milliseconds(0),
                           std::string* code = nullptr) {
    aws::HttpRequest request;
    request.method = "POST";
    request.url = endpoint_ + "/";
    request.headers = {{"Content-Type", "application/x-amz-json-1.0"},
                       {"X-Amz-Target", "AmazonSQS." + std::string(action)}};
    std::string body = json::serialize(params);
    request.body = body;
    request.timeout = settings_.request_timeout + long_poll;
    request.cancel = action == "ReceiveMessage" ? &interrupted_ : nullptr;
    // An interrupt ends the long poll, but an answer already coming holds leased messages: it
    // is read whole, so the caller gets them (and settles or returns them) instead of leaving
    // them invisible until their visibility timeout.
    request.cancel_waits_only = true;
    std::string what = "SQS " + std::string(action) + (queue.empty() ? "" : " on queue ") +
                       std::string(queue) + " at " + endpoint_;
    auto response = client_.send(std::move(request));
    if (!response) return Error{what + " failed: " + response.error().message};
    json::error_code ec;
    json::value answer = json::parse(response->body, ec);
    if (response->status != 200) {
      std::string type, message;
      if (!ec && answer.is_object()) {
        if (const json::value* t = answer.as_object().if_contains("__type"); t && t->is_string())
          type = std::string(t->as_string());
        for (const char* key : {"message", "Message"}) {
          if (const json::value* m = answer.as_object().if_contains(key); m && m->is_string())
            message = std::string(m->as_string());
        }
      }
      // "com.amazonaws.sqs#QueueDoesNotExist" -> "QueueDoesNotExist"; the query-protocol name
      // some emulators send is mapped to the same.
      std::string short_type =
          type.substr(type.rfind('#') == std::string::npos ? 0 : type.rfind('#') + 1);
      std::string query_error = response->header("x-amzn-query-error");
      if (short_type.find("NonExistentQueue") != std::string::npos ||
          query_error.find("NonExistentQueue") != std::string::npos)
        short_type = "QueueDoesNotExist";
      if (code) *code = short_type;
      if (short_type == "QueueDoesNotExist" && !queue.empty()) {
        std::lock_guard lock(mutex_);
        if (auto it = urls_.find(queue); it != urls_.end()) urls_.erase(it);
      }
      if (message.empty()) message = response->body.substr(0, 300);
      return Error{what + " failed: HTTP " + std::to_string(response->status) +
                   (short_type.empty() ? "" : " " + short_type) + ": " + message};
    }
    if (ec || !answer.is_object())
      return Error{what + " answered with a body that is not a JSON object: " +
                   response->body.substr(0, 300)};
    return answer;
  }

  Options options_;
  SqsSettings settings_;
  std::string endpoint_;
  aws::Client client_;
  std::atomic<bool> interrupted_{false};
  std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> urls_;
};

}  // namespace

std::unique_ptr<Transport> make_sqs_transport(const Options& options, const SqsSettings& settings) {
  return std::make_unique<SqsTransport>(options, settings);
}

std::unique_ptr<Transport> make_sqs_transport(const Options& options) {
  return make_sqs_transport(options, SqsSettings::from_env(Environment(options.environment)));
}

}  // namespace asya::transport
