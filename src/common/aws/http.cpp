#include "common/aws/http.hpp"

#include <curl/curl.h>
#include <strings.h>

#include <mutex>

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

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  }
  return {};
}

namespace {

struct Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  ~Handle() {
    if (multi) curl_multi_cleanup(multi);
    if (easy) curl_easy_cleanup(easy);
  }
};

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::size_t write_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* headers = static_cast<Headers*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100 Continue or a redirect)
    return size * count;
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * count;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  headers->emplace_back(std::string(line.substr(0, colon)), std::string(value));
  return size * count;
}

}  // namespace

struct HttpClient::Pool {
  std::mutex mutex;
  std::vector<std::unique_ptr<Handle>> idle;

  std::unique_ptr<Handle> acquire() {
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        auto handle = std::move(idle.back());
        idle.pop_back();
        return handle;
      }
    }
    auto handle = std::make_unique<Handle>();
    handle->easy = curl_easy_init();
    handle->multi = curl_multi_init();
    return handle;
  }

  void release(std::unique_ptr<Handle> handle) {
    curl_easy_reset(handle->easy);
    std::lock_guard lock(mutex);
    idle.push_back(std::move(handle));
  }
};

HttpClient::HttpClient() : pool_(std::make_unique<Pool>()) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpClient::~HttpClient() = default;

void HttpClient::close() {
  std::lock_guard lock(pool_->mutex);
  pool_->idle.clear();
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& request) {
  auto handle = pool_->acquire();
  if (!handle->easy || !handle->multi)
    return Error{"cannot create a libcurl handle for " + request.method + " " + request.url};
  CURL* easy = handle->easy;
  HttpResponse response;
  curl_slist* header_list = nullptr;
  for (const auto& [name, value] : request.headers)
    header_list = curl_slist_append(header_list, (name + ": " + value).c_str());
  header_list = curl_slist_append(header_list, "Expect:");  // no 100-continue round trip

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &write_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &write_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response.headers);
  if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST")
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  // The multi interface only so a cancel flag can stop a long poll within ~100 ms.
  CURLM* multi = handle->multi;
  curl_multi_add_handle(multi, easy);
  std::string failure;
  CURLcode result = CURLE_OK;
  int running = 1;
  while (true) {
    CURLMcode code = curl_multi_perform(multi, &running);
    if (code != CURLM_OK) {
      failure = curl_multi_strerror(code);
      break;
    }
    if (running == 0) {
      int queued = 0;
      while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
        if (message->msg == CURLMSG_DONE) result = message->data.result;
      }
      if (result != CURLE_OK) failure = curl_easy_strerror(result);
      break;
    }
    if (request.cancel && request.cancel->load()) {
      failure = "cancelled";
      break;
    }
    code = curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    if (code != CURLM_OK) {
      failure = curl_multi_strerror(code);
      break;
    }
  }
  curl_multi_remove_handle(multi, easy);
  curl_slist_free_all(header_list);
  if (failure == "cancelled") {
    pool_->release(std::move(handle));
    return Error{"cancelled: " + request.method + " " + request.url};
  }
  if (!failure.empty()) {
    pool_->release(std::move(handle));
    return Error{request.method + " " + request.url + " failed: " + failure};
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  pool_->release(std::move(handle));
  return response;
}

}  // namespace asya::aws
