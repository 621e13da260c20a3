// Limits on what a YAML text may make a reader build, checked before the text is loaded.
//
// yaml-cpp loads an alias (*name) as a second reference to the anchored node, so loading is
// cheap, but every reader that walks the tree (manifest emitters, the YAML -> JSON converters)
// expands each alias again: a few hundred bytes of nested anchors ("billion laughs") expand to
// billions of nodes and end in std::bad_alloc or minutes of CPU, and an alias inside its own
// anchor (&a [*a]) makes the tree a cycle that no walk finishes. Deep nesting exhausts the stack.
//
// Every YAML reader of Asya (AsyncActor manifests, routes.yaml, the YAML -> JSON converter of
// src/k8s) calls check_yaml_limits() on the text first and refuses the text with its message.
// The check streams the text once through the yaml-cpp parser (no tree is built), so it costs
// about as much as loading the text, whatever the aliases would expand to.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace asya {

struct YamlLimits {
  // Alias uses (*name) in the whole text, all documents together.
  std::size_t max_alias_uses = 10'000;
  // Nodes (scalars, mappings, lists) that alias expansion adds to the text, counting every
  // node under each alias again for every use, however deeply aliases nest.
  std::size_t max_aliased_nodes = 100'000;
  // Bytes of scalar text that alias expansion adds, counted the same way.
  std::size_t max_aliased_bytes = 16u << 20;
  // Mappings and lists nested inside each other (the top-level one is depth 1).
  int max_depth = 100;
};

// A text that breaks a limit: the 1-based line where the check stopped (0 when unknown) and a
// message naming the limit, its value and what to do, without the file name (the caller adds
// it as "<file>:<line>: <message>").
struct YamlLimitError {
  int line = 0;
  std::string message;
};

// Returns the first limit `text` (one or more `---` documents) breaks, or nullopt when it is
// within every limit. YAML syntax errors are not reported here (nullopt): the reader's own load
// reports them with its usual message; except the one yaml-cpp 0.7 would loop on forever (a
// stray "," where a document starts), reported as "invalid YAML: unexpected ...".
// Thread-safe; never throws except std::bad_alloc.
std::optional<YamlLimitError> check_yaml_limits(std::string_view text,
                                                const YamlLimits& limits = {});

}  // namespace asya
