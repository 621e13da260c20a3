#include "gateway/dashboard/assets.hpp"

#include <string>

namespace asya::gateway::dashboard {

namespace {

std::string content_type_of(std::string_view name) {
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

std::optional<http::Response> serve(const http::Request& request) {
  std::string_view path = request.path;
  std::string_view name;
  if (path == "/") {
    name = "index.html";
  } else if (path.rfind("/dashboard/", 0) == 0) {
    name = path.substr(std::string_view("/dashboard/").size());
  } else {
    return std::nullopt;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response r = http::Response::error(
        405, "method " + request.method + " not allowed on " + request.path + " (allowed: GET)");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  for (const auto& file : embedded_files()) {
    if (file.name != name) continue;
    http::Response r;
    r.headers.emplace_back("Content-Type", content_type_of(name));
    r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
    if (request.method == "GET") r.body = std::string(file.body);
    return r;
  }
  return http::Response::error(404, "no dashboard file \"" + std::string(name) + "\"");
}

}  // namespace asya::gateway::dashboard
