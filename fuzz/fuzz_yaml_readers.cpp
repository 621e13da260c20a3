// Fuzzes every YAML reader of Asya with the same text: the alias/nesting guard
// (common/yaml_limits), AsyncActor manifests (local/manifest), the YAML -> JSON converter of the
// renderer (k8s/yaml_json) and the gateway's routes.yaml (gateway/config/tools_config).
// Properties: no reader crashes, hangs (libFuzzer's -timeout) or runs out of memory
// (-rss_limit_mb), whatever aliases or nesting the text holds; errors come back as the readers'
// documented error values (diagnostics, Error, LoadError), never as another exception.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "common/yaml_limits.hpp"
#include "gateway/config/tools_config.hpp"
#include "k8s/yaml_json.hpp"
#include "local/manifest/manifest.hpp"

namespace {

[[noreturn]] void fail(const char* reader, const char* what) {
  std::fprintf(stderr, "fuzz_yaml_readers: %s threw an undocumented exception: %s\n", reader, what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  auto limit = asya::check_yaml_limits(text);
  if (limit && limit->message.empty()) fail("check_yaml_limits", "an error without a message");

  try {
    auto loaded = asya::manifest::load_text(text, "fuzz.yaml");
    // A limit the guard reports is what the manifest loader reports.
    if (limit && (loaded.errors.empty() || loaded.errors[0].message != limit->message))
      fail("manifest::load_text", "did not report the YAML limit the guard found");
    for (const auto& actor : loaded.actors) {
      if (actor.containers.empty()) fail("manifest::load_text", "an actor without containers");
    }
  } catch (const std::exception& e) {
    fail("manifest::load_text", e.what());
  }

  try {
    auto converted = asya::k8s::from_yaml(text, "fuzz.yaml");
    if (limit && converted.ok()) fail("k8s::from_yaml", "converted a text over the YAML limits");
  } catch (const std::exception& e) {
    fail("k8s::from_yaml", e.what());
  }

  try {
    auto tools = asya::gateway::parse_tools(text, "routes.yaml");
    if (limit) fail("gateway::parse_tools", "loaded a text over the YAML limits");
    for (const auto& tool : tools.tools) {
      if (tool.actors.empty()) fail("gateway::parse_tools", "a tool with an empty route");
      (void)asya::gateway::input_schema(tool);
    }
  } catch (const asya::gateway::LoadError& e) {
    if (std::string_view(e.what()).empty()) fail("gateway::parse_tools", "an empty LoadError");
  } catch (const std::exception& e) {
    fail("gateway::parse_tools", e.what());
  }
  return 0;
}
