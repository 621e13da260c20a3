// Helpers shared by the router's unit tests (router_test.cpp: decisions; router_settle_test.cpp:
// settle() and message size limits): a router for an actor with deterministic backoff, deliveries,
// a three-actor input envelope and a shortcut through before_runtime() + after_runtime().
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/json.hpp>

#include "envelope/envelope.hpp"
#include "sidecar/router.hpp"

namespace asya::sidecar::router_test {

inline RouterOptions options_for(std::string actor) {
  RouterOptions o;
  o.actor = std::move(actor);
  o.jitter = [] { return 0.0; };  // backoff = half the nominal delay, deterministic
  return o;
}

inline transport::Delivery delivery_of(std::string body, std::uint32_t count = 1) {
  return transport::Delivery{"asya-b", std::move(body), count, "r1"};
}

// Actor b of a -> b -> c, with headers, route metadata, a field the sidecar does not know and a
// payload whose number and escape must reach the next actor as written.
inline const std::string kInput =
    R"({"id":"X","route":{"actors":["a","b","c"],"current":1,"metadata":{"job":"j"}},)"
    R"("headers":{"trace":"t1"},"extra":{"keep":true},"payload":{"n":1.50,"s":"\u00e9"}})";

inline wire::CallResult ok() {
  return {wire::CallStatus::kOk, ""};
}

inline boost::json::object obj(const std::string& body) {
  return boost::json::parse(body).as_object();
}

// The decision for `input` answered with `response` (the input must pass before_runtime).
inline Decision route(const Router& router, const std::string& input, const std::string& response,
                      wire::CallResult call = ok(), std::uint32_t count = 1) {
  auto delivery = delivery_of(input, count);
  auto parsed = envelope::parse(delivery.body);
  EXPECT_TRUE(parsed.ok()) << (parsed ? "" : parsed.error().message);
  auto early = router.before_runtime(delivery, parsed, std::chrono::system_clock::now());
  EXPECT_FALSE(early.has_value());
  return router.after_runtime(*parsed, delivery, call, response);
}

}  // namespace asya::sidecar::router_test
