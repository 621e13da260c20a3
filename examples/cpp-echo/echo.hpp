// The echo actor's handler: a plain function, payload in, payload out. Nothing here needs a
// socket or a queue, so echo_test.cpp tests it by calling it.
#pragma once

#include <asya/runtime.hpp>

namespace echo {

// {"message": m} -> {"echoed": m}; any other payload is passed on unchanged.
inline asya::Outputs handle(const asya::Json& payload) {
  if (payload.is_object()) {
    if (const asya::Json* message = payload.get_object().if_contains("message")) {
      return boost::json::object{{"echoed", *message}};
    }
  }
  return payload;
}

}  // namespace echo
