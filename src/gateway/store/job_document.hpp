// Internal to the job store: the JSON documents kept in its rows (a job, an update) and the
// millisecond times of its columns. Only the store's own files include this.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/store/job_store.hpp"

namespace asya::gateway {

std::int64_t to_ms(Clock::time_point t);
Clock::time_point from_ms(std::int64_t ms);

std::string job_to_document(const Job& job);
// Throws on a document that is not a job's (the store writes every one itself).
Job job_from_document(const std::string& text);
std::string update_to_document(const Update& update);
Update update_from_document(std::int64_t sequence, const std::string& text);

}  // namespace asya::gateway
