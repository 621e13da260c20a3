#include "envelope/response.hpp"

#include "envelope/json_detail.hpp"

#include <optional>

namespace asya::envelope {
namespace {

using detail::describe;
using detail::PaddedText;
using detail::raw_value;
using detail::trim_right;
namespace ondemand = simdjson::ondemand;

// Reads details.message/type/traceback when they are strings (other fields and types ignored).
simdjson::error_code read_details(ondemand::value& value, ResponseItem& item) {
  ondemand::object object;
  if (auto error = value.get_object().get(object)) return error;
  for (auto field_result : object) {
    ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return error;
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return error;
    std::string* target = key == "message"     ? &item.error_message
                          : key == "type"      ? &item.error_type
                          : key == "traceback" ? &item.error_traceback
                                               : nullptr;
    if (target == nullptr) continue;
    ondemand::json_type type;
    if (auto error = field.value().type().get(type)) return error;
    if (type == ondemand::json_type::string) {
      std::string_view text;
      if (auto error = field.value().get_string().get(text)) return error;
      target->assign(text);
    } else {
      // Not a string: keep its JSON text so the information is not lost.
      std::string_view raw;
      if (auto error = raw_value(field.value(), raw)) return error;
      target->assign(raw);
    }
  }
  return simdjson::SUCCESS;
}

Status parse_items(std::string_view body, std::vector<ResponseItem>& items, const char* in_place) {
  PaddedText padded;
  ondemand::document document;
  if (auto status =
          detail::open_document(body, "response", ondemand::json_type::array,
                                "a JSON array of results or errors", document, padded, in_place);
      !status) {
    return status;
  }
  auto not_json = [&](simdjson::error_code error) -> Status {
    return Error{detail::invalid_json_message("response", error, padded, &document)};
  };
  ondemand::array array;
  if (auto error = document.get_array().get(array)) return not_json(error);

  std::size_t index = 0;
  detail::KeySet keys;
  for (auto element_result : array) {
    ondemand::value element;
    if (auto error = std::move(element_result).get(element)) return not_json(error);
    auto where = [index] { return "response element " + std::to_string(index); };
    ondemand::json_type element_type;
    if (auto error = element.type().get(element_type)) return not_json(error);
    if (element_type != ondemand::json_type::object) {
      std::string_view raw;
      if (auto error = raw_value(element, raw)) return not_json(error);
      return Error{where() +
                   ": expected an object (a result {\"payload\", \"route\", \"headers\"?} or an "
                   "error {\"error\", \"details\"}), got " +
                   describe(raw)};
    }
    ondemand::object object;
    if (auto error = element.get_object().get(object)) return not_json(error);

    ResponseItem item;
    bool have_payload = false;
    bool have_route = false;
    // "payload_unchanged" as written (true/false), or its JSON text when it is not a boolean.
    std::optional<bool> unchanged;
    std::string_view unchanged_raw;
    // The route is validated while iterating but only reported for result elements: an error
    // element's other fields do not matter.
    Status route_status;
    detail::Route route;
    std::string_view error_raw;
    keys.clear();
    for (auto field_result : object) {
      ondemand::field field;
      if (auto error = std::move(field_result).get(field)) return not_json(error);
      std::string_view key;
      if (auto error = field.unescaped_key().get(key)) return not_json(error);
      keys.add(key);
      ondemand::value& value = field.value();
      if (key == "payload") {
        std::string_view raw;
        if (auto error = raw_value(value, raw)) return not_json(error);
        item.payload_raw = padded.map(raw);
        have_payload = true;
      } else if (key == "route") {
        simdjson::error_code syntax_error;
        route_status =
            detail::parse_route(value, padded, detail::RouteContext{index}, route, syntax_error);
        if (syntax_error) return not_json(syntax_error);
        have_route = true;
      } else if (key == "headers") {
        ondemand::json_type value_type;
        if (auto error = value.type().get(value_type)) return not_json(error);
        std::string_view raw;
        if (auto error = raw_value(value, raw)) return not_json(error);
        if (value_type != ondemand::json_type::object) {
          route_status =
              route_status.ok()
                  ? Status(Error{where() + ": headers: expected an object, got " + describe(raw)})
                  : route_status;
        } else {
          item.headers_raw = padded.map(raw);
        }
      } else if (key == "payload_unchanged") {
        bool marked = false;
        if (value.get_bool().get(marked) == simdjson::SUCCESS) {
          unchanged = marked;
        } else if (auto error = raw_value(value, unchanged_raw)) {
          return not_json(error);
        }
      } else if (key == "fanout") {
        bool marked = false;
        if (value.get_bool().get(marked) == simdjson::SUCCESS) item.fanout = marked;
      } else if (key == "error") {
        ondemand::json_type value_type;
        if (auto error = value.type().get(value_type)) return not_json(error);
        if (value_type == ondemand::json_type::string) {
          std::string_view code;
          if (auto error = value.get_string().get(code)) return not_json(error);
          item.error_code.assign(code);
        } else if (auto error = raw_value(value, error_raw)) {
          return not_json(error);
        }
      } else if (key == "details") {
        ondemand::json_type value_type;
        if (auto error = value.type().get(value_type)) return not_json(error);
        if (value_type == ondemand::json_type::object) {
          const char* start = value.raw_json_token().data();
          if (auto error = read_details(value, item)) return not_json(error);
          const char* end = nullptr;
          if (auto error = value.current_location().get(end)) return not_json(error);
          item.details_raw = padded.map(
              trim_right(std::string_view(start, static_cast<std::size_t>(end - start))));
        } else {
          std::string_view raw;
          if (auto error = raw_value(value, raw)) return not_json(error);
          item.details_raw = padded.map(raw);
        }
      }
      // Other fields (e.g. an "id" returned in envelope mode) are ignored.
    }
    std::string_view duplicate;
    if (keys.find_duplicate(duplicate)) {
      return Error{where() + ": " + std::string(duplicate) +
                   ": duplicate key (each field may appear only once)"};
    }
    item.is_error = !item.error_code.empty();
    if (!item.is_error) {
      // PROTOCOL §3: a result carries exactly one of "payload" and "payload_unchanged": true.
      if (!unchanged_raw.empty())
        return Error{where() + ": payload_unchanged: expected true or false, got " +
                     describe(unchanged_raw)};
      if (unchanged == true) {
        if (have_payload)
          return Error{where() +
                       ": has both \"payload\" and \"payload_unchanged\": true; a result carries "
                       "exactly one of them (the payload, or true when it is the request's own)"};
        item.payload_unchanged = true;
        have_payload = true;
      }
      if (!have_payload || !have_route) {
        std::string got = error_raw.empty() ? ""
                                            : " (its \"error\" is " + describe(error_raw) +
                                                  ", not a non-empty string)";
        if (unchanged == false && !have_payload)
          got =
              " (\"payload_unchanged\": false does not stand for it; true means the request's "
              "payload)";
        return Error{where() + ": a result needs \"payload\" and \"route\"; " +
                     (have_payload ? "\"route\"" : "\"payload\"") + " is missing" + got};
      }
      if (!route_status.ok()) return route_status;
      item.route_raw = route.raw;
      item.actors = std::move(route.actors);
      item.current = route.current;
    } else {
      item.payload_raw = {};
      item.headers_raw = {};
    }
    items.push_back(std::move(item));
    ++index;
  }
  const char* trailing = nullptr;
  if (!document.current_location().get(trailing)) {
    return Error{"response is not valid JSON: unexpected content after the array (at byte " +
                 std::to_string(padded.offset_of(trailing)) + ")"};
  }
  return Status::Ok();
}

}  // namespace

namespace {
Result<std::vector<ResponseItem>> parse_response_at(std::string_view body, const char* in_place) {
  std::vector<ResponseItem> items;
  Status status = parse_items(body, items, in_place);
  detail::release_if_large();
  if (!status.ok()) {
    // Junk after a complete, valid response: name the junk, not the parser's state there.
    if (std::size_t end = detail::end_of_value_before_trailing_data(body); end > 0) {
      std::vector<ResponseItem> prefix_items;
      if (parse_items(body.substr(0, end), prefix_items, nullptr).ok()) {
        detail::release_if_large();
        return Error{"response has " + std::to_string(body.size() - end) +
                     " bytes of trailing data after the JSON value at byte " + std::to_string(end) +
                     ": " + describe(body.substr(body.find_first_not_of(" \t\n\r", end)))};
      }
      detail::release_if_large();
    }
    return status.error();
  }
  return items;
}
}  // namespace

Result<std::vector<ResponseItem>> parse_response(std::string_view body) {
  return parse_response_at(body, nullptr);
}

Result<std::vector<ResponseItem>> parse_response_padded(std::string_view body) {
  return parse_response_at(body, body.data());
}

}  // namespace asya::envelope
