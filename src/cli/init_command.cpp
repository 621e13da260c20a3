#include "cli/init_command.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/client.hpp"
#include "cli/installation.hpp"
#include "manifest/manifest.hpp"

namespace asya::cli {
namespace {

namespace fs = std::filesystem;

// The files of a new project; {actor} is the actor's name, {runtime_dir} where asya_runtime.py
// lies (for the unit test when asya_runtime is not installed).
constexpr std::string_view kHandler =
    R"("""The handler of the actor {actor}: a plain function from payload to payload.

The Asya runtime calls process() with the payload of every message sent to {actor}; what it
returns goes to the next actor of the message's route (here: none, so to happy-end, where
`asya results` and the gateway find it). Raise an exception to fail the message: it ends in
error-end with the exception's type and message. Nothing here needs Asya: test_handler.py tests
it as a plain function and as the runtime calls it.
"""


def process(payload):
    text = payload["text"]
    return {{"text": text, "words": len(text.split())}}
)";

constexpr std::string_view kManifest =
    R"(# The actor {actor}: process() of handler.py in this folder, served by the bundled Python
# runtime. `asya up` runs it here; `asya render` turns it into Kubernetes objects
# (docs/manifests.md explains every field).
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: {actor}
spec:
  transport: sqlite
  scaling:
    enabled: true
    minReplicas: 0          # nothing runs while the queue is empty...
    maxReplicas: 2
    queueLength: 5          # ...one replica per 5 waiting messages
    pollingInterval: 1      # seconds between queue checks
    cooldownPeriod: 60      # idle seconds before scaling back to zero
  timeout:
    processing: 30
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          image: python:3.11-slim     # used on Kubernetes; locally the handler runs from here
          env:
          - {{name: ASYA_HANDLER, value: handler.process}}
)";

constexpr std::string_view kRoutes =
    R"(# The gateway's tools (docs/gateway.md). `asya up` in this folder starts asya-gateway with
# them: the tool {actor} is then an MCP tool (/mcp) and a REST call (POST /tools/call), and
# `asya call {actor} text="hello world"` calls it.
tools:
  - name: {actor}
    description: Count the words of a text
    parameters:
      text: {{type: string, required: true, description: The text whose words are counted}}
    route: [{actor}]
    timeout: 60
    progress: true
)";

constexpr std::string_view kTest =
    R"("""Unit tests of handler.py: as a plain function, and as the Asya runtime calls it
(asya_runtime.testing: the same validation and output shapes as behind a queue)."""
import pytest
from asya_runtime.testing import HandlerError, call_payload, payloads

import handler


def test_counts_the_words():
    assert handler.process({{"text": "to be or not to be"}}) == {{"text": "to be or not to be", "words": 6}}


def test_as_the_runtime_calls_it():
    outputs = call_payload(handler.process, {{"text": "hello world"}})
    assert payloads(outputs) == [{{"text": "hello world", "words": 2}}]


def test_a_payload_without_text_fails_the_message():
    with pytest.raises(HandlerError) as failure:
        call_payload(handler.process, {{"words": 3}})
    assert failure.value.error_type == "KeyError"
)";

constexpr std::string_view kConftest =
    R"(# Lets `python3 -m pytest` import asya_runtime (for asya_runtime.testing) when it is not
# installed (`pip install --no-build-isolation <asya>/runtimes/python` installs it): the runtime
# `asya init` found is used then.
import sys

try:
    import asya_runtime  # noqa: F401
except ImportError:
    sys.path.append({runtime_dir})
    import asya_runtime  # noqa: F401
)";

constexpr std::string_view kReadme = R"(# {actor}

One Asya actor, `{actor}`: `process(payload)` in [handler.py](handler.py) counts the words of
`payload["text"]`. Made by `asya init`; change the handler, keep the shape.

| file | what it is |
|---|---|
| `handler.py` | the handler: a plain function, payload in, payload out |
| `{actor}.yaml` | the AsyncActor manifest: which handler, how it scales, its timeout |
| `routes.yaml` | the gateway's tool `{actor}` (parameter `text`, route `[{actor}]`) |
| `test_handler.py` | unit tests of the handler, with `asya_runtime.testing` |
| `conftest.py` | lets the tests find `asya_runtime` when it is not installed |

Test the handler (no queue, no process):

```sh
python3 -m pytest -q
```

Run it on this machine, then call it (from this folder):

```sh
asya up --detach                      # the actor, its end actors and the gateway on :8080
asya call {actor} text="hello world"  # the tool, through the gateway: {{"text": "hello world", "words": 2}}
asya send {actor} --payload '{{"text": "hello world"}}' --wait   # straight to the queue
asya status                           # replicas, queue, processed, errors
asya logs {actor}                     # its sidecar and runtime logs
asya down                             # stop (replicas finish their messages first)
```

`asya up` checks the handler before it starts anything: a typo in `ASYA_HANDLER` or an import
error stops it with exit code 2 and the reason. Port 8080 taken? `asya up --gateway-port 0`
picks a free port (`asya call` finds it). On Kubernetes: `asya render . | kubectl apply -f -`.
)";

constexpr std::string_view kGitignore = ".asya/\n__pycache__/\n.pytest_cache/\n";

// `text` with {actor} and {runtime_dir} replaced ({{ and }} are literal braces).
std::string fill(std::string_view text, const std::string& actor, const std::string& runtime_dir) {
  return fmt::format(fmt::runtime(text), fmt::arg("actor", actor),
                     fmt::arg("runtime_dir", runtime_dir));
}

// A Python string literal of `text`.
std::string python_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int run_init(const std::string& directory, const std::string& python_runtime_dir) {
  if (directory.empty()) fail(kExitUsage, "asya init: give the project's folder: asya init NAME");
  const fs::path dir = fs::absolute(directory).lexically_normal();
  const std::string actor = dir.filename().string();
  if (!manifest::valid_actor_name(actor))
    fail(kExitUsage,
         fmt::format("asya init {}: \"{}\" cannot be an actor name (the folder's name is the "
                     "actor's): use lowercase letters, digits and '-', starting and ending with a "
                     "letter or digit, at most 63 characters (e.g. word-count)",
                     directory, actor));
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      fail(kExitUsage, fmt::format("asya init {}: {} exists and is not a folder; choose another "
                                   "name",
                                   directory, dir.string()));
    if (!fs::is_empty(dir, ec))
      fail(kExitUsage,
           fmt::format("asya init {}: {} exists and is not empty; nothing was written (asya init "
                       "never overwrites files): choose a new folder name, or empty this one",
                       directory, dir.string()));
  }
  fs::create_directories(dir, ec);
  if (ec)
    fail(kExitError,
         fmt::format("asya init {}: cannot create {}: {}", directory, dir.string(), ec.message()));
  const std::string runtime_dir = python_string(python_runtime_dir);
  const std::vector<std::pair<std::string, std::string_view>> files{
      {"handler.py", kHandler},   {actor + ".yaml", kManifest}, {"routes.yaml", kRoutes},
      {"test_handler.py", kTest}, {"conftest.py", kConftest},   {"README.md", kReadme},
      {".gitignore", kGitignore}};
  for (const auto& [name, text] : files) {
    const fs::path path = dir / name;
    std::ofstream out(path, std::ios::binary);
    out << fill(text, actor, runtime_dir);
    out.close();
    if (!out)
      fail(kExitError, fmt::format("asya init {}: cannot write {}", directory, path.string()));
  }
  std::cout << fmt::format(
      "created {}/ with the actor {}: handler.py, {}.yaml, routes.yaml, test_handler.py, "
      "README.md\n"
      "next:\n"
      "  cd {}\n"
      "  python3 -m pytest -q               # the handler's unit tests\n"
      "  asya up --detach                   # run it (the gateway on :8080; --gateway-port 0 for "
      "any free port)\n"
      "  asya call {} text=\"hello world\"   # call its tool\n",
      directory, actor, actor, directory, actor);
  return 0;
}

void add_init_command(CLI::App& app) {
  auto directory = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "init",
      "Create a project folder NAME with one actor named NAME: a Python handler, its manifest, a "
      "routes.yaml tool, a unit test and a README, ready for `asya up` (never overwrites: the "
      "folder must not exist or be empty)");
  cmd->add_option("name", *directory, "The folder to create; its name is the actor's")->required();
  cmd->callback([directory] {
    std::string runtime_dir;
    try {
      runtime_dir = fs::path(find_python_runtime().back()).parent_path().string();
    } catch (const Exit&) {
      // No bundled runtime found: the tests then need asya_runtime installed.
    }
    int code = 0;
    try {
      code = run_init(*directory, runtime_dir);
    } catch (const Exit& e) {
      std::cerr << "asya: " << e.message << "\n";
      code = e.code;
    }
    std::cout.flush();
    if (code != 0) std::exit(code);
  });
}

}  // namespace asya::cli
