#include <ostream>
#include <string_view>

#include "common/version.hpp"

namespace asya {

std::optional<int> answer_informational_arguments(std::span<char* const> arguments,
                                                  std::string_view program, std::string_view help,
                                                  std::ostream& out, std::ostream& err,
                                                  int usage_exit_code) {
  if (arguments.empty()) return std::nullopt;
  const std::string_view first = arguments.front();
  if (arguments.size() == 1 && (first == "--help" || first == "-h")) {
    out << help;
    if (!help.empty() && help.back() != '\n') out << '\n';
    return 0;
  }
  if (arguments.size() == 1 && first == "--version") {
    out << program << ' ' << version() << '\n';
    return 0;
  }
  for (std::string_view argument : arguments) {
    if (argument == "--help" || argument == "-h" || argument == "--version") continue;
    err << program << ": unknown argument \"" << argument
        << "\": it takes no arguments besides --help and --version (configure it with "
           "environment variables; see --help)\n";
    return usage_exit_code;
  }
  err << program << ": give --help or --version alone\n";
  return usage_exit_code;
}

}  // namespace asya
