#include "sidecar/gateway_reporter.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "envelope/envelope.hpp"

namespace asya::sidecar {
namespace {

void append_actors(std::string& out, const std::vector<std::string>& actors) {
  out += '[';
  for (std::size_t i = 0; i < actors.size(); ++i) {
    if (i) out += ',';
    out += envelope::json_string(actors[i]);
  }
  out += ']';
}

// The first bytes of the answer are kept, so a refusal can be logged with the gateway's reason.
constexpr std::size_t kKeptAnswerBytes = 300;

struct PostOutcome {
  std::string failure;  // why no response arrived (the client's error); empty when one did
  long http_status = 0;
  std::string answer;  // start of the response body
  bool ok() const { return failure.empty() && http_status >= 200 && http_status < 300; }
  // A 4xx other than 408/429 will not get better by retrying.
  bool permanent() const {
    return failure.empty() && http_status >= 400 && http_status < 500 && http_status != 408 &&
           http_status != 429;
  }
  std::string describe() const {
    if (!failure.empty()) return failure;
    if (answer.empty()) return fmt::format("HTTP {}", http_status);
    return fmt::format("HTTP {}: {}", http_status, answer);
  }
};

PostOutcome perform_post(http::Client& client, const http::Headers& headers, const std::string& url,
                         std::string_view body, std::chrono::milliseconds timeout,
                         std::size_t kept_answer_bytes = kKeptAnswerBytes) {
  http::Request request;
  request.method = "POST";
  request.url = url;
  request.headers = headers;
  request.body = body;
  request.timeout = std::max(timeout, std::chrono::milliseconds(1));
  request.connect_timeout = request.timeout;
  PostOutcome outcome;
  auto response = client.perform(request);
  if (!response) {
    // The client's error starts with "POST <url> failed: "; the log lines name the URL already.
    const std::string prefix = "POST " + url + " failed: ";
    const std::string& message = response.error().message;
    outcome.failure = message.starts_with(prefix) ? message.substr(prefix.size()) : message;
    return outcome;
  }
  outcome.http_status = response->status;
  outcome.answer = response->body.substr(0, kept_answer_bytes);
  return outcome;
}

// The headers of every request: JSON content type and the bearer token if any.
http::Headers make_headers(const std::string& bearer_token) {
  http::Headers headers{{"Content-Type", "application/json"}};
  if (!bearer_token.empty()) headers.emplace_back("Authorization", "Bearer " + bearer_token);
  return headers;
}

}  // namespace

std::string progress_body(const std::vector<std::string>& actors, std::size_t current_actor_idx,
                          std::string_view status, std::string_view message,
                          std::optional<std::int64_t> duration_ms) {
  std::string out = "{\"actors\":";
  append_actors(out, actors);
  out += fmt::format(",\"current_actor_idx\":{},\"status\":{},\"message\":{}", current_actor_idx,
                     envelope::json_string(status), envelope::json_string(message));
  if (duration_ms) out += fmt::format(",\"duration_ms\":{}", *duration_ms);
  out += '}';
  return out;
}

std::string fanout_body(std::string_view child_id, std::string_view parent_id,
                        const std::vector<std::string>& actors, std::size_t current) {
  std::string out =
      fmt::format("{{\"id\":{},\"parent_id\":{},\"actors\":", envelope::json_string(child_id),
                  envelope::json_string(parent_id));
  append_actors(out, actors);
  out += fmt::format(",\"current\":{}}}", current);
  return out;
}

std::string final_body(std::string_view id, bool succeeded, std::string_view result_raw,
                       std::string_view error, std::string_view error_details_raw,
                       const std::vector<std::string>& actors, std::size_t current_actor_idx) {
  std::string out = fmt::format("{{\"id\":{},\"status\":\"{}\"", envelope::json_string(id),
                                succeeded ? "succeeded" : "failed");
  if (!result_raw.empty()) {
    out += ",\"result\":";
    out += result_raw;
  }
  if (!error.empty()) out += ",\"error\":" + envelope::json_string(error);
  if (!error_details_raw.empty()) {
    out += ",\"error_details\":";
    out += error_details_raw;
  }
  out += ",\"actors\":";
  append_actors(out, actors);
  out += fmt::format(",\"current_actor_idx\":{}}}", current_actor_idx);
  return out;
}

namespace {

// The small JSON documents read per message here (route metadata, check answers) are parsed by
// parsers kept per thread: a parser made per call allocated its buffers every time (simdjson's
// indexes and depth stacks, the padded copy). A document above kKeptParserBytes gets a parser of
// its own, so no thread keeps large buffers.
constexpr std::size_t kKeptParserBytes = 64u << 10;

struct SmallJsonParsers {
  simdjson::ondemand::parser ondemand;
  simdjson::dom::parser dom;
  std::string padded;  // the text being parsed, then simdjson's padding

  // `text` copied into `padded`, with the padding simdjson reads past the end.
  const char* pad(std::string_view text) {
    padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(padded.data(), text.data(), text.size());
    std::memset(padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return padded.data();
  }
};

SmallJsonParsers& small_json_parsers() {
  thread_local SmallJsonParsers parsers;
  return parsers;
}

bool has_job_id(simdjson::ondemand::parser& parser, const char* padded, std::size_t size) {
  simdjson::ondemand::document doc;
  if (parser.iterate(padded, size, size + simdjson::SIMDJSON_PADDING).get(doc)) return false;
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return false;
  simdjson::ondemand::value job;
  return !object.find_field_unordered("job_id").get(job);
}

}  // namespace

bool tracked_by_gateway(std::string_view route_metadata_raw) {
  if (route_metadata_raw.find("\"job_id\"") == std::string_view::npos) return false;
  if (route_metadata_raw.size() <= kKeptParserBytes) {
    SmallJsonParsers& parsers = small_json_parsers();
    return has_job_id(parsers.ondemand, parsers.pad(route_metadata_raw), route_metadata_raw.size());
  }
  simdjson::padded_string padded(route_metadata_raw);
  simdjson::ondemand::parser parser;
  return has_job_id(parser, padded.data(), padded.size());
}

std::string envelope_path(std::string_view id, std::string_view what) {
  std::string out = "/envelopes/";
  for (unsigned char c : id) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == '~';
    if (safe)
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  if (!what.empty()) {
    out += '/';
    out += what;
  }
  return out;
}

GatewayReporter::GatewayReporter(GatewayReporterOptions options)
    : options_(std::move(options)), headers_(make_headers(options_.bearer_token)) {
  thread_ = std::thread([this] { run(); });
}

GatewayReporter::~GatewayReporter() {
  stop(std::chrono::milliseconds(0));
}

bool GatewayReporter::post(std::string path, std::string body) {
  std::optional<BatchableReport> batch = batchable(path);
  return enqueue(Report{std::move(path), std::move(body), std::move(batch), std::nullopt});
}

bool GatewayReporter::post_carriable(std::string path, std::string body) {
  std::optional<BatchableReport> batch = batchable(path);
  std::optional<std::chrono::steady_clock::time_point> until;
  // Only a progress or final report can travel on a check (in its batched form).
  if (batch && options_.carry_wait.count() > 0)
    until = std::chrono::steady_clock::now() + options_.carry_wait;
  return enqueue(Report{std::move(path), std::move(body), std::move(batch), until});
}

bool GatewayReporter::enqueue(Report report) {
  bool wake = true;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.capacity) {
      if (options_.on_dropped) options_.on_dropped();
      return false;
    }
    // A report that may wait wakes the thread only when it is idle (to start the report's timer).
    // When the thread is holding an earlier report, its timer ends no later than this report's,
    // and the thread then looks again: no wake-up per message at a steady rate.
    // A gateway whose checks did not take carried reports lately gets them sent at once.
    if (report.carry_until && std::chrono::steady_clock::now() < no_carry_until_)
      report.carry_until.reset();
    if (report.carry_until) wake = idle_;
    if (!report.carry_until) ++urgent_;
    queue_.push_back(std::move(report));
    ++queued_;
  }
  if (wake) cv_.notify_all();
  return true;
}

bool GatewayReporter::holding() const {
  if (queue_.empty() || urgent_ != 0 || flushing_ != 0 || draining_ || stopping_) return false;
  const auto now = std::chrono::steady_clock::now();
  return now < *queue_.front().carry_until && now >= no_carry_until_;
}

std::vector<BatchEntry> GatewayReporter::entries(const Carried& reports) {
  std::vector<BatchEntry> out;
  out.reserve(reports.size());
  for (const Report& r : reports) out.push_back({r.batch->id, r.batch->kind, r.body});
  return out;
}

GatewayReporter::Carried GatewayReporter::take_carried() {
  Carried out;
  std::lock_guard lock(mutex_);
  // Only when every queued report may wait (so all of them go, in order) and the thread has none
  // on the wire (they would race the check).
  if (queue_.empty() || urgent_ != 0 || in_hand_ != 0 || carried_out_ != 0 || stopping_ ||
      std::chrono::steady_clock::now() < no_carry_until_)
    return out;
  std::size_t bytes = 0;
  while (!queue_.empty() && out.size() < options_.max_batch &&
         (out.empty() || bytes + queue_.front().body.size() <= options_.max_batch_bytes)) {
    bytes += queue_.front().body.size();
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  carried_out_ = out.size();
  return out;
}

void GatewayReporter::carried(Carried reports, bool accepted) {
  if (reports.empty()) return;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    carried_out_ -= std::min(carried_out_, reports.size());
    // The thread needs waking only to send reports (these, or ones queued behind them while the
    // check was out), or for a flush or stop waiting on the count.
    wake = !accepted || flushing_ > 0 || draining_ || (idle_ && !queue_.empty());
    if (accepted || stopping_) {
      finished_ += reports.size();
      for (std::size_t i = 0; i < reports.size(); ++i) {
        if (accepted && options_.on_sent) options_.on_sent();
        if (!accepted && options_.on_dropped) options_.on_dropped();
      }
    } else {
      // Back to the head, in their order, to be sent at once as if never taken. The gateway did
      // not take them (an older one, or no answer in time): reports are not held for checks for
      // a while, so they are not sent twice per check meanwhile.
      no_carry_until_ = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      for (auto it = reports.rbegin(); it != reports.rend(); ++it) {
        it->carry_until.reset();
        ++urgent_;
        queue_.push_front(std::move(*it));
      }
    }
  }
  if (wake) cv_.notify_all();
}

bool GatewayReporter::flush(std::chrono::milliseconds budget) {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = queued_;
  ++flushing_;  // ends any hold: what was queued before goes now
  cv_.notify_all();
  bool done = cv_.wait_for(lock, budget, [&] { return stopping_ || finished_ >= target; });
  --flushing_;
  return done;
}

void GatewayReporter::stop(std::chrono::milliseconds grace) {
  {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable()) return;
    draining_ = true;  // nothing is held for a check any more
    cv_.notify_all();
    cv_.wait_for(lock, grace,
                 [this] { return queue_.empty() && in_hand_ == 0 && carried_out_ == 0; });
    stopping_ = true;
    std::size_t dropped = queue_.size();
    queue_.clear();
    urgent_ = 0;
    for (std::size_t i = 0; i < dropped; ++i)
      if (options_.on_dropped) options_.on_dropped();
  }
  cv_.notify_all();
  thread_.join();
}

bool GatewayReporter::post_now(const std::string& path, const std::string& body,
                               std::chrono::milliseconds budget, int attempts) const {
  auto answer = post_now_answer(path, body, budget, attempts);
  return answer && answer->ok();
}

std::optional<GatewayReporter::Answer> GatewayReporter::post_now_answer(
    const std::string& path, const std::string& body, std::chrono::milliseconds budget,
    int attempts) const {
  using Clock = std::chrono::steady_clock;
  const std::string url = options_.base_url + path;
  const auto deadline = Clock::now() + budget;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    // The first try gets half the budget when a retry remains, so a hung gateway leaves time for
    // it.
    auto timeout = attempt < attempts ? left / 2 : left;
    PostOutcome outcome = perform_post(client_, headers_, url, body, timeout);
    if (outcome.ok()) return Answer{outcome.http_status, std::move(outcome.answer)};
    if (outcome.permanent()) {
      spdlog::warn("gateway refused POST {}: {}", url, outcome.describe());
      return Answer{outcome.http_status, std::move(outcome.answer)};
    }
    spdlog::debug("gateway POST {} failed (attempt {}/{}): {}", url, attempt, attempts,
                  outcome.describe());
  }
  return std::nullopt;
}

std::string check_body(std::string_view progress, const std::vector<BatchEntry>& carried) {
  if (progress.empty() && carried.empty()) return "{}";
  std::string out = "{";
  if (!progress.empty()) {
    out += "\"progress\":";
    out += progress;
  }
  if (!carried.empty()) {
    if (!progress.empty()) out += ',';
    out += "\"reports\":";
    out += batch_body(carried);
  }
  out += '}';
  return out;
}

CheckAnswer read_check_answer(std::string_view answer) {
  simdjson::dom::parser own;  // used only for an answer too large for the thread's parser
  SmallJsonParsers* kept = answer.size() <= kKeptParserBytes ? &small_json_parsers() : nullptr;
  simdjson::dom::element root;
  CheckAnswer out;
  if (kept
          ? kept->dom.parse(kept->pad(answer), answer.size(), /*realloc_if_needed=*/false).get(root)
          : own.parse(answer.data(), answer.size()).get(root))
    return out;
  bool cancelled = false;
  if (!root["cancelled"].get(cancelled)) out.cancelled = cancelled;
  std::string_view accepted;
  if (!root["progress"].get(accepted)) out.progress_accepted = accepted == "accepted";
  if (!root["reports"].get(accepted)) out.reports_accepted = accepted == "accepted";
  return out;
}

void GatewayReporter::run() {
  std::vector<Report> taken;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      finished_ += in_hand_;  // the reports taken last time are done
      in_hand_ = 0;
      taken.clear();
      cv_.notify_all();
      // Reports out on a check (take_carried) go first: nothing is sent until they came back or
      // were accepted. Reports that may wait for a check are held until the first one's time is
      // up, unless one that may not wait comes behind them, a flush or stop begins, or a check
      // takes them; the timer is not cut short by a check that took them, so at a steady rate the
      // thread wakes once per carry_wait, not once per report.
      while (!stopping_) {
        if (!queue_.empty() && carried_out_ == 0) {
          if (!holding()) break;
          cv_.wait_until(lock, *queue_.front().carry_until);
          continue;
        }
        idle_ = true;
        cv_.wait(lock);
        idle_ = false;
      }
      if (stopping_) break;
      // The front report, and when it may travel in a batch, the batchable reports queued right
      // behind it (queue order kept: one thread sends, and a batch is applied in order). Nothing
      // waits for more to arrive.
      taken.push_back(std::move(queue_.front()));
      queue_.pop_front();
      if (taken.front().batch && options_.max_batch > 1 &&
          std::chrono::steady_clock::now() >= no_batches_until_) {
        std::size_t bytes = taken.front().body.size();
        while (!queue_.empty() && taken.size() < options_.max_batch && queue_.front().batch &&
               bytes + queue_.front().body.size() <= options_.max_batch_bytes) {
          bytes += queue_.front().body.size();
          taken.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      in_hand_ = taken.size();
      for (const Report& r : taken)
        if (!r.carry_until) --urgent_;
    }
    if (taken.size() == 1)
      send_single(taken.front());
    else
      send_batch(taken);
  }
}

bool GatewayReporter::pause(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, delay, [this] { return stopping_; });
}

void GatewayReporter::send_single(const Report& report) {
  std::string url = options_.base_url + report.path;
  bool delivered = false;
  bool refused = false;
  int attempts = 0;
  std::string last_failure;
  auto delay = options_.retry_delay;
  for (int attempt = 1; attempt <= options_.max_attempts && !delivered; ++attempt) {
    attempts = attempt;
    PostOutcome outcome = perform_post(client_, headers_, url, report.body, options_.timeout);
    if (outcome.ok()) {
      delivered = true;
      break;
    }
    last_failure = outcome.describe();
    if (outcome.permanent()) {
      refused = true;
      break;
    }
    spdlog::debug("gateway report POST {} failed (attempt {}/{}): {}", url, attempt,
                  options_.max_attempts, last_failure);
    if (attempt < options_.max_attempts) {
      if (!pause(delay)) break;
      delay *= 2;
    }
  }
  if (delivered) {
    if (options_.on_sent) options_.on_sent();
    return;
  }
  if (refused && last_failure.starts_with("HTTP 404")) {
    // The gateway does not know the envelope (its job expired, or it was never one): nothing
    // to report, nothing wrong here.
    spdlog::debug("gateway does not know the envelope of report POST {}: {}", url, last_failure);
  } else if (refused) {
    spdlog::warn("gateway refused report POST {}: {}; report dropped", url, last_failure);
  } else {
    spdlog::warn("gateway report POST {} dropped after {} attempts; last: {}", url, attempts,
                 last_failure.empty() ? "stopping" : last_failure);
  }
  if (options_.on_dropped) options_.on_dropped();
}

void GatewayReporter::send_batch(const std::vector<Report>& reports) {
  const std::string url = options_.base_url + kReportBatchPath;
  std::vector<const Report*> pending;
  for (const Report& r : reports) pending.push_back(&r);
  std::string last_failure;
  auto delay = options_.retry_delay;
  int attempts = 0;
  for (int attempt = 1; attempt <= options_.max_attempts && !pending.empty(); ++attempt) {
    attempts = attempt;
    std::vector<BatchEntry> entries;
    entries.reserve(pending.size());
    for (const Report* r : pending) entries.push_back({r->batch->id, r->batch->kind, r->body});
    PostOutcome outcome = perform_post(client_, headers_, url, batch_body(entries),
                                       options_.timeout, std::string::npos);
    const long status = outcome.failure.empty() ? outcome.http_status : 0;
    if (status == 404 || status == 405 || status == 400 || status == 413) {
      // An older gateway has no batch endpoint (404/405): single reports for a while, so an
      // upgraded gateway gets batches again. 400/413 (a gateway with smaller limits): these
      // reports one by one. Either way each report gets its own tries.
      if (status == 404 || status == 405) {
        spdlog::info(
            "gateway {} does not take batched reports (POST {}: {}); sending reports "
            "one by one",
            options_.base_url, kReportBatchPath, outcome.describe());
        no_batches_until_ = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      } else {
        spdlog::warn("gateway refused a batch of {} reports ({}); sending them one by one",
                     pending.size(), outcome.describe());
      }
      for (const Report* r : pending) send_single(*r);
      return;
    }
    if (outcome.ok()) {
      auto answers = read_batch_answer(outcome.answer, pending.size());
      if (!answers) {
        // Not the batch endpoint's answer (a gateway or proxy that answers anything with 2xx):
        // which reports it took is unknown, so each is sent alone (a repeated report changes
        // nothing: progress never goes back, a repeated final is a duplicate).
        spdlog::warn(
            "gateway {} answered a batch of {} reports with {}, not {{\"results\": "
            "[...]}}; sending reports one by one",
            options_.base_url, pending.size(), outcome.describe().substr(0, 200));
        no_batches_until_ = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        for (const Report* r : pending) send_single(*r);
        return;
      } else {
        std::vector<const Report*> again;
        for (std::size_t i = 0; i < pending.size(); ++i) {
          const BatchItemAnswer& answer = (*answers)[i];
          const Report& report = *pending[i];
          if (answer.status >= 200 && answer.status < 300) {
            if (options_.on_sent) options_.on_sent();
            continue;
          }
          const bool permanent = answer.status >= 400 && answer.status < 500 &&
                                 answer.status != 408 && answer.status != 429;
          if (!permanent) {  // 5xx (the store failed), 408, 429: may succeed later
            last_failure = fmt::format("HTTP {}: {}", answer.status, answer.answer);
            again.push_back(&report);
            continue;
          }
          if (answer.status == 404)
            spdlog::debug("gateway does not know the envelope of report POST {}: HTTP 404: {}",
                          options_.base_url + report.path, answer.answer);
          else
            spdlog::warn(
                "gateway refused report POST {} (in a batch): HTTP {}: {}; report "
                "dropped",
                options_.base_url + report.path, answer.status, answer.answer);
          if (options_.on_dropped) options_.on_dropped();
        }
        pending = std::move(again);
        if (pending.empty()) return;
      }
    } else if (outcome.permanent()) {
      // 401 (token), 403, 415: every report of the batch would get the same answer alone.
      spdlog::warn("gateway refused a batch of {} reports (POST {}): {}; reports dropped",
                   pending.size(), url, outcome.describe());
      for (std::size_t i = 0; i < pending.size(); ++i)
        if (options_.on_dropped) options_.on_dropped();
      return;
    } else {
      last_failure = outcome.describe();
    }
    spdlog::debug("gateway batch of {} reports failed (attempt {}/{}): {}", pending.size(), attempt,
                  options_.max_attempts, last_failure);
    if (attempt < options_.max_attempts && !pause(delay)) break;
    delay *= 2;
  }
  if (pending.empty()) return;
  spdlog::warn("gateway batch of {} reports (POST {}) dropped after {} attempts; last: {}",
               pending.size(), url, attempts, last_failure.empty() ? "stopping" : last_failure);
  for (std::size_t i = 0; i < pending.size(); ++i)
    if (options_.on_dropped) options_.on_dropped();
}

}  // namespace asya::sidecar
