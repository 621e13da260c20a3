#include "common/aws/http.hpp"

namespace asya::aws {

namespace {

// '"' + text + '"' built by appending (GCC 12 warns falsely about `"\"" + std::string(...)`).
std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

}  // namespace

Result<Url> Url::parse(std::string_view text) {
  Url url;
  std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos)
    return Error{quoted(text) + " is not a URL: use http(s)://host[:port][/path]"};
  url.scheme = std::string(text.substr(0, scheme_end));
  if (url.scheme != "http" && url.scheme != "https")
    return Error{quoted(text) + " is not an http:// or https:// URL"};
  std::string_view rest = text.substr(scheme_end + 3);
  std::size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  std::size_t port_colon = authority.rfind(':');
  std::size_t bracket = authority.rfind(']');
  if (port_colon != std::string_view::npos &&
      (bracket == std::string_view::npos || port_colon > bracket)) {
    url.host = std::string(authority.substr(0, port_colon));
    url.port = std::string(authority.substr(port_colon + 1));
    if (url.port.empty() || url.port.find_first_not_of("0123456789") != std::string::npos)
      return Error{quoted(text) + " has an invalid port \"" + url.port + "\""};
  } else {
    url.host = std::string(authority);
  }
  if (url.host.empty() || url.host.find('@') != std::string::npos)
    return Error{quoted(text) + " has no host (user:password@ is not supported)"};
  std::size_t question = tail.find('?');
  url.path = std::string(tail.substr(0, question));
  if (question != std::string_view::npos) url.query = std::string(tail.substr(question + 1));
  if (url.path.empty()) url.path = "/";
  return url;
}

std::string Url::host_header() const {
  bool default_port =
      port.empty() || (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
  return default_port ? host : host + ":" + port;
}

std::string Url::origin() const {
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

std::string Url::str() const {
  return origin() + path + (query.empty() ? "" : "?" + query);
}

}  // namespace asya::aws
