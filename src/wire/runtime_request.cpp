// The request/response logic of the C++ runtime (PROTOCOL §3), with no socket involved: the
// payload and envelope paths (parse and check the envelope, call the handler, build the JSON
// array answer), the Answer buffers and the public handle_request functions. The envelope checks
// and failures are runtime_envelope.hpp; the raw path is raw_request.cpp.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "asya/runtime.hpp"
#include "wire/raw_request.hpp"
#include "wire/runtime_answer.hpp"
#include "wire/runtime_envelope.hpp"

namespace asya {
namespace {

namespace json = boost::json;
using detail::append_json;
using detail::error_response;
using detail::Failure;
using detail::handler_failure;
using detail::invalid_result;
using detail::kind_name;
using detail::parse_request;
using detail::Request;
using detail::validate_output;

void answer_payload_request(const Request& in, std::size_t reserve, const PayloadHandler& handler,
                            std::string& response);

void handle_payload_request(std::string_view request, const PayloadHandler& handler,
                            std::string& response) {
  Request in;
  if (auto failure = parse_request(request, in)) {
    response = error_response(*failure);
    return;
  }
  answer_payload_request(in, request.size() + 256, handler, response);
}

// A request whose payload came as a file descriptor (PROTOCOL §3 "Payloads passed as a file"):
// the envelope from `rest` ("payload": null), the payload parsed from the mapped bytes (with the
// depth the payload has inside an envelope).
void handle_payload_fd_request(std::string_view rest, std::string_view payload,
                               const PayloadHandler& handler, std::string& response) {
  Request in;
  if (auto failure = parse_request(rest, in)) {
    response = error_response(*failure);
    return;
  }
  json::parse_options options = detail::parse_options();
  options.max_depth -= 1;
  json::error_code ec;
  json::value parsed = json::parse(payload, ec, in.root.storage(), options);
  if (ec) {
    response = error_response(detail::parsing_error(
        fmt::format("the payload passed as a file ({} bytes) is not one JSON value: {}",
                    payload.size(), ec.message())));
    return;
  }
  in.root.as_object()["payload"] = std::move(parsed);
  answer_payload_request(in, payload.size() + rest.size() + 256, handler, response);
}

void answer_payload_request(const Request& in, std::size_t reserve, const PayloadHandler& handler,
                            std::string& response) {
  Outputs outputs;
  try {
    outputs = handler(in.envelope->at("payload"));
  } catch (...) {
    response = error_response(handler_failure(in));
    return;
  }
  // The answer is written straight into one string: no JSON value is copied to build it (a
  // 100 MB payload is serialized once, from where the handler left it).
  response.clear();
  response.reserve(reserve);
  response += '[';
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
  // PROTOCOL §3: a fan-out of one says so, so that it is stamped with a group like any fan-out.
  const bool fan_out_of_one = outputs.is_fan_out() && outputs.items().size() == 1;
  for (const Json& payload : outputs.items()) {
    response += first ? "{\"payload\":" : ",{\"payload\":";
    first = false;
    append_json(response, payload);
    if (fan_out_of_one) response += ",\"fanout\":true";
    response += route_and_headers;
  }
  response += ']';
}

std::string handle_envelope_request(std::string_view request, const EnvelopeHandler& handler,
                                    bool validate) {
  Request in;
  if (auto failure = parse_request(request, in)) return error_response(*failure);
  // The handler sees the fields an actor may act on, like in the Python runtime; other fields
  // are the sidecar's business. Copy only when there is something to leave out.
  static constexpr std::string_view kHandlerFields[] = {"id",      "parent_id", "route",
                                                        "headers", "deadline",  "payload"};
  auto is_handler_field = [](std::string_view key) {
    for (auto field : kHandlerFields) {
      if (key == field) return true;
    }
    return false;
  };
  const json::object* handler_envelope = in.envelope;
  json::object filtered;
  for (const auto& entry : *in.envelope) {
    if (!is_handler_field(entry.key())) {
      for (const auto& kept : *in.envelope) {
        if (is_handler_field(kept.key())) filtered.emplace(kept.key(), kept.value());
      }
      handler_envelope = &filtered;
      break;
    }
  }
  std::vector<Json> outputs;
  try {
    outputs = handler(*handler_envelope);
  } catch (...) {
    return error_response(handler_failure(in));
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    std::string where = outputs.size() > 1 ? fmt::format("output {}", i) : std::string("output");
    if (!outputs[i].is_object()) {
      return error_response(invalid_result(
          fmt::format("{} of the envelope-mode handler is {}, not an envelope (object)", where,
                      kind_name(outputs[i]))));
    }
    if (!validate) continue;
    if (auto failure = validate_output(in, outputs[i].get_object(), where)) {
      return error_response(*failure);
    }
  }
  std::string response;
  response.reserve(request.size() + 256);
  response += '[';
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (i > 0) response += ',';
    append_json(response, outputs[i]);
  }
  response += ']';
  return response;
}

}  // namespace

namespace detail {

void Answer::clear() {
  if (text.capacity() > kKeptBufferBytes) {
    std::string().swap(text);
  } else {
    text.clear();
  }
  pieces.clear();
  outputs = RawOutputs();
}

std::size_t Answer::size() const {
  if (pieces.empty()) return text.size();
  std::size_t total = 0;
  for (std::string_view piece : pieces) total += piece.size();
  return total;
}

std::string Answer::to_string() const {
  if (pieces.empty()) return text;
  std::string whole;
  whole.reserve(size());
  for (std::string_view piece : pieces) whole += piece;
  return whole;
}

// Building or serializing the answer can still throw (bad_alloc, a handler-made value that
// cannot be copied); those become error elements too, so the server always has an answer.
void respond_payload(std::string_view request, const PayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_payload_request(request, handler, out.text);
  } catch (...) {
    out.clear();
    out.text = error_response(detail::current_exception_failure());
  }
}

void respond_raw(std::string_view request, const RawPayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_raw_payload_request(request, handler, out);
  } catch (...) {
    out.clear();
    out.text = error_response(detail::current_exception_failure());
  }
}

void respond_payload_fd(std::string_view rest, std::string_view payload,
                        const PayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_payload_fd_request(rest, payload, handler, out.text);
  } catch (...) {
    out.clear();
    out.text = error_response(detail::current_exception_failure());
  }
}

void respond_raw_fd(std::string_view rest, std::string_view payload,
                    const RawPayloadHandler& handler, Answer& out) {
  out.clear();
  try {
    handle_raw_payload_fd_request(rest, payload, handler, out);
  } catch (...) {
    out.clear();
    out.text = error_response(detail::current_exception_failure());
  }
}

}  // namespace detail

std::string handle_request(std::string_view request, const PayloadHandler& handler) {
  detail::Answer answer;
  detail::respond_payload(request, handler, answer);
  return std::move(answer.text);
}

std::string handle_request(std::string_view request, const EnvelopeHandler& handler,
                           bool validate) {
  try {
    return handle_envelope_request(request, handler, validate);
  } catch (...) {
    return error_response(detail::current_exception_failure());
  }
}

std::string handle_raw_request(std::string_view request, const RawPayloadHandler& handler,
                               bool payload_unchanged_allowed) {
  detail::Answer answer;
  if (payload_unchanged_allowed) answer.payload_unchanged_allowed = [] { return true; };
  detail::respond_raw(request, handler, answer);
  return answer.to_string();
}

}  // namespace asya
