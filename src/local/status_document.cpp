#include "local/status_document.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include "common/json_text.hpp"
#include "local/state.hpp"

namespace asya::local {

namespace json = boost::json;

namespace {

constexpr std::pair<ActorActivity, std::string_view> kActivities[] = {
    {ActorActivity::kRunning, "running"},
    {ActorActivity::kStarting, "starting"},
    {ActorActivity::kIdle, "idle"},
    {ActorActivity::kStopping, "stopping"},
    {ActorActivity::kCrashLooping, "crash-looping"},
};

// A field that is missing or of the wrong type; caught by from_json, never leaves this file.
struct FieldError {
  std::string message;
};

std::string kind_of(const json::value& v) {
  if (v.is_null()) return "null";
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (v.is_string()) return fmt::format("\"{}\"", std::string(v.as_string()));
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return to_json_text(v);
}

// Reads the fields of one JSON object, naming each by its path in the document.
class Fields {
 public:
  Fields(const json::value& value, std::string path) : path_(std::move(path)) {
    if (!value.is_object())
      throw FieldError{fmt::format("{}: expected an object, got {}", where(), kind_of(value))};
    object_ = &value.as_object();
  }

  const json::value& at(std::string_view key) const {
    const json::value* v = object_->if_contains(key);
    if (v == nullptr) throw FieldError{fmt::format("{}: missing", name(key))};
    return *v;
  }
  const json::value* find(std::string_view key) const {
    const json::value* v = object_->if_contains(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  std::string string(std::string_view key) const { return as_string(at(key), name(key)); }
  bool boolean(std::string_view key) const {
    const json::value& v = at(key);
    if (!v.is_bool())
      throw FieldError{fmt::format("{}: expected true or false, got {}", name(key), kind_of(v))};
    return v.as_bool();
  }
  std::int64_t integer(std::string_view key) const { return as_integer(at(key), name(key)); }
  std::uint64_t count(std::string_view key) const {
    std::int64_t n = integer(key);
    if (n < 0) throw FieldError{fmt::format("{}: expected a count, got {}", name(key), n)};
    return static_cast<std::uint64_t>(n);
  }
  double number(std::string_view key) const { return as_number(at(key), name(key)); }
  const json::array& array(std::string_view key) const {
    const json::value& v = at(key);
    if (!v.is_array())
      throw FieldError{fmt::format("{}: expected an array, got {}", name(key), kind_of(v))};
    return v.as_array();
  }

  std::string name(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  std::string where() const { return path_.empty() ? "the document" : path_; }

  static std::string as_string(const json::value& v, const std::string& name) {
    if (!v.is_string())
      throw FieldError{fmt::format("{}: expected a string, got {}", name, kind_of(v))};
    return std::string(v.as_string());
  }
  static std::int64_t as_integer(const json::value& v, const std::string& name) {
    if (v.is_int64()) return v.as_int64();
    if (v.is_uint64() && v.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
      return static_cast<std::int64_t>(v.as_uint64());
    throw FieldError{fmt::format("{}: expected an integer, got {}", name, kind_of(v))};
  }
  static double as_number(const json::value& v, const std::string& name) {
    if (!v.is_number())
      throw FieldError{fmt::format("{}: expected a number, got {}", name, kind_of(v))};
    return v.to_number<double>();
  }

 private:
  std::string path_;
  const json::object* object_ = nullptr;
};

int pid_of(const Fields& f, std::string_view key) {
  return static_cast<int>(f.integer(key));
}

StatusActor actor_from(const json::value& value, const std::string& path) {
  Fields f(value, path);
  StatusActor a;
  a.name = f.string("name");
  a.end_actor = f.boolean("end_actor");
  const json::array& processes = f.array("processes");
  for (std::size_t i = 0; i < processes.size(); ++i) {
    Fields p(processes[i], fmt::format("{}[{}]", f.name("processes"), i));
    a.processes.push_back({static_cast<int>(p.integer("replica")), pid_of(p, "sidecar"),
                           pid_of(p, "runtime"), p.boolean("running")});
  }
  Fields r(f.at("replicas"), f.name("replicas"));
  a.replicas = {static_cast<int>(r.integer("ready")), static_cast<int>(r.integer("running")),
                static_cast<int>(r.integer("stopping")), static_cast<int>(r.integer("desired"))};
  if (const json::value* s = f.find("scaling")) {
    Fields sc(*s, f.name("scaling"));
    a.scaling = StatusScaling{sc.boolean("enabled"), static_cast<int>(sc.integer("min")),
                              static_cast<int>(sc.integer("max")),
                              static_cast<int>(sc.integer("queue_length"))};
  }
  Fields q(f.at("queue"), f.name("queue"));
  a.queue.name = q.string("name");
  a.queue.ready = q.count("ready");
  a.queue.in_flight = q.count("in_flight");
  a.queue.delayed = q.count("delayed");
  if (q.find("age_seconds")) a.queue.age_seconds = q.number("age_seconds");
  if (q.find("stats_error")) a.queue.stats_error = q.string("stats_error");
  a.processed = f.count("processed");
  a.errors = f.count("errors");
  a.rate = f.number("rate");
  std::string state = f.string("state");
  auto activity = parse_actor_activity(state);
  if (!activity)
    throw FieldError{fmt::format(
        "{}: \"{}\" is not a state; expected running, starting, idle, stopping or crash-looping",
        f.name("state"), state)};
  a.state = *activity;
  a.restarts = static_cast<int>(f.integer("restarts"));
  a.crash_streak = static_cast<int>(f.integer("crash_streak"));
  a.last_crash = f.string("last_crash");
  const json::array& lines = f.array("last_crash_output");
  for (std::size_t i = 0; i < lines.size(); ++i)
    a.last_crash_output.push_back(
        Fields::as_string(lines[i], fmt::format("{}[{}]", f.name("last_crash_output"), i)));
  if (f.find("last_crash_at")) a.last_crash_at = f.integer("last_crash_at");
  return a;
}

StatusDocument document_from(const json::value& value) {
  Fields f(value, "");
  StatusDocument d;
  d.pid = pid_of(f, "pid");
  d.state_dir = f.string("state_dir");
  d.transport = f.string("transport");
  d.queue_prefix = f.string("queue_prefix");
  d.ready = f.boolean("ready");
  if (const json::value* g = f.find("gateway")) {
    Fields gw(*g, "gateway");
    d.gateway = StatusGateway{gw.string("url"), gw.string("routes"), pid_of(gw, "pid"),
                              gw.boolean("running")};
  }
  d.stopping = f.boolean("stopping");
  d.started = f.integer("started");
  d.updated = f.integer("updated");
  const json::array& actors = f.array("actors");
  for (std::size_t i = 0; i < actors.size(); ++i)
    d.actors.push_back(actor_from(actors[i], fmt::format("actors[{}]", i)));
  const json::array& events = f.array("events");
  for (std::size_t i = 0; i < events.size(); ++i)
    d.events.push_back(Fields::as_string(events[i], fmt::format("events[{}]", i)));
  return d;
}

json::object actor_to_json(const StatusActor& a) {
  json::object o;
  o["name"] = a.name;
  o["end_actor"] = a.end_actor;
  json::array processes;
  for (const auto& p : a.processes)
    processes.push_back(json::object{{"replica", p.replica},
                                     {"sidecar", p.sidecar},
                                     {"runtime", p.runtime},
                                     {"running", p.running}});
  o["processes"] = std::move(processes);
  o["replicas"] = json::object{{"ready", a.replicas.ready},
                               {"running", a.replicas.running},
                               {"stopping", a.replicas.stopping},
                               {"desired", a.replicas.desired}};
  if (a.scaling)
    o["scaling"] = json::object{{"enabled", a.scaling->enabled},
                                {"min", a.scaling->min},
                                {"max", a.scaling->max},
                                {"queue_length", a.scaling->queue_length}};
  json::object q{{"name", a.queue.name},
                 {"ready", a.queue.ready},
                 {"in_flight", a.queue.in_flight},
                 {"delayed", a.queue.delayed}};
  if (a.queue.age_seconds) q["age_seconds"] = *a.queue.age_seconds;
  if (!a.queue.stats_error.empty()) q["stats_error"] = a.queue.stats_error;
  o["queue"] = std::move(q);
  o["processed"] = a.processed;
  o["errors"] = a.errors;
  o["rate"] = a.rate;
  o["state"] = label(a.state);
  o["restarts"] = a.restarts;
  o["crash_streak"] = a.crash_streak;
  o["last_crash"] = a.last_crash;
  json::array lines;
  for (const auto& line : a.last_crash_output) lines.push_back(json::string(line));
  o["last_crash_output"] = std::move(lines);
  if (a.last_crash_at) o["last_crash_at"] = *a.last_crash_at;
  return o;
}

}  // namespace

std::string_view label(ActorActivity activity) {
  for (const auto& [value, text] : kActivities)
    if (value == activity) return text;
  return "running";
}

std::optional<ActorActivity> parse_actor_activity(std::string_view text) {
  for (const auto& [value, name] : kActivities)
    if (name == text) return value;
  return std::nullopt;
}

json::object StatusDocument::to_json() const {
  json::object root;
  root["pid"] = pid;
  root["state_dir"] = state_dir;
  root["transport"] = transport;
  root["queue_prefix"] = queue_prefix;
  root["ready"] = ready;
  if (gateway)
    root["gateway"] = json::object{{"url", gateway->url},
                                   {"routes", gateway->routes},
                                   {"pid", gateway->pid},
                                   {"running", gateway->running}};
  root["stopping"] = stopping;
  root["started"] = started;
  root["updated"] = updated;
  json::array list;
  for (const auto& a : actors) list.push_back(actor_to_json(a));
  root["actors"] = std::move(list);
  json::array lines;
  for (const auto& e : events) lines.push_back(json::string(e));
  root["events"] = std::move(lines);
  return root;
}

std::string StatusDocument::to_text() const {
  return to_json_text(to_json()) + "\n";
}

Result<StatusDocument> StatusDocument::from_json(const json::value& value) {
  try {
    return document_from(value);
  } catch (const FieldError& e) {
    return Error{e.message};
  }
}

Result<StatusDocument> StatusDocument::parse(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) return Error{fmt::format("not JSON: {}", ec.message())};
  return from_json(value);
}

Result<StatusDocument> read_status_document(const std::filesystem::path& file) {
  std::string text;
  if (!read_file(file, text)) return Error{fmt::format("cannot read {}", file.string())};
  auto document = StatusDocument::parse(text);
  if (!document) return Error{fmt::format("{}: {}", file.string(), document.error().message)};
  return document;
}

}  // namespace asya::local
