// The dashboard (docs/dashboard.md): static HTML, CSS and JavaScript from src/gateway/dashboard/,
// embedded in asya-gateway at build time (embed.cmake) and served at GET / and /dashboard/<file>
// without a token: the page holds no data; every API call it makes carries the client token when
// ASYA_GATEWAY_TOKEN is set. Served with a strict Content-Security-Policy (only this origin's
// scripts, styles and API; no inline code, no framing).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "gateway/http/http.hpp"

namespace asya::gateway::dashboard {

struct EmbeddedFile {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view body;
};

// Every embedded file (generated source).
const std::vector<EmbeddedFile>& embedded_files();

// The Content-Security-Policy of every dashboard response.
inline constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

// The answer for a dashboard path ("/" is index.html, "/dashboard/<file>"), or nullopt when the
// path is not the dashboard's. A method other than GET/HEAD gets 405, an unknown file 404.
std::optional<http::Response> serve(const http::Request& request);

}  // namespace asya::gateway::dashboard
