// JobStoreCore: the status rules of job_store.hpp, once for every storage backend.
#include <algorithm>

#include "gateway/store/backend.hpp"
#include "gateway/store/job_document.hpp"
#include "gateway/store/job_listing.hpp"

namespace asya::gateway {

namespace {

// Branch order: root first, then by the numeric parts of the id after the root id.
std::vector<long> branch_key(const std::string& root, const std::string& id) {
  std::vector<long> key;
  if (id.size() <= root.size()) return key;
  std::string rest = id.substr(root.size());
  std::size_t pos = 0;
  while (pos < rest.size()) {
    if (rest[pos] == '-') ++pos;
    std::size_t end = rest.find('-', pos);
    std::string part = rest.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    key.push_back(std::strtol(part.c_str(), nullptr, 10));
    if (end == std::string::npos) break;
    pos = end;
  }
  return key;
}

int weight_of(const std::string& state) {
  if (state == "received") return 10;
  if (state == "processing") return 50;
  if (state == "completed") return 100;
  return 0;
}

class JobStoreCore final : public JobStore {
  using Mutation = std::function<std::optional<Update>(Job&, Branch&, ChangeResult&)>;

 public:
  explicit JobStoreCore(std::unique_ptr<StorageBackend> backend) : backend_(std::move(backend)) {}

  std::string_view name() const override { return backend_->name(); }

  Status create(const NewJob& spec) override {
    return backend_->transaction([&]() -> Status {
      auto existing = backend_->load_job(spec.id);
      if (!existing.ok()) return existing.error();
      if (existing.value()) return Error{"job \"" + spec.id + "\" exists already"};
      Job job;
      job.id = spec.id;
      job.tool = spec.tool;
      job.actors = spec.actors;
      job.route_json = spec.route_json;
      job.payload_json = spec.payload_json;
      job.deadline = spec.deadline;
      job.owner = spec.owner;
      job.task = spec.task;
      job.ttl_ms = spec.ttl_ms;
      job.trace_id = spec.trace_id;
      job.created_at = job.updated_at = Clock::now();
      job.message = "created";
      job.branches.push_back(Branch{spec.id, "", JobStatus::pending, "", ""});
      Update u = base_update(job, spec.id, "pending", "created");
      Status saved = save(job, u, true);
      if (!saved.ok() || !spec.task) return saved;
      return backend_->add_task(job.id, job.owner, to_ms(job.created_at));
    });
  }

  // Reads take no transaction and no lock: an envelope's job never changes once recorded and a
  // job row is replaced whole, so two plain statements see a consistent job.
  Result<std::optional<std::string>> job_id_of(const std::string& id) override {
    return backend_->job_of_envelope(id);
  }

  Result<std::optional<Job>> get(const std::string& id) override {
    auto root = backend_->read_job(id);  // the common case: a root envelope's id is its job's
    if (!root.ok()) return root.error();
    if (root.value()) return std::optional<Job>(job_from_document(*root.value()));
    auto job_id = backend_->job_of_envelope(id);
    if (!job_id.ok()) return job_id.error();
    if (!job_id.value()) return std::optional<Job>();
    auto text = backend_->read_job(*job_id.value());
    if (!text.ok()) return text.error();
    if (!text.value()) return std::optional<Job>();
    return std::optional<Job>(job_from_document(*text.value()));
  }

  Result<std::optional<JobStatus>> status_of(const std::string& id) override {
    return job_status(id, backend_->status_of_envelope(id));
  }

  Result<ChangeResult> progress(const ProgressReport& report) override {
    return change(report.envelope_id, progress_mutation(report));
  }

  Result<ChangeResult> finish(const FinalReport& report) override {
    return change(report.envelope_id, final_mutation(report));
  }

  std::vector<Result<ChangeResult>> apply(const std::vector<SidecarReport>& reports) override {
    // One body per report, run by the backend in one transaction where it can (each in a
    // savepoint), in order, so a later report of the batch sees the earlier ones.
    std::vector<ChangeResult> changes(reports.size());
    std::vector<std::function<Status()>> bodies;
    bodies.reserve(reports.size());
    for (std::size_t i = 0; i < reports.size(); ++i) {
      if (const auto* p = std::get_if<ProgressReport>(&reports[i]))
        bodies.push_back(change_body(p->envelope_id, progress_mutation(*p), changes[i]));
      else {
        const FinalReport& f = std::get<FinalReport>(reports[i]);
        bodies.push_back(change_body(f.envelope_id, final_mutation(f), changes[i]));
      }
    }
    std::vector<const std::function<Status()>*> pointers;
    pointers.reserve(bodies.size());
    for (const auto& body : bodies) pointers.push_back(&body);
    std::vector<Status> statuses = backend_->transactions(pointers);
    auto result_of = [&](std::size_t i) -> Result<ChangeResult> {
      if (!statuses[i].ok()) return statuses[i].error();
      return changes[i];
    };
    std::vector<Result<ChangeResult>> results;
    results.reserve(reports.size());
    for (std::size_t i = 0; i < reports.size(); ++i) results.push_back(result_of(i));
    return results;
  }

  // The change a progress report makes (the rules of the header). `report` must outlive it.
  Mutation progress_mutation(const ProgressReport& report) {
    return [this, &report](Job& job, Branch& branch,
                           ChangeResult& result) -> std::optional<Update> {
      if (is_final(job.status) || is_final(branch.status)) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      const std::vector<std::string>& actors = report.actors.empty() ? job.actors : report.actors;
      int count = std::max<int>(1, static_cast<int>(actors.size()));
      int index = std::clamp(report.current_actor_idx, 0, count - 1);
      // Behind the job's position: a late report of another sidecar (see the header).
      bool counted_completed = job.actors_completed > job.current_actor_idx;
      if (job.status == JobStatus::running &&
          (index < job.current_actor_idx ||
           (index == job.current_actor_idx && counted_completed && report.state != "completed"))) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      int weight = weight_of(report.state);
      if (report.branches_total > 0) {
        const std::size_t joined = std::min(report.branches_joined, report.branches_total);
        weight = 10 + static_cast<int>(80 * joined / report.branches_total);
      }
      int percent = std::min(99, (index * 100 + weight) / count);
      if (report.branches_total > 0 && percent < job.progress_percent) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      job.progress_percent = std::max(job.progress_percent, percent);
      job.status = JobStatus::running;
      branch.status = JobStatus::running;
      job.current_actor_idx = index;
      job.actors_completed = index + (report.state == "completed" ? 1 : 0);
      std::string actor = index < static_cast<int>(actors.size()) ? actors[index] : "";
      job.message = report.message.empty() ? report.state + " by " + actor : report.message;
      Update u = base_update(job, report.envelope_id, report.state, job.message);
      u.actors = actors;
      u.actor = actor;
      return u;
    };
  }

  // The change a final report makes. `report` must outlive it.
  Mutation final_mutation(const FinalReport& report) {
    return [this, &report](Job& job, Branch& branch,
                           ChangeResult& result) -> std::optional<Update> {
      if (is_final(branch.status)) {
        result.outcome = branch.status == report.status ? Outcome::duplicate : Outcome::conflict;
        return std::nullopt;
      }
      if (is_final(job.status)) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      branch.status = report.status;
      branch.result_json = report.status == JobStatus::succeeded
                               ? (report.result_json.empty() ? "null" : report.result_json)
                               : "";
      branch.error = report.status == JobStatus::failed
                         ? (report.error.empty() ? std::string("failed") : report.error)
                         : "";
      if (report.status == JobStatus::failed) {
        branch.error_details_json = report.error_details_json;
        if (report.current_actor_idx && *report.current_actor_idx >= 0 &&
            *report.current_actor_idx < static_cast<int>(job.actors.size()))
          branch.failed_actor = job.actors[*report.current_actor_idx];
      }
      if (report.current_actor_idx) job.current_actor_idx = *report.current_actor_idx;
      std::size_t done = std::count_if(job.branches.begin(), job.branches.end(),
                                       [](const Branch& b) { return is_final(b.status); });
      if (done < job.branches.size()) {
        if (job.status == JobStatus::pending) job.status = JobStatus::running;
        job.message = "branch " + branch.id + " " + job_status_name(report.status) + " (" +
                      std::to_string(done) + " of " + std::to_string(job.branches.size()) +
                      " branches done)";
        Update u =
            base_update(job, report.envelope_id, job_status_name(report.status), job.message);
        return u;
      }
      return finalize(job, report.envelope_id);
    };
  }

  Result<ChangeResult> join(const JoinReport& report) override {
    return change(
        report.envelope_id, [&](Job& job, Branch&, ChangeResult& result) -> std::optional<Update> {
          if (is_final(job.status)) {
            result.outcome = Outcome::ignored;
            return std::nullopt;
          }
          const std::size_t before = job.branches.size();
          std::erase_if(job.branches, [&](const Branch& b) {
            return std::find(report.children.begin(), report.children.end(), b.id) !=
                   report.children.end();
          });
          if (job.branches.size() == before) {
            result.outcome = Outcome::duplicate;
            return std::nullopt;
          }
          const bool all_done = std::all_of(job.branches.begin(), job.branches.end(),
                                            [](const Branch& b) { return is_final(b.status); });
          if (all_done) return finalize(job, report.envelope_id);
          job.message =
              "joined " + std::to_string(report.count - report.missing) + " of " +
              std::to_string(report.count) + " branches of " + report.envelope_id +
              (report.failed ? " (" + std::to_string(report.failed) + " failed)" : std::string());
          return base_update(job, report.envelope_id, "running", job.message);
        });
  }

  Result<ChangeResult> add_branch(const BranchReport& report) override {
    ChangeResult result;
    Status status = backend_->transaction([&]() -> Status {
      auto known = backend_->job_of_envelope(report.id);
      if (!known.ok()) return known.error();
      auto job_id = backend_->job_of_envelope(report.parent_id);
      if (!job_id.ok()) return job_id.error();
      if (!job_id.value()) {
        result.outcome = Outcome::not_found;
        return Status::Ok();
      }
      auto loaded = load(*job_id.value());
      if (!loaded.ok()) return loaded.error();
      Job& job = *loaded.value();
      result.progress_percent = job.progress_percent;
      result.job_final = is_final(job.status);
      result.job_status = job.status;
      result.job_id = job.id;
      if (known.value()) {
        result.outcome = Outcome::duplicate;
        return Status::Ok();
      }
      if (is_final(job.status)) {
        result.outcome = Outcome::ignored;
        return Status::Ok();
      }
      const JobStatus status_before = job.status;
      job.branches.push_back(Branch{report.id, report.parent_id, JobStatus::running, "", ""});
      std::sort(job.branches.begin(), job.branches.end(), [&](const Branch& a, const Branch& b) {
        return branch_key(job.id, a.id) < branch_key(job.id, b.id);
      });
      job.status = JobStatus::running;
      job.message = "fan-out: branch " + report.id + " of " + report.parent_id;
      Update u = base_update(job, report.id, "running", job.message);
      if (!report.actors.empty()) u.actors = report.actors;
      Status added = backend_->add_envelope(report.id, job.id);
      if (!added.ok()) return added;
      return save(job, u, false, status_before);
    });
    if (!status.ok()) return status.error();
    return result;
  }

  Result<ChangeResult> fail(const std::string& id, const std::string& error) override {
    return change(id, [&](Job& job, Branch&, ChangeResult& result) -> std::optional<Update> {
      if (is_final(job.status)) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      job.status = JobStatus::failed;
      job.error = error;
      job.message = "failed: " + error;
      Update u = base_update(job, job.id, "failed", job.message);
      u.error = error;
      return u;
    });
  }

  Result<ChangeResult> cancel(const std::string& id, const std::string& reason) override {
    return change(id, [&](Job& job, Branch&, ChangeResult& result) -> std::optional<Update> {
      if (is_final(job.status)) {
        result.outcome = Outcome::ignored;
        return std::nullopt;
      }
      job.status = JobStatus::cancelled;
      job.error = reason;
      job.message = "cancelled: " + reason;
      Update u = base_update(job, job.id, "cancelled", job.message);
      u.error = reason;
      return u;
    });
  }

  Result<TaskPage> list_tasks(const std::string& owner, const std::optional<TaskCursor>& after,
                              std::size_t limit) override {
    return list_task_page(*backend_, owner, after, limit);
  }

  Result<JobPage> list_jobs(const JobFilter& filter, const std::optional<JobCursor>& after,
                            std::size_t limit) override {
    return list_job_page(*backend_, filter, after, limit);
  }

  Result<SpanWrite> add_spans(const std::vector<SpanRecord>& spans, const SpanLimits& limits,
                              Clock::time_point now) override {
    return store_spans(*backend_, span_pruning_, spans, limits, now);
  }

  Result<std::optional<std::string>> job_of_trace(const std::string& trace_id) override {
    return backend_->job_of_trace(trace_id);
  }

  Result<std::vector<SpanRecord>> spans(const std::string& job_id) override {
    return backend_->spans_of(job_id);
  }

  Result<std::vector<std::string>> expire(Clock::time_point now) override {
    auto ids = backend_->expired(to_ms(now));
    if (!ids.ok()) return ids.error();
    std::vector<std::string> expired;
    for (const auto& id : ids.value()) {
      auto r = fail(id, "timed out");
      if (!r.ok()) return r.error();
      if (r.value().outcome == Outcome::applied) expired.push_back(id);
    }
    return expired;
  }

  Result<std::vector<Update>> updates(const std::string& id, std::int64_t after_sequence) override {
    auto job_id = backend_->job_of_envelope(id);
    if (!job_id.ok()) return job_id.error();
    if (!job_id.value()) return std::vector<Update>{};
    auto rows = backend_->updates_after(*job_id.value(), after_sequence);
    if (!rows.ok()) return rows.error();
    std::vector<Update> out;
    out.reserve(rows.value().size());
    for (const auto& [sequence, text] : rows.value())
      out.push_back(update_from_document(sequence, text));
    return out;
  }

  Status create_session(const std::string& id, const std::string& protocol_version,
                        Clock::time_point now) override {
    return backend_->create_session(id, protocol_version, to_ms(now));
  }
  Result<SessionUse> use_session(const std::string& id, Clock::time_point now,
                                 std::chrono::milliseconds timeout) override {
    return backend_->use_session(id, to_ms(now), timeout.count());
  }
  Result<bool> end_session(const std::string& id) override { return backend_->end_session(id); }
  Result<std::int64_t> sweep_sessions(Clock::time_point now,
                                      std::chrono::milliseconds timeout) override {
    return backend_->sweep_sessions(to_ms(now), timeout.count());
  }

  Status ping() override { return backend_->ping(); }
  void watch(std::function<void(const std::string&)> on_change) override {
    backend_->watch(std::move(on_change));
  }
  void unwatch() override { backend_->unwatch(); }

 private:
  // A status column's text as a JobStatus.
  static Result<std::optional<JobStatus>> job_status(
      const std::string& id, const Result<std::optional<std::string>>& column) {
    if (!column.ok()) return column.error();
    if (!column.value()) return std::optional<JobStatus>();
    auto parsed = parse_job_status(*column.value());
    if (!parsed)
      return Error{"job of envelope " + id + " has an unknown status \"" + *column.value() + "\""};
    return std::optional<JobStatus>(*parsed);
  }

  // Every branch of `job` reached an end: the job is final (failed when any branch failed, else
  // succeeded with the single result or the results in branch order).
  Update finalize(Job& job, const std::string& envelope_id) {
    auto failed = std::find_if(job.branches.begin(), job.branches.end(),
                               [](const Branch& b) { return b.status == JobStatus::failed; });
    if (failed != job.branches.end()) {
      job.status = JobStatus::failed;
      job.error = failed->error;
      job.error_details_json = failed->error_details_json;
      job.failed_actor = failed->failed_actor;
      job.message = "failed: " + describe_failure(job);
    } else {
      job.status = JobStatus::succeeded;
      if (job.branches.size() == 1) {
        job.result_json = job.branches[0].result_json;
      } else {
        std::string array = "[";
        for (std::size_t i = 0; i < job.branches.size(); ++i) {
          array += (i ? "," : "") + job.branches[i].result_json;
        }
        job.result_json = array + "]";
      }
      job.progress_percent = 100;
      job.actors_completed = static_cast<int>(job.actors.size());
      job.message = "succeeded";
    }
    Update u = base_update(job, envelope_id, job_status_name(job.status), job.message);
    u.result_json = job.result_json;
    u.error = job.error;
    return u;
  }

  Result<ChangeResult> change(const std::string& envelope_id, const Mutation& mutate) {
    ChangeResult result;
    Status status = backend_->transaction(change_body(envelope_id, mutate, result));
    if (!status.ok()) return status.error();
    return result;
  }

  // The transaction body of change(): applies `mutate` to the job of `envelope_id` and fills
  // `result`. `envelope_id` and `result` must outlive the body; `mutate` is copied.
  std::function<Status()> change_body(const std::string& envelope_id, Mutation mutate,
                                      ChangeResult& result) {
    return [this, &envelope_id, mutate = std::move(mutate), &result]() -> Status {
      auto loaded = load_by_envelope(envelope_id);
      if (!loaded.ok()) return loaded.error();
      bool adopted = false;
      if (!loaded.value()) {
        // PROTOCOL §7: a report may come before its fan-out announcement (which failed or is
        // still queued). "<known envelope>-<n>" is adopted as a branch of that job.
        auto parent = known_ancestor(envelope_id);
        if (!parent.ok()) return parent.error();
        if (!parent.value()) {
          result.outcome = Outcome::not_found;
          return Status::Ok();
        }
        loaded = load_by_envelope(*parent.value());
        if (!loaded.ok()) return loaded.error();
        if (!loaded.value()) {
          result.outcome = Outcome::not_found;
          return Status::Ok();
        }
        Job& job = *loaded.value();
        result.job_id = job.id;
        result.progress_percent = job.progress_percent;
        result.job_final = is_final(job.status);
        result.job_status = job.status;
        if (is_final(job.status)) {
          result.outcome = Outcome::ignored;
          return Status::Ok();
        }
        std::string parent_id = envelope_id.substr(0, envelope_id.rfind('-'));
        job.branches.push_back(Branch{envelope_id, parent_id, JobStatus::running, "", ""});
        std::sort(job.branches.begin(), job.branches.end(), [&](const Branch& a, const Branch& b) {
          return branch_key(job.id, a.id) < branch_key(job.id, b.id);
        });
        Status added = backend_->add_envelope(envelope_id, job.id);
        if (!added.ok()) return added;
        adopted = true;
      }
      Job& job = *loaded.value();
      const JobStatus status_before = job.status;
      auto branch = std::find_if(job.branches.begin(), job.branches.end(),
                                 [&](const Branch& b) { return b.id == envelope_id; });
      if (branch == job.branches.end()) branch = job.branches.begin();
      std::optional<Update> update = mutate(job, *branch, result);
      result.progress_percent = job.progress_percent;
      result.job_final = is_final(job.status);
      result.job_status = job.status;
      result.job_id = job.id;
      if (!update && adopted) {
        // Keep the adopted branch even when the report itself changed nothing.
        update =
            base_update(job, envelope_id, "running",
                        "fan-out: branch " + envelope_id + " reported before its announcement");
      }
      if (!update) return Status::Ok();
      result.outcome = Outcome::applied;
      return save(job, *update, false, status_before);
    };
  }

  // The nearest known envelope id obtained by removing "-<digits>" suffixes from `envelope_id`
  // ("<root>-1-2" -> "<root>-1" -> "<root>"), or nullopt.
  Result<std::optional<std::string>> known_ancestor(const std::string& envelope_id) {
    std::string candidate = envelope_id;
    for (;;) {
      auto dash = candidate.rfind('-');
      if (dash == std::string::npos || dash + 1 == candidate.size() ||
          candidate.find_first_not_of("0123456789", dash + 1) != std::string::npos) {
        return std::optional<std::string>();
      }
      candidate.resize(dash);
      auto known = backend_->job_of_envelope(candidate);
      if (!known.ok()) return known.error();
      if (known.value()) return std::optional<std::string>(candidate);
    }
  }

  Result<std::optional<Job>> load(const std::string& job_id) {
    auto text = backend_->load_job(job_id);
    if (!text.ok()) return text.error();
    if (!text.value()) return std::optional<Job>();
    return std::optional<Job>(job_from_document(*text.value()));
  }

  Result<std::optional<Job>> load_by_envelope(const std::string& envelope_id) {
    // Most reports are about a root envelope, whose id is its job's: one statement.
    auto root = load(envelope_id);
    if (!root.ok() || root.value()) return root;
    auto job_id = backend_->job_of_envelope(envelope_id);
    if (!job_id.ok()) return job_id.error();
    if (!job_id.value()) return std::optional<Job>();
    return load(*job_id.value());
  }

  Update base_update(const Job& job, const std::string& envelope_id, const std::string& state,
                     const std::string& message) const {
    Update u;
    u.status = job.status;
    u.progress_percent = job.progress_percent;
    u.current_actor_idx = job.current_actor_idx;
    u.envelope_state = state;
    u.envelope_id = envelope_id;
    u.actors = job.actors;
    if (job.current_actor_idx >= 0 && job.current_actor_idx < static_cast<int>(job.actors.size())) {
      u.actor = job.actors[job.current_actor_idx];
    }
    u.message = message;
    u.timestamp = Clock::now();
    return u;
  }

  // Writes `job` (a new one when `insert`) and its next update. `status_before`: the job's status
  // as loaded, before the change (ignored on insert).
  Status save(Job& job, Update& update, bool insert, JobStatus status_before = JobStatus::pending) {
    job.updated_at = update.timestamp;
    update.sequence = ++job.last_sequence;
    Status saved = Status::Ok();
    if (insert) {
      std::optional<std::int64_t> deadline;
      if (job.deadline) deadline = to_ms(*job.deadline);
      saved = backend_->insert_job(job.id, job.status, deadline, job_to_document(job),
                                   to_ms(job.created_at), job.tool, job.trace_id, job.owner);
      if (saved.ok() && backend_->dialect().root_envelope_rows)
        saved = backend_->add_envelope(job.id, job.id);
    } else {
      std::optional<JobStatus> moved;
      if (job.status != status_before) moved = job.status;
      saved = backend_->update_job(job.id, moved, job_to_document(job));
    }
    if (!saved.ok()) return saved;
    return backend_->add_update(job.id, update.sequence, update_to_document(update));
  }

  std::unique_ptr<StorageBackend> backend_;
  SpanPruning span_pruning_;
};

}  // namespace

std::unique_ptr<JobStore> make_job_store(std::unique_ptr<StorageBackend> backend) {
  return std::make_unique<JobStoreCore>(std::move(backend));
}

}  // namespace asya::gateway
