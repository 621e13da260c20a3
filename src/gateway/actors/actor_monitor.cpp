#include "gateway/actors/actor_monitor.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

#include "gateway/service.hpp"
#include "local/status_document.hpp"

namespace asya::gateway {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

struct Sample {
  std::int64_t at_ms = 0;
  std::optional<transport::QueueStats> queue;
  std::string queue_error;
  std::optional<local::StatusActor> supervised;  // from status.json
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A status.json older than this is not trusted (the supervisor rewrites it every second).
constexpr std::int64_t kStaleStatusMs = 10'000;

}  // namespace

struct ActorMonitor::State {
  Service& service;
  ActorMonitorOptions options;
  std::vector<std::string> actors;  // the routes' actors in order, then happy-end, error-end
  std::mutex mutex;                 // guards history and status_note
  std::map<std::string, std::deque<Sample>> history;
  std::string status_note;  // why the supervisor's columns are missing ("" when they are not)
  std::int64_t last_sample_ms = 0;
  bool stopped = false;

  State(Service& s, ActorMonitorOptions o) : service(s), options(std::move(o)) {
    for (const auto& tool : service.tools().tools)
      for (const auto& actor : tool.actors)
        if (std::find(actors.begin(), actors.end(), actor) == actors.end()) actors.push_back(actor);
    actors.push_back("happy-end");
    actors.push_back("error-end");
  }

  // Blocking: reads every queue's counts and status.json.
  void sample() {
    std::map<std::string, Sample> taken;
    std::int64_t at = now_ms();
    std::optional<local::StatusDocument> status;
    std::string note;
    if (!options.status_file.empty()) {
      auto read = local::read_status_document(options.status_file);
      if (!read.ok()) {
        note = read.error().message;
      } else if (at - read.value().updated > kStaleStatusMs) {
        note = options.status_file + " is " + std::to_string((at - read.value().updated) / 1000) +
               " s old: is the supervisor (asya up) still running?";
      } else {
        status = std::move(read.value());
      }
    }
    for (const auto& actor : actors) {
      Sample s;
      s.at_ms = at;
      auto stats = service.transport().stats(service.queue_prefix() + actor);
      if (stats.ok())
        s.queue = stats.value();
      else
        s.queue_error = stats.error().message;
      if (status) {
        for (const auto& a : status->actors)
          if (a.name == actor) s.supervised = a;
      }
      taken.emplace(actor, std::move(s));
    }
    std::lock_guard lock(mutex);
    status_note = note;
    last_sample_ms = at;
    for (auto& [actor, s] : taken) {
      auto& h = history[actor];
      h.push_back(std::move(s));
      while (h.size() > options.samples) h.pop_front();
    }
  }

  json::object to_json() {
    std::lock_guard lock(mutex);
    json::array list;
    for (const auto& actor : actors) {
      const auto& h = history[actor];
      json::object o{{"name", actor}, {"end_actor", actor == "happy-end" || actor == "error-end"}};
      const Sample* last = h.empty() ? nullptr : &h.back();
      if (last && last->queue) {
        o["queue"] = json::object{{"ready", last->queue->ready},
                                  {"in_flight", last->queue->in_flight},
                                  {"delayed", last->queue->delayed}};
      } else {
        o["queue"] = nullptr;
        if (last) o["queue_error"] = last->queue_error;
      }
      if (last && last->supervised) {
        const auto& a = *last->supervised;
        o["replicas"] = json::object{{"ready", a.replicas.ready}, {"desired", a.replicas.desired}};
        o["processed"] = a.processed;
        o["errors"] = a.errors;
        o["rate"] = a.rate;
        o["state"] = std::string(local::label(a.state));
      } else {
        o["replicas"] = nullptr;
        o["processed"] = nullptr;
        o["errors"] = nullptr;
        o["rate"] = nullptr;
        o["state"] = nullptr;
      }
      json::array samples;
      for (const auto& s : h) {
        json::object point{{"t", s.at_ms}};
        point["ready"] = s.queue ? json::value(s.queue->ready) : json::value(nullptr);
        point["in_flight"] = s.queue ? json::value(s.queue->in_flight) : json::value(nullptr);
        if (s.supervised) {
          point["processed"] = s.supervised->processed;
          point["errors"] = s.supervised->errors;
        }
        samples.push_back(std::move(point));
      }
      o["history"] = std::move(samples);
      list.push_back(std::move(o));
    }
    json::object sources{{"queues", "transport " + std::string(service.transport().name())}};
    if (options.status_file.empty()) {
      sources["replicas"] = nullptr;
    } else {
      sources["replicas"] = options.status_file;
      if (!status_note.empty()) sources["replicas_error"] = status_note;
    }
    return json::object{{"interval_ms", options.interval.count()},
                        {"sampled_at_ms", last_sample_ms},
                        {"sources", std::move(sources)},
                        {"actors", std::move(list)}};
  }
};

namespace {

asio::awaitable<void> take_sample(std::shared_ptr<ActorMonitor::State> state) {
  auto work = [state] {
    state->sample();
    return true;
  };
  co_await state->service.blocking<bool>(std::move(work));
}

asio::awaitable<void> sample_loop(std::shared_ptr<ActorMonitor::State> state) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!state->stopped) {
    co_await take_sample(state);
    timer.expires_after(state->options.interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

ActorMonitor::ActorMonitor(Service& service, ActorMonitorOptions options)
    : state_(std::make_shared<State>(service, std::move(options))) {}

ActorMonitor::~ActorMonitor() {
  state_->stopped = true;
}

void ActorMonitor::start() {
  asio::co_spawn(state_->service.io(), sample_loop(state_), asio::detached);
}

asio::awaitable<json::object> ActorMonitor::snapshot() {
  std::int64_t last;
  {
    std::lock_guard lock(state_->mutex);
    last = state_->last_sample_ms;
  }
  if (now_ms() - last > state_->options.interval.count() * 2) co_await take_sample(state_);
  co_return state_->to_json();
}

}  // namespace asya::gateway
