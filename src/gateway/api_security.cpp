// The request checks of api.hpp shared by REST and MCP: Host and Origin (against DNS rebinding and
// cross-site requests), the JSON content type, and bearer tokens.
#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include "envelope/envelope.hpp"
#include "gateway/api.hpp"

namespace asya::gateway::api {

namespace asio = boost::asio;

namespace {
std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}
std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  auto end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}
}  // namespace

bool origin_allowed(const ApiOptions& options, const std::string& origin) {
  if (origin.empty()) return true;
  for (const auto& allowed : options.allowed_origins) {
    if (allowed == "*" || lower(allowed) == lower(origin)) return true;
  }
  if (origin == "null") return false;
  for (const char* scheme : {"http://", "https://"}) {
    std::string s = scheme;
    std::string o = lower(origin);
    if (o.rfind(s, 0) != 0) continue;
    std::string host = o.substr(s.size());
    for (const char* local : {"localhost", "127.0.0.1", "[::1]"}) {
      std::string l = local;
      if (host == l || host.rfind(l + ":", 0) == 0) return true;
    }
  }
  return false;
}

bool host_allowed(const ApiOptions& options, const std::string& host_header) {
  std::string host = lower(trim(host_header));
  if (host.empty()) return true;  // HTTP/1.0 clients; browsers always send Host
  // Without the port: "[::1]:8080" -> "::1", "name:8080" -> "name".
  if (host.front() == '[') {
    auto close = host.find(']');
    host = close == std::string::npos ? host : host.substr(1, close - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  // DNS rebinding needs a name the attacker controls; an address needs no check.
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec || host == "localhost") return true;
  for (const auto& allowed : options.allowed_hosts) {
    if (allowed == "*" || lower(allowed) == host) return true;
  }
  return false;
}

bool same_origin(const ApiOptions& options, const std::string& origin, const std::string& host) {
  std::string h = lower(trim(host));
  if (h.empty() || origin.empty()) return false;
  ApiOptions strict = options;
  std::erase(strict.allowed_hosts, std::string("*"));
  if (!host_allowed(strict, h)) return false;
  std::string o = lower(origin);
  return o == "http://" + h || o == "https://" + h;
}

bool is_json_content_type(const std::string& content_type) {
  std::string media = lower(trim(content_type.substr(0, content_type.find(';'))));
  return media == "application/json";
}

bool bearer_matches(const std::string& authorization, const std::string& token) {
  std::string header = trim(authorization);
  const std::string scheme = "bearer";
  if (header.size() <= scheme.size() || lower(header.substr(0, scheme.size())) != scheme ||
      (header[scheme.size()] != ' ' && header[scheme.size()] != '\t'))
    return false;
  std::string given = trim(header.substr(scheme.size()));
  if (given.size() != token.size()) return false;
  unsigned char diff = 0;  // constant time for equal lengths
  for (std::size_t i = 0; i < token.size(); ++i) diff |= given[i] ^ token[i];
  return diff == 0;
}

bool bearer_matches_any(const std::string& authorization, const std::string& tokens) {
  bool matched = false;
  std::size_t begin = 0;
  while (begin <= tokens.size()) {
    std::size_t end = tokens.find(',', begin);
    if (end == std::string::npos) end = tokens.size();
    std::string token = trim(tokens.substr(begin, end - begin));
    // Every token is compared, so the time taken does not tell which one matched.
    if (!token.empty() && bearer_matches(authorization, token)) matched = true;
    begin = end + 1;
  }
  return matched;
}

std::size_t distinct_token_count(const std::string& tokens) {
  std::vector<std::string> seen;
  std::size_t begin = 0;
  while (begin <= tokens.size()) {
    std::size_t end = tokens.find(',', begin);
    if (end == std::string::npos) end = tokens.size();
    std::string token = trim(tokens.substr(begin, end - begin));
    if (!token.empty() && std::find(seen.begin(), seen.end(), token) == seen.end())
      seen.push_back(token);
    begin = end + 1;
  }
  return seen.size();
}

std::string token_owner(const std::string& authorization, bool tokens_configured) {
  if (!tokens_configured) return "";
  // The token as bearer_matches reads it: after the scheme, without surrounding blanks.
  std::string token = trim(authorization);
  auto space = token.find_first_of(" \t");
  token = space == std::string::npos ? "" : trim(token.substr(space));
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : token) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return std::string("token:") + hex;
}

bool plain_text(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return envelope::valid_utf8(text);
}

Caller caller_of(const ApiOptions& options, const std::string& authorization) {
  std::size_t tokens = distinct_token_count(options.token);
  return Caller{token_owner(authorization, tokens > 0), tokens >= 2};
}

}  // namespace asya::gateway::api
