// The C++ runtime's batch requests (asya::serve_batch, PROTOCOL §3 "Batches"): a JSON array of
// envelopes in, one answer per envelope out; a single envelope is a batch of one. Each envelope is
// checked by the rules of the payload path (runtime_envelope.hpp), so a bad one gets the same
// msg_parsing_error as alone and the others are still handled.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "asya/runtime.hpp"
#include "wire/runtime_envelope.hpp"

namespace asya {
namespace {

namespace json = boost::json;
using detail::append_json;
using detail::error_response;
using detail::Failure;

// The answer to one envelope whose handler result is `outputs` (as the payload path builds it).
std::string outputs_answer(const detail::Request& in, const Outputs& outputs) {
  std::string answer = "[";
  std::string route_and_headers;
  if (!outputs.items().empty()) {
    json::object next_route = *in.route;
    next_route["current"] = in.current + 1;
    route_and_headers = ",\"route\":";
    append_json(route_and_headers, next_route);
    if (in.headers) {
      route_and_headers += ",\"headers\":";
      append_json(route_and_headers, *in.headers);
    }
    route_and_headers += '}';
  }
  bool first = true;
  for (const Json& payload : outputs.items()) {
    answer += first ? "{\"payload\":" : ",{\"payload\":";
    first = false;
    append_json(answer, payload);
    answer += route_and_headers;
  }
  return answer + ']';
}

Failure failure_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    return detail::current_exception_failure();
  }
}

std::string handle_batch(std::string_view request, const BatchHandler& handler) {
  json::value root;
  {
    boost::system::error_code ec;
    root = json::parse(request, ec, {}, detail::parse_options());
    if (ec)
      return error_response(
          detail::parsing_error(fmt::format("request is not valid JSON: {}", ec.message())));
  }
  // Each element is checked where the parse left it (moved, not parsed again).
  const bool single = !root.is_array();
  const std::size_t count = single ? 1 : root.get_array().size();
  std::vector<std::string> answers(count);
  std::vector<detail::Request> requests(count);
  std::vector<std::size_t> called;
  std::vector<Json> payloads;
  for (std::size_t i = 0; i < count; ++i) {
    requests[i].root = single ? std::move(root) : std::move(root.get_array()[i]);
    if (auto failure = detail::check_request(requests[i])) {
      if (!single) failure->message = fmt::format("batch element {}: {}", i, failure->message);
      answers[i] = error_response(*failure);
      continue;
    }
    called.push_back(i);
    payloads.push_back(requests[i].envelope->at("payload"));
  }
  if (!called.empty()) {
    std::vector<BatchResult> results;
    std::string batch_failure;
    try {
      results = handler(payloads);
      if (results.size() != payloads.size())
        batch_failure = error_response(detail::invalid_result(fmt::format(
            "batch handler returned {} results for {} inputs: return exactly one result per "
            "input, in order (Outputs::none() to abort an item, BatchResult::failure to fail it)",
            results.size(), payloads.size())));
    } catch (...) {
      batch_failure = error_response(detail::current_exception_failure());
    }
    for (std::size_t k = 0; k < called.size(); ++k) {
      std::size_t i = called[k];
      if (!batch_failure.empty()) {
        answers[i] = batch_failure;
      } else if (results[k].error()) {
        answers[i] = error_response(failure_of(results[k].error()));
      } else {
        answers[i] = outputs_answer(requests[i], results[k].outputs());
      }
    }
  }
  if (single) return answers[0];
  std::string out = "[";
  for (std::size_t i = 0; i < answers.size(); ++i) {
    if (i > 0) out += ',';
    out += answers[i];
  }
  return out + ']';
}

}  // namespace

std::string handle_batch_request(std::string_view request, const BatchHandler& handler) {
  try {
    return handle_batch(request, handler);
  } catch (...) {
    return error_response(detail::current_exception_failure());
  }
}

}  // namespace asya
