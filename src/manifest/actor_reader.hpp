// Reads one AsyncActor document into the model (manifest.hpp), internal to src/manifest: the
// metadata, the spec's settings (transport, replicas, scaling, timeout, retry, sidecar,
// isolation) in actor_reader.cpp, and spec.workload with its containers in workload_reader.cpp.
// Every problem is recorded as a Diagnostic; reading goes on after a bad field so that one run
// reports all of them.
#pragma once

#include <optional>
#include <string>

#include "manifest/field_reader.hpp"

namespace asya::manifest::detail {

inline constexpr int kMaxReplicas = 1000;

class ActorReader : public FieldReader {
 public:
  using FieldReader::FieldReader;

  // The actor of `doc` (a mapping of kind AsyncActor), or nothing when it has any problem.
  std::optional<Actor> actor(const YAML::Node& doc);

 private:
  // actor_reader.cpp
  void read_metadata(const YAML::Node& node, int line, Actor& actor);
  void read_spec(const YAML::Node& node, int line, Actor& actor);
  void read_scaling(const YAML::Node& node, int line, Actor& actor);
  void read_timeout(const YAML::Node& node, int line, Actor& actor);
  void read_retry(const YAML::Node& node, int line, Actor& actor);
  // batching_reader.cpp: spec.batching (after spec.timeout: maxWait is checked against it)
  void read_batching(const YAML::Node& node, int line, Actor& actor);
  // workload_reader.cpp
  void read_workload(const YAML::Node& node, int line, Actor& actor);
  std::optional<Container> read_container(const YAML::Node& node, const std::string& field,
                                          int line);
};

}  // namespace asya::manifest::detail
