#include "common/http/client.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <strings.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <exception>
#include <mutex>

#include "common/excerpt.hpp"
#include "common/http/plain_http.hpp"
#include "common/http/transfer.hpp"

namespace asya::http {

using detail::failure_message;
using detail::Transfer;

namespace detail {

bool Transfer::deliver(std::string_view data) {
  if (!streaming()) {
    response.body.append(data);
    return true;
  }
  pending.append(data);
  std::size_t start = 0;
  try {
    for (std::size_t newline; (newline = pending.find('\n', start)) != std::string::npos;
         start = newline + 1) {
      std::string_view line(pending.data() + start, newline - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if ((*on_line)(line) == StreamControl::kStop) {
        stopped = true;
        return false;
      }
    }
  } catch (...) {
    thrown = std::current_exception();
    return false;
  }
  pending.erase(0, start);
  return true;
}

std::string failure_message(const Request& request, std::string_view reason,
                            std::string_view detail) {
  std::string out = request.method + " " + request.url + " failed: ";
  out += reason;
  if (!detail.empty() && detail != reason) {
    out += " (";
    out += detail;
    out += ')';
  }
  return out;
}

}  // namespace detail

std::string Response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  }
  return {};
}

std::string_view label(Failure failure) {
  switch (failure) {
    case Failure::kNone:
      return "none";
    case Failure::kConnect:
      return "connect";
    case Failure::kTimeout:
      return "timeout";
    case Failure::kTls:
      return "tls";
    case Failure::kCancelled:
      return "cancelled";
    case Failure::kConnection:
      return "connection";
    case Failure::kInvalidInput:
      return "invalid input";
  }
  return "unknown";
}

namespace {

// One easy handle with its own multi handle. The multi handle only lets a call wait in steps of
// at most 100 ms (to notice Request::cancel); it also holds the handle's connection cache.
struct Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  ~Handle() {
    if (multi) curl_multi_cleanup(multi);
    if (easy) curl_easy_cleanup(easy);
  }
};

Failure classify(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return Failure::kNone;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return Failure::kConnect;
    case CURLE_OPERATION_TIMEDOUT:
      return Failure::kTimeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return Failure::kTls;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_FAILED_INIT:
    case CURLE_OUT_OF_MEMORY:
      return Failure::kInvalidInput;
    default:
      return Failure::kConnection;
  }
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100 Continue or an informational answer): "HTTP/1.1 200 OK".
    transfer->response.headers.clear();
    std::size_t space = line.find(' ');
    transfer->response.status =
        space == std::string_view::npos ? 0 : std::strtol(line.data() + space + 1, nullptr, 10);
    return line.size();
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return line.size();
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  transfer->response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  return line.size();
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  const std::size_t n = size * count;
  // 0 ends the transfer (CURLE_WRITE_ERROR, not reported as an error when on_line stopped it).
  return static_cast<Transfer*>(user)->deliver(std::string_view(data, n)) ? n : 0;
}

// Connections kept open in the pool must not leak into the programs a process starts (the
// supervisor forks sidecars and runtimes): every socket libcurl opens is close-on-exec.
int close_on_exec(void*, curl_socket_t fd, curlsocktype) {
  ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
  return CURL_SOCKOPT_OK;
}

void set_blob(CURL* easy, CURLoption option, const std::string& pem) {
  curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(easy, option, &blob);
}

// Sets every option of one call; the handle was reset when it went back to the pool.
curl_slist* configure(CURL* easy, const Request& request, const TlsOptions& tls, Transfer& transfer,
                      char* error_buffer) {
  curl_slist* header_list = nullptr;
  for (const auto& [name, value] : request.headers)
    header_list = curl_slist_append(header_list, (name + ": " + value).c_str());
  header_list = curl_slist_append(header_list, "Expect:");  // no 100-continue round trip

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, &close_on_exec);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list);
  if (request.bypass_proxy) curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");

  const long timeout_ms = request.timeout.count() > 0
                              ? std::max<long>(1, static_cast<long>(request.timeout.count()))
                              : 0L;
  long connect_ms = std::max<long>(1, static_cast<long>(request.connect_timeout.count()));
  if (timeout_ms > 0) connect_ms = std::min(connect_ms, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);

  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);

  if (!tls.verify_peer) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!tls.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.ca_pem.empty()) set_blob(easy, CURLOPT_CAINFO_BLOB, tls.ca_pem);
  if (!tls.client_cert_file.empty())
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
  if (!tls.client_cert_pem.empty()) set_blob(easy, CURLOPT_SSLCERT_BLOB, tls.client_cert_pem);
  if (!tls.client_key_file.empty())
    curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.client_key_file.c_str());
  if (!tls.client_key_pem.empty()) set_blob(easy, CURLOPT_SSLKEY_BLOB, tls.client_key_pem);

  if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (request.body.empty() && request.method != "POST" && request.method != "PUT" &&
             request.method != "PATCH") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST")
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  return header_list;
}

bool has_tls_settings(const TlsOptions& tls) {
  return !tls.verify_peer || !tls.ca_file.empty() || !tls.ca_pem.empty() ||
         !tls.client_cert_file.empty() || !tls.client_cert_pem.empty() ||
         !tls.client_key_file.empty() || !tls.client_key_pem.empty();
}

}  // namespace

struct Client::Pool {
  TlsOptions tls;
  bool plain_allowed = true;  // no TLS settings: plain http:// calls skip libcurl
  detail::PlainConnections plain;
  std::mutex mutex;
  std::vector<std::unique_ptr<Handle>> idle;

  // The only place Asya creates libcurl handles. libcurl (and OpenSSL with it) is initialised
  // here, at the first call that needs it, not when a Client is made.
  std::unique_ptr<Handle> acquire() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
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
    // Forgets the options (and pointers into the finished call) but keeps the connections.
    curl_easy_reset(handle->easy);
    std::lock_guard lock(mutex);
    idle.push_back(std::move(handle));
  }

  Result<Response> call(const Request& request,
                        const std::function<StreamControl(std::string_view)>* on_line,
                        Failure* why);
};

Result<Response> Client::Pool::call(const Request& request,
                                    const std::function<StreamControl(std::string_view)>* on_line,
                                    Failure* why) {
  Failure ignored;
  Failure& failure = why ? *why : ignored;
  failure = Failure::kNone;
  // A header name or value with a line break (or NUL) would end the header early and let its
  // rest pass as another header or as the body: refused on both paths, never sent.
  for (const auto& [name, value] : request.headers) {
    constexpr std::string_view kBreaks("\r\n\0", 3);
    if (name.empty() || name.find(':') != std::string::npos ||
        name.find_first_of(kBreaks) != std::string::npos ||
        value.find_first_of(kBreaks) != std::string::npos) {
      failure = Failure::kInvalidInput;
      std::string shown = excerpt(name);
      std::replace_if(
          shown.begin(), shown.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; },
          '?');
      return Error{failure_message(request,
                                   "header \"" + shown +
                                       "\" not sent: an empty name, a ':' in the name, or a line "
                                       "break or NUL byte in the name or value",
                                   "")};
    }
  }
  if (request.url.starts_with(kHttpUnixScheme)) {
    // Always the plain path: no TLS, proxy or libcurl over a local socket.
    auto target = detail::unix_target(request);
    if (!target) {
      failure = Failure::kInvalidInput;
      return Error{failure_message(request, target.error().message, "")};
    }
    Transfer transfer;
    transfer.on_line = on_line;
    auto response = plain.call(target.value(), request, transfer, failure);
    if (transfer.thrown) std::rethrow_exception(transfer.thrown);
    return response;
  }
  if (plain_allowed) {
    if (auto target = detail::plain_target(request)) {
      Transfer transfer;
      transfer.on_line = on_line;
      auto response = plain.call(*target, request, transfer, failure);
      if (transfer.thrown) std::rethrow_exception(transfer.thrown);
      return response;
    }
  }
  auto handle = acquire();
  if (!handle->easy || !handle->multi) {
    failure = Failure::kInvalidInput;
    return Error{failure_message(request, "cannot create a libcurl handle", "")};
  }
  Transfer transfer;
  transfer.on_line = on_line;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  CURL* easy = handle->easy;
  CURLM* multi = handle->multi;
  curl_slist* header_list = configure(easy, request, tls, transfer, error_buffer.data());

  curl_multi_add_handle(multi, easy);
  CURLcode result = CURLE_OK;
  std::string multi_error;
  bool cancelled = false;
  for (int running = 1;;) {
    CURLMcode code = curl_multi_perform(multi, &running);
    if (code != CURLM_OK) {
      multi_error = curl_multi_strerror(code);
      break;
    }
    if (running == 0) {
      int queued = 0;
      while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
        if (message->msg == CURLMSG_DONE) result = message->data.result;
      }
      break;
    }
    const bool answering = request.cancel_waits_only && transfer.response.status != 0;
    if (request.cancel && request.cancel->load() && !answering) {
      cancelled = true;
      break;
    }
    code = curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    if (code != CURLM_OK) {
      multi_error = curl_multi_strerror(code);
      break;
    }
  }
  curl_multi_remove_handle(multi, easy);
  curl_slist_free_all(header_list);
  release(std::move(handle));

  if (transfer.thrown) std::rethrow_exception(transfer.thrown);
  if (cancelled) {
    failure = Failure::kCancelled;
    return Error{failure_message(request, "cancelled", "")};
  }
  if (!multi_error.empty()) {
    failure = Failure::kConnection;
    return Error{failure_message(request, multi_error, "")};
  }
  if (result != CURLE_OK && !transfer.stopped) {
    failure = classify(result);
    return Error{failure_message(request, curl_easy_strerror(result), error_buffer.data())};
  }
  return std::move(transfer.response);
}

Client::Client(ClientOptions options) : pool_(std::make_unique<Pool>()) {
  pool_->plain_allowed = !has_tls_settings(options.tls);
  pool_->tls = std::move(options.tls);
}

Client::Client() : Client(ClientOptions{}) {}

Client::~Client() = default;

Result<Response> Client::perform(const Request& request, Failure* why) {
  return pool_->call(request, nullptr, why);
}

Result<Response> Client::stream(const Request& request,
                                const std::function<StreamControl(std::string_view line)>& on_line,
                                Failure* why) {
  return pool_->call(request, &on_line, why);
}

void Client::close() {
  pool_->plain.close();
  std::lock_guard lock(pool_->mutex);
  pool_->idle.clear();
}

}  // namespace asya::http
