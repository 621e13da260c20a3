#include "k8s/operator/kube_client.hpp"

#include <curl/curl.h>
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

size_t collect(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// A curl handle set up for `config`: TLS settings and the Authorization header.
Result<std::pair<CurlPtr, SlistPtr>> prepare(const KubeConfig& config, const std::string& url,
                                             std::vector<std::string> headers) {
  CurlPtr curl(curl_easy_init());
  if (!curl) return Error{"curl_easy_init failed"};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (config.insecure_skip_tls_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!config.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config.ca_file.c_str());
  if (!config.ca_data.empty()) {
    curl_blob blob{const_cast<char*>(config.ca_data.data()), config.ca_data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!config.client_cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, config.client_cert_file.c_str());
  }
  if (!config.client_cert_data.empty()) {
    curl_blob blob{const_cast<char*>(config.client_cert_data.data()),
                   config.client_cert_data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &blob);
  }
  if (!config.client_key_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLKEY, config.client_key_file.c_str());
  }
  if (!config.client_key_data.empty()) {
    curl_blob blob{const_cast<char*>(config.client_key_data.data()), config.client_key_data.size(),
                   CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &blob);
  }
  std::string token = config.token;
  if (!config.token_file.empty()) {
    auto text = read_file(config.token_file, "service account token");
    if (!text) return text.error();
    token = trim(*text);
  }
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  headers.push_back("Accept: application/json");
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  SlistPtr slist(list);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  return std::make_pair(std::move(curl), std::move(slist));
}

}  // namespace

// What to do about a certificate the client could not verify.
static std::string_view tls_hint(CURLcode rc) {
  if (rc != CURLE_PEER_FAILED_VERIFICATION) return {};
  return " (give the CA of the API server: certificate-authority or certificate-authority-data "
         "in the kubeconfig, ca.crt of the service account in a pod)";
}

Result<KubeConfig> in_cluster_config(const std::string& service_account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
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

KubeClient::KubeClient(KubeConfig config) : config_(std::move(config)) {}

Result<HttpResponse> KubeClient::request(std::string_view method, const std::string& path,
                                         const std::string& body,
                                         std::string_view content_type) const {
  const std::string url = config_.server + path;
  std::vector<std::string> headers;
  if (!body.empty()) headers.push_back(fmt::format("Content-Type: {}", content_type));
  auto prepared = prepare(config_, url, std::move(headers));
  if (!prepared) return prepared.error();
  CURL* c = prepared->first.get();
  HttpResponse response;
  const std::string m(method);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
  if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  std::array<char, CURL_ERROR_SIZE> error{};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error.data());
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Error{fmt::format("{} {}: {}{}", method, url,
                             error[0] ? error.data() : curl_easy_strerror(rc), tls_hint(rc))};
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

namespace {

struct StreamState {
  CURL* curl = nullptr;
  const std::function<bool(std::string_view)>* on_line = nullptr;
  const std::atomic<bool>* stop = nullptr;
  std::string pending;  // partial line (200) or the whole body (other statuses)
  bool stopped_by_callback = false;
};

size_t stream_write(char* data, size_t size, size_t count, void* user) {
  auto* s = static_cast<StreamState*>(user);
  const size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  s->pending.append(data, n);
  if (status != 200) return n;
  std::size_t start = 0;
  for (std::size_t nl; (nl = s->pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(s->pending.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (!(*s->on_line)(line)) {
      s->stopped_by_callback = true;
      return 0;  // aborts the transfer
    }
  }
  s->pending.erase(0, start);
  return n;
}

int stream_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<StreamState*>(user);
  return s->stop->load() ? 1 : 0;
}

}  // namespace

Result<HttpResponse> KubeClient::stream(const std::string& path,
                                        const std::function<bool(std::string_view)>& on_line,
                                        const std::atomic<bool>& stop,
                                        std::chrono::seconds max_duration) const {
  const std::string url = config_.server + path;
  auto prepared = prepare(config_, url, {});
  if (!prepared) return prepared.error();
  CURL* c = prepared->first.get();
  StreamState state;
  state.curl = c;
  state.on_line = &on_line;
  state.stop = &stop;
  curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(max_duration.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stream_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &state);
  std::array<char, CURL_ERROR_SIZE> error{};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error.data());
  const CURLcode rc = curl_easy_perform(c);
  HttpResponse response;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  if (state.stopped_by_callback || stop.load()) return response;
  if (rc != CURLE_OK) {
    return Error{fmt::format("GET {}: {}{}", url, error[0] ? error.data() : curl_easy_strerror(rc),
                             tls_hint(rc))};
  }
  if (response.status != 200) response.body = std::move(state.pending);
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
