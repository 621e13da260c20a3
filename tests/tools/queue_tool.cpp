// asya-queue: a small tool for tests and debugging, built on the Transport interface so the same
// tests run against every transport (chosen by ASYA_TRANSPORT, default sqlite, with the
// transport's own variables such as ASYA_SQLITE_PATH).
//
//   asya-queue send QUEUE BODY|@FILE [--delay 1s] [--lines]
//       --lines: every non-empty line of BODY/FILE is one message (sent in order, each durable
//       before the next; a failure names the line and stops)
//   asya-queue recv QUEUE [--max N] [--wait 5s] [--ack]
//       prints one JSON line per message: {"body": "<raw body>", "delivery_count": n}
//       without --ack the messages are nacked (visible again at once; delivery count grows)
//   asya-queue stats QUEUE     prints {"ready": n, "in_flight": n, "delayed": n}
//   asya-queue ensure QUEUE
//
// Queue names are full names ("asya-echo"). Exit codes: 0 ok, 1 transport error, 2 usage error.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/env.hpp"
#include "common/log.hpp"
#include "common/version.hpp"
#include "transport/transport.hpp"

namespace {

constexpr const char* kUsage =
    "usage: asya-queue send QUEUE BODY|@FILE [--delay 1s] [--lines]\n"
    "       asya-queue recv QUEUE [--max N] [--wait 5s] [--ack]\n"
    "       asya-queue stats QUEUE\n"
    "       asya-queue ensure QUEUE\n"
    "       asya-queue --help | --version\n"
    "Transport from ASYA_TRANSPORT (default sqlite) and its variables (ASYA_SQLITE_PATH, ...).\n";

int usage(const std::string& problem) {
  std::fprintf(stderr, "asya-queue: %s\n%s", problem.c_str(), kUsage);
  return 2;
}

std::chrono::milliseconds duration_arg(const std::string& option, const std::string& text) {
  auto parsed = asya::parse_duration(text);
  if (!parsed) throw asya::ConfigError(option + " " + parsed.error().message);
  return *parsed;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "--version") {
    std::printf("asya-queue %s\n", std::string(asya::version()).c_str());
    return 0;
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args.size() < 2) return usage("missing QUEUE");
  const std::string command = args[0];
  const std::string queue = args[1];

  try {
    asya::log::init("queue-tool", asya::env_string("ASYA_LOG_LEVEL", "warn"));
    asya::transport::Options options;
    options.visibility_timeout =
        asya::env_duration("ASYA_VISIBILITY_TIMEOUT", options.visibility_timeout);
    options.max_message_bytes = static_cast<std::size_t>(
        asya::env_bytes("ASYA_MAX_MESSAGE_BYTES", options.max_message_bytes));
    auto transport =
        asya::transport::make_transport(asya::env_string("ASYA_TRANSPORT", "sqlite"), options);

    if (command == "ensure") {
      if (args.size() != 2) return usage("ensure takes only QUEUE");
      if (auto st = transport->ensure_queue(queue); !st) {
        std::fprintf(stderr, "asya-queue: %s\n", st.message().c_str());
        return 1;
      }
      return 0;
    }

    if (command == "send") {
      if (args.size() < 3) return usage("send needs QUEUE and BODY (or @FILE)");
      std::string body = args[2];
      std::chrono::milliseconds delay{0};
      bool lines = false;
      for (std::size_t i = 3; i < args.size(); ++i) {
        if (args[i] == "--delay" && i + 1 < args.size())
          delay = duration_arg("--delay", args[++i]);
        else if (args[i] == "--lines")
          lines = true;
        else
          return usage("unknown send option \"" + args[i] + "\"");
      }
      if (body.starts_with("@")) {
        std::ifstream in(body.substr(1), std::ios::binary);
        if (!in) return usage("cannot read file \"" + body.substr(1) + "\"");
        std::stringstream content;
        content << in.rdbuf();
        body = content.str();
      }
      if (auto st = transport->ensure_queue(queue); !st) {
        std::fprintf(stderr, "asya-queue: %s\n", st.message().c_str());
        return 1;
      }
      std::vector<std::string_view> messages;
      if (lines) {
        std::string_view rest = body;
        while (!rest.empty()) {
          auto end = rest.find('\n');
          std::string_view line = rest.substr(0, end);
          if (!line.empty()) messages.push_back(line);
          rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
      } else {
        messages.push_back(body);
      }
      for (std::size_t i = 0; i < messages.size(); ++i) {
        if (auto st = transport->send(queue, messages[i], delay); !st) {
          std::fprintf(stderr, "asya-queue: send to %s failed%s: %s\n", queue.c_str(),
                       lines ? (" at message " + std::to_string(i + 1) + " of " +
                                std::to_string(messages.size()) + " (the earlier ones were sent)")
                                   .c_str()
                             : "",
                       st.message().c_str());
          return 1;
        }
      }
      return 0;
    }

    if (command == "recv") {
      std::size_t max = 1;
      std::chrono::milliseconds wait{5000};
      bool ack = false;
      for (std::size_t i = 2; i < args.size(); ++i) {
        if (args[i] == "--max" && i + 1 < args.size()) {
          try {
            max = std::stoul(args[++i]);
          } catch (...) {
            return usage("--max \"" + args[i] + "\" is not a number: use a positive integer");
          }
          if (max == 0) return usage("--max 0 is not valid: use a positive integer");
        } else if (args[i] == "--wait" && i + 1 < args.size()) {
          wait = duration_arg("--wait", args[++i]);
        } else if (args[i] == "--ack") {
          ack = true;
        } else {
          return usage("unknown recv option \"" + args[i] + "\"");
        }
      }
      auto deadline = std::chrono::steady_clock::now() + wait;
      std::size_t got = 0;
      std::vector<asya::transport::Delivery> held;
      while (got < max) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() < 0) left = std::chrono::milliseconds(0);
        auto received = transport->receive(queue, max - got, left);
        if (!received) {
          std::fprintf(stderr, "asya-queue: receive from %s failed: %s\n", queue.c_str(),
                       received.error().message.c_str());
          return 1;
        }
        for (auto& d : *received) {
          std::string line = "{\"body\":\"" + asya::log::json_escape(d.body) +
                             "\",\"delivery_count\":" + std::to_string(d.delivery_count) + "}\n";
          std::fwrite(line.data(), 1, line.size(), stdout);
          ++got;
          if (ack) {
            if (auto st = transport->ack(d); !st) {
              std::fprintf(stderr, "asya-queue: ack failed: %s\n", st.message().c_str());
              return 1;
            }
          } else {
            held.push_back(std::move(d));
          }
        }
        std::fflush(stdout);
        if (left.count() == 0) break;
      }
      for (auto& d : held)
        if (auto st = transport->nack(d); !st)
          std::fprintf(stderr, "asya-queue: nack failed: %s\n", st.message().c_str());
      transport->close();
      return 0;
    }

    if (command == "stats") {
      auto stats = transport->stats(queue);
      if (!stats) {
        std::fprintf(stderr, "asya-queue: stats of %s failed: %s\n", queue.c_str(),
                     stats.error().message.c_str());
        return 1;
      }
      std::printf("{\"ready\":%llu,\"in_flight\":%llu,\"delayed\":%llu}\n",
                  static_cast<unsigned long long>(stats->ready),
                  static_cast<unsigned long long>(stats->in_flight),
                  static_cast<unsigned long long>(stats->delayed));
      return 0;
    }
    return usage("unknown command \"" + command + "\"");
  } catch (const asya::ConfigError& e) {
    std::fprintf(stderr, "asya-queue: %s\n", e.what());
    return 2;
  }
}
