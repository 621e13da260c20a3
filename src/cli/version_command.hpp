// `asya version`: the version of every part this asya would run, one line each, with the file it
// found (installation.hpp): the CLI, asya-sidecar, asya-gateway, the runtime protocol and the
// Python runtime. A part that cannot be found is reported on its line ("not found: ...") and the
// command exits 3; nothing is started but `asya-sidecar --version` and `asya-gateway --version`.
#pragma once

namespace asya::cli {

int run_version();

}  // namespace asya::cli
