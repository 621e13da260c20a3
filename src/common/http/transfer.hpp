// Internal to common/http (not part of the client's public face): the state of one call, filled
// by whichever path carries it (libcurl in client.cpp, the plain HTTP/1.1 path in
// plain_http.cpp), and the one wording of a failed call.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "common/http/client.hpp"

namespace asya::http::detail {

struct Transfer {
  Response response;
  const std::function<StreamControl(std::string_view)>* on_line = nullptr;  // stream() only
  std::string pending;        // the unfinished line of a streamed 2xx body
  bool stopped = false;       // on_line returned kStop
  std::exception_ptr thrown;  // what on_line threw

  bool streaming() const {
    return on_line != nullptr && response.status >= 200 && response.status < 300;
  }
  // Takes the next bytes of the body: collects them, or passes each completed line to on_line
  // when streaming. False when the transfer must end: on_line returned kStop (`stopped`) or
  // threw (`thrown`).
  bool deliver(std::string_view data);
};

// "<METHOD> <URL> failed: <reason> (<detail>)"; the detail is left out when empty or equal to
// the reason.
std::string failure_message(const Request& request, std::string_view reason,
                            std::string_view detail);

}  // namespace asya::http::detail
