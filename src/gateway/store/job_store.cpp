#include "gateway/store/job_store.hpp"

#include <ctime>

#include "common/env.hpp"
#include "common/registry.hpp"
#include "gateway/store/backend.hpp"

namespace asya::gateway {

const char* job_status_name(JobStatus status) {
  switch (status) {
    case JobStatus::pending:
      return "pending";
    case JobStatus::running:
      return "running";
    case JobStatus::succeeded:
      return "succeeded";
    case JobStatus::failed:
      return "failed";
    case JobStatus::cancelled:
      return "cancelled";
  }
  return "pending";
}

std::optional<JobStatus> parse_job_status(std::string_view name) {
  if (name == "pending") return JobStatus::pending;
  if (name == "running") return JobStatus::running;
  if (name == "succeeded") return JobStatus::succeeded;
  if (name == "failed") return JobStatus::failed;
  if (name == "cancelled") return JobStatus::cancelled;
  return std::nullopt;
}

Result<std::optional<JobStatus>> JobStore::status_of(const std::string& id) {
  auto job = get(id);
  if (!job.ok()) return job.error();
  if (!job.value()) return std::optional<JobStatus>();
  return std::optional<JobStatus>(job.value()->status);
}

std::vector<Result<ChangeResult>> JobStore::apply(const std::vector<SidecarReport>& reports) {
  std::vector<Result<ChangeResult>> results;
  results.reserve(reports.size());
  for (const SidecarReport& report : reports) {
    if (const auto* progress_report = std::get_if<ProgressReport>(&report))
      results.push_back(progress(*progress_report));
    else
      results.push_back(finish(std::get<FinalReport>(report)));
  }
  return results;
}

namespace {
bool lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}
}  // namespace

std::string trace_id_of_job_id(std::string_view job_id) {
  if (job_id.size() != 36) return "";
  std::string trace;
  trace.reserve(32);
  for (std::size_t i = 0; i < job_id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? job_id[i] != '-' : !lower_hex(job_id[i])) return "";
    if (!dash) trace.push_back(job_id[i]);
  }
  // An all-zero trace id is invalid (W3C Trace Context).
  if (trace.find_first_not_of('0') == std::string::npos) return "";
  return trace;
}

std::string job_id_of_trace_id(std::string_view trace_id) {
  if (trace_id.size() != 32) return "";
  for (char c : trace_id)
    if (!lower_hex(c)) return "";
  std::string id(trace_id.substr(0, 8));
  for (auto [at, length] : {std::pair{8, 4}, {12, 4}, {16, 4}, {20, 12}}) {
    id.push_back('-');
    id.append(trace_id.substr(at, length));
  }
  return id;
}

std::unique_ptr<JobStore> open_sqlite_job_store(const std::string& path) {
  return make_job_store(open_sqlite_backend(path));
}

std::unique_ptr<JobStore> open_postgres_job_store(const std::string& url) {
  return make_job_store(open_postgres_backend(url));
}

namespace {

using JobStoreRegistry = NamedRegistry<JobStore, JobStoreOptions>;

std::unique_ptr<JobStore> make_sqlite_job_store(const JobStoreOptions& options) {
  return open_sqlite_job_store(
      Environment(options.environment).string("ASYA_GATEWAY_DB", ".asya/gateway.db"));
}

std::unique_ptr<JobStore> make_postgres_job_store(const JobStoreOptions& options) {
  return open_postgres_job_store(Environment(options.environment).required("ASYA_DATABASE_URL"));
}

JobStoreRegistry& job_store_registry() {
  static JobStoreRegistry* instance = new JobStoreRegistry(  // never destroyed
      {{"sqlite", &make_sqlite_job_store}, {"postgres", &make_postgres_job_store}});
  return *instance;
}

}  // namespace

void register_job_store(std::string name, JobStoreFactory factory) {
  job_store_registry().add(std::move(name), std::move(factory));
}

std::vector<std::string> job_store_names() {
  return job_store_registry().names();
}

std::unique_ptr<JobStore> open_job_store(std::string_view name, const JobStoreOptions& options) {
  JobStoreFactory factory = job_store_registry().find(name);
  if (!factory) {
    throw ConfigError("job store \"" + std::string(name) + "\" is not known: use one of " +
                      job_store_registry().names_text());
  }
  return factory(options);
}

std::unique_ptr<JobStore> open_job_store(const JobStoreOptions& options) {
  bool postgres = !Environment(options.environment).string("ASYA_DATABASE_URL", "").empty();
  return open_job_store(postgres ? "postgres" : "sqlite", options);
}

std::unique_ptr<JobStore> open_job_store_from_env() {
  return open_job_store(JobStoreOptions{});
}

}  // namespace asya::gateway
