#include "k8s/operator/kube_client.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <boost/json.hpp>

#include "k8s/yaml_json.hpp"

namespace asya::k8s::op {
namespace json = boost::json;
namespace {

Result<std::string> read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("{}: cannot read {}", what, path)};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

Result<std::string> base64_decode(std::string_view text, std::string_view what) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      value = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      value = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      value = 62;
    } else if (c == '/' || c == '_') {
      value = 63;
    } else if (c == '=' || c == '\n' || c == '\r' || c == ' ') {
      continue;
    } else {
      return Error{
          fmt::format("{}: not base64 (character '{}'); give the base64 of a PEM file", what, c)};
    }
    buffer = (buffer << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

const json::object* find_named(const json::value& list, const std::string& name) {
  if (!list.is_array()) return nullptr;
  for (const auto& item : list.as_array()) {
    if (!item.is_object()) continue;
    const auto& o = item.as_object();
    auto it = o.find("name");
    if (it != o.end() && it->value().is_string() && it->value().as_string() == name) return &o;
  }
  return nullptr;
}

std::string str_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string());
}

bool bool_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_bool() && it->value().as_bool();
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// The bearer token (re-read from token_file on every request: rotated service account tokens)
// and the headers every request carries.
Result<http::Headers> common_headers(const KubeConfig& config) {
  http::Headers headers;
  std::string token = config.token;
  if (!config.token_file.empty()) {
    auto text = read_file(config.token_file, "service account token");
    if (!text) return text.error();
    token = trim(*text);
  }
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  headers.emplace_back("Accept", "application/json");
  return headers;
}

http::ClientOptions client_options(const KubeConfig& config) {
  http::ClientOptions options;
  options.tls.verify_peer = !config.insecure_skip_tls_verify;
  options.tls.ca_file = config.ca_file;
  options.tls.ca_pem = config.ca_data;
  options.tls.client_cert_file = config.client_cert_file;
  options.tls.client_cert_pem = config.client_cert_data;
  options.tls.client_key_file = config.client_key_file;
  options.tls.client_key_pem = config.client_key_data;
  return options;
}

}  // namespace

// What to do about a failed TLS handshake (mostly a server certificate the client could not
// verify).
static std::string_view tls_hint(http::Failure failure) {
  if (failure != http::Failure::kTls) return {};
  return " (give the CA of the API server: certificate-authority or certificate-authority-data "
         "in the kubeconfig, ca.crt of the service account in a pod; check client-certificate "
         "and client-key when set)";
}

Result<KubeConfig> in_cluster_config(const std::string& service_account_dir,
                                     const EnvironmentLookup& lookup) {
  const std::string host = lookup("KUBERNETES_SERVICE_HOST").value_or("");
  const std::string port = lookup("KUBERNETES_SERVICE_PORT").value_or("");
  if (host.empty() || port.empty()) {
    return Error{
        "in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
        "set (not running in a pod); pass --kubeconfig or set KUBECONFIG"};
  }
  KubeConfig config;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  config.server = fmt::format("https://{}:{}", h, port);
  config.token_file = service_account_dir + "/token";
  config.ca_file = service_account_dir + "/ca.crt";
  for (const auto& f : {config.token_file, config.ca_file}) {
    if (!std::filesystem::exists(f)) {
      return Error{fmt::format(
          "in-cluster configuration: {} does not exist; mount the service account token "
          "(automountServiceAccountToken) or pass --kubeconfig",
          f)};
    }
  }
  if (auto ns = read_file(service_account_dir + "/namespace", "namespace")) {
    config.default_namespace = trim(*ns);
  }
  config.source = "in-cluster";
  return config;
}

Result<KubeConfig> kubeconfig_config(const std::string& path, const std::string& context_name) {
  const std::string what = "kubeconfig " + path;
  auto text = read_file(path, "kubeconfig");
  if (!text) return text.error();
  auto parsed = from_yaml(*text, what);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return Error{what + ": expected a mapping (a kubeconfig file)"};
  const auto& doc = parsed->as_object();
  std::string ctx_name = context_name.empty() ? str_field(doc, "current-context") : context_name;
  if (ctx_name.empty()) {
    return Error{what +
                 ": no current-context; set one (kubectl config use-context) or pass "
                 "--context"};
  }
  const json::value* contexts = doc.if_contains("contexts");
  const json::object* ctx = contexts ? find_named(*contexts, ctx_name) : nullptr;
  if (!ctx || !ctx->contains("context") || !ctx->at("context").is_object()) {
    return Error{fmt::format("{}: context \"{}\" not found in contexts", what, ctx_name)};
  }
  const auto& context = ctx->at("context").as_object();
  const std::string cluster_name = str_field(context, "cluster");
  const std::string user_name = str_field(context, "user");
  const json::value* clusters = doc.if_contains("clusters");
  const json::object* cl = clusters ? find_named(*clusters, cluster_name) : nullptr;
  if (!cl || !cl->contains("cluster") || !cl->at("cluster").is_object()) {
    return Error{fmt::format("{}: cluster \"{}\" of context \"{}\" not found in clusters", what,
                             cluster_name, ctx_name)};
  }
  const auto& cluster = cl->at("cluster").as_object();
  const std::string base_dir = std::filesystem::path(path).parent_path().string();

  KubeConfig config;
  config.source = fmt::format("kubeconfig {} (context {})", path, ctx_name);
  config.default_namespace = str_field(context, "namespace");
  config.server = str_field(cluster, "server");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (config.server.empty()) {
    return Error{fmt::format("{}: cluster \"{}\" has no server URL", what, cluster_name)};
  }
  config.insecure_skip_tls_verify = bool_field(cluster, "insecure-skip-tls-verify");
  config.ca_file = resolve(base_dir, str_field(cluster, "certificate-authority"));
  if (auto data = str_field(cluster, "certificate-authority-data"); !data.empty()) {
    auto pem = base64_decode(data, what + ": certificate-authority-data");
    if (!pem) return pem.error();
    config.ca_data = std::move(*pem);
  }

  if (!user_name.empty()) {
    const json::value* users = doc.if_contains("users");
    const json::object* us = users ? find_named(*users, user_name) : nullptr;
    if (!us) {
      return Error{fmt::format("{}: user \"{}\" of context \"{}\" not found in users", what,
                               user_name, ctx_name)};
    }
    json::object user;
    if (us->contains("user") && us->at("user").is_object()) user = us->at("user").as_object();
    if (user.contains("exec") || user.contains("auth-provider")) {
      return Error{fmt::format(
          "{}: user \"{}\" uses an exec or auth-provider plugin, which asya-operator does not "
          "run; use a token, tokenFile or client certificate (e.g. a service account token)",
          what, user_name)};
    }
    config.token = str_field(user, "token");
    config.token_file = resolve(base_dir, str_field(user, "tokenFile"));
    config.client_cert_file = resolve(base_dir, str_field(user, "client-certificate"));
    config.client_key_file = resolve(base_dir, str_field(user, "client-key"));
    if (auto data = str_field(user, "client-certificate-data"); !data.empty()) {
      auto pem = base64_decode(data, what + ": client-certificate-data");
      if (!pem) return pem.error();
      config.client_cert_data = std::move(*pem);
    }
    if (auto data = str_field(user, "client-key-data"); !data.empty()) {
      auto pem = base64_decode(data, what + ": client-key-data");
      if (!pem) return pem.error();
      config.client_key_data = std::move(*pem);
    }
  }
  return config;
}

Result<KubeConfig> load_config(const std::string& kubeconfig_flag, const std::string& context) {
  if (!kubeconfig_flag.empty()) return kubeconfig_config(kubeconfig_flag, context);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string first = env;
    first = first.substr(0, first.find(':'));
    return kubeconfig_config(first, context);
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host && *host) {
    return in_cluster_config();
  }
  const char* home = std::getenv("HOME");
  const std::string fallback = std::string(home ? home : "") + "/.kube/config";
  if (std::filesystem::exists(fallback)) return kubeconfig_config(fallback, context);
  return Error{
      "no Kubernetes API configuration: not in a pod (KUBERNETES_SERVICE_HOST unset), "
      "KUBECONFIG unset and no ~/.kube/config; pass --kubeconfig FILE"};
}

KubeClient::KubeClient(KubeConfig config)
    : config_(std::move(config)), http_(client_options(config_)) {}

Result<HttpResponse> KubeClient::request(std::string_view method, const std::string& path,
                                         const std::string& body,
                                         std::string_view content_type) const {
  auto headers = common_headers(config_);
  if (!headers) return headers.error();
  http::Request request;
  request.method = std::string(method);
  request.url = config_.server + path;
  request.headers = std::move(*headers);
  if (!body.empty()) request.headers.emplace_back("Content-Type", std::string(content_type));
  request.body = body;
  request.timeout = std::chrono::seconds(30);
  request.connect_timeout = std::chrono::seconds(10);
  http::Failure why = http::Failure::kNone;
  auto response = http_.perform(request, &why);
  if (!response) return Error{response.error().message + std::string(tls_hint(why))};
  return response;
}

Result<HttpResponse> KubeClient::stream(const std::string& path,
                                        const std::function<bool(std::string_view)>& on_line,
                                        const std::atomic<bool>& stop,
                                        std::chrono::seconds max_duration) const {
  auto headers = common_headers(config_);
  if (!headers) return headers.error();
  http::Request request;
  request.url = config_.server + path;
  request.headers = std::move(*headers);
  request.timeout = max_duration;
  request.connect_timeout = std::chrono::seconds(10);
  request.cancel = &stop;
  http::Failure why = http::Failure::kNone;
  auto response = http_.stream(
      request,
      [&](std::string_view line) {
        if (line.empty()) return http::StreamControl::kContinue;  // watch events are one a line
        return on_line(line) ? http::StreamControl::kContinue : http::StreamControl::kStop;
      },
      &why);
  if (stop.load()) return HttpResponse{};
  if (!response) return Error{response.error().message + std::string(tls_hint(why))};
  return response;
}

std::string describe_failure(std::string_view method, const std::string& path,
                             const HttpResponse& response) {
  std::string detail;
  std::error_code ec;
  auto parsed = json::parse(response.body, ec);
  if (!ec && parsed.is_object()) {
    const auto& o = parsed.as_object();
    detail = str_field(o, "message");
    if (detail.empty()) detail = str_field(o, "reason");
  }
  if (detail.empty()) detail = response.body.substr(0, 300);
  return fmt::format("{} {}: HTTP {}{}{}", method, path, response.status,
                     detail.empty() ? "" : ": ", detail);
}

std::string url_encode(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace asya::k8s::op
