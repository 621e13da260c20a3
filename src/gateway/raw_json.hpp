// Call arguments travel byte for byte: the gateway validates the parsed arguments but forwards
// the text the client sent, so numbers keep their spelling ("8.1" stays 8.1, a 20-digit integer
// keeps its digits) and escapes survive.
#pragma once

#include <boost/json/object.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace asya::gateway {

// The raw text of each member value of a JSON object, by (unescaped) key; for a duplicated key
// the last one, as the parser keeps it. `object_text` must be text that boost::json::parse
// accepted as an object (the scanner does not validate); anything else gives an empty map.
// The views point into `object_text`.
std::map<std::string, std::string_view> raw_members(std::string_view object_text);

// The raw text of each element of a JSON array, in order. `array_text` must be text that
// boost::json::parse accepted as an array; anything else gives an empty vector. The views point
// into `array_text`.
std::vector<std::string_view> raw_elements(std::string_view array_text);

// The JSON text of the validated arguments (members in `validated` order): each member the client
// sent and validation left unchanged is copied from `raw_arguments` (the text of the client's
// arguments object, "" when it sent none); defaults and normalized values (an integer written
// 4.0 is forwarded as 4) are printed with to_json_text.
std::string payload_text(const boost::json::object& validated, const boost::json::object& given,
                         std::string_view raw_arguments);

}  // namespace asya::gateway
