#include <boost/json.hpp>

#include "gateway/store/job_store.hpp"

namespace asya::gateway {

namespace {

std::string string_member(const boost::json::object& o, const char* key) {
  const boost::json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::string describe_failure(const Job& job) {
  std::string type, message;
  if (!job.error_details_json.empty()) {
    boost::system::error_code ec;
    boost::json::value details = boost::json::parse(job.error_details_json, ec);
    if (!ec && details.is_object()) {
      type = string_member(details.as_object(), "type");
      message = string_member(details.as_object(), "message");
    }
  }
  std::string code = job.error.empty() ? std::string("failed") : job.error;
  std::string what = type.empty() ? message : (message.empty() ? type : type + ": " + message);
  std::string where;
  if (what.empty()) {
    what = code;  // nothing but the code: it comes first
  } else if (code != message) {
    where = code;  // the end actor copies the message into an empty error: not twice
  }
  if (!job.failed_actor.empty()) {
    if (!where.empty()) where += ' ';
    where.append("in actor \"").append(job.failed_actor).append("\"");
  }
  return where.empty() ? what : what + " (" + where + ")";
}

}  // namespace asya::gateway
