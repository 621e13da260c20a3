#include "wire/batch.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "wire/runtime_client.hpp"

namespace asya::wire {

std::string batch_request(const std::vector<std::string_view>& bodies) {
  std::size_t size = 2 + bodies.size();
  for (auto body : bodies) size += body.size();
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (i > 0) out += ',';
    out += bodies[i];
  }
  out += ']';
  return out;
}

namespace {

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::size_t skip_blanks(std::string_view text, std::size_t at) {
  while (at < text.size() && blank(text[at])) ++at;
  return at;
}

// The end (one past the closing bracket) of the array starting at `at`, or npos when it is not
// closed or its brackets, braces and strings do not nest.
std::size_t array_end(std::string_view text, std::size_t at) {
  std::string closers;
  bool in_string = false;
  for (std::size_t i = at; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
        closers += ']';
        break;
      case '{':
        closers += '}';
        break;
      case ']':
      case '}':
        if (closers.empty() || closers.back() != c) return std::string_view::npos;
        closers.pop_back();
        if (closers.empty()) return i + 1;
        break;
      default:
        break;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Result<std::vector<std::string_view>> split_batch_response(std::string_view response,
                                                           std::size_t expected) {
  std::vector<std::string_view> items;
  std::size_t at = skip_blanks(response, 0);
  if (at >= response.size() || response[at] != '[')
    return Error{"batch response is not a JSON array"};
  at = skip_blanks(response, at + 1);
  if (at < response.size() && response[at] == ']') {
    ++at;
  } else {
    for (;;) {
      if (at >= response.size() || response[at] != '[')
        return Error{fmt::format(
            "batch response element {} is not a JSON array (each element must be the answer to "
            "the envelope at its position: [outputs...], [] or [error])",
            items.size())};
      std::size_t end = array_end(response, at);
      if (end == std::string_view::npos)
        return Error{fmt::format("batch response element {} is not valid JSON", items.size())};
      items.push_back(response.substr(at, end - at));
      at = skip_blanks(response, end);
      if (at < response.size() && response[at] == ',') {
        at = skip_blanks(response, at + 1);
        continue;
      }
      if (at < response.size() && response[at] == ']') {
        ++at;
        break;
      }
      return Error{
          fmt::format("batch response is not valid JSON after element {}", items.size() - 1)};
    }
  }
  if (skip_blanks(response, at) != response.size())
    return Error{"batch response has bytes after its closing bracket"};
  if (items.size() != expected)
    return Error{fmt::format(
        "batch response has {} answers for a request of {} envelopes: a runtime answers every "
        "envelope of a batch, in order",
        items.size(), expected)};
  return items;
}

bool ready_file_declares_batch(std::string_view contents) {
  return ready_file_declares(contents, kBatchCapability);
}

bool ready_file_declares(std::string_view contents, std::string_view capability) {
  while (!contents.empty()) {
    std::size_t newline = contents.find('\n');
    std::string_view line = contents.substr(0, newline);
    while (!line.empty() && blank(line.front())) line.remove_prefix(1);
    while (!line.empty() && blank(line.back())) line.remove_suffix(1);
    if (line == capability) return true;
    if (newline == std::string_view::npos) break;
    contents.remove_prefix(newline + 1);
  }
  return false;
}

Result<bool> runtime_declares(std::string_view socket_path, std::string_view capability) {
  const std::string path = ready_file_for(socket_path);
  std::ifstream in(path);
  if (!in) return Error{fmt::format("cannot read the runtime's ready file {}", path)};
  std::ostringstream text;
  text << in.rdbuf();
  return ready_file_declares(text.str(), capability);
}

Result<bool> runtime_accepts_batches(std::string_view socket_path) {
  return runtime_declares(socket_path, kBatchCapability);
}

}  // namespace asya::wire
