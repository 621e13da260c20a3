// spec.join: read into the model, carried to the sidecar's environment, mistakes named with
// file:line: field and the allowed values.
#include <gtest/gtest.h>

#include "common/env.hpp"
#include "manifest/manifest.hpp"
#include "manifest/sidecar_environment.hpp"

namespace asya::manifest {
namespace {

using namespace std::chrono_literals;

std::string actor_yaml(const std::string& spec_extra) {
  return "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: combine}\nspec:\n" +
         spec_extra +
         "  workload:\n    template:\n      spec:\n        containers:\n"
         "        - name: asya-runtime\n          env:\n"
         "          - {name: ASYA_HANDLER, value: mod.fn}\n";
}

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.errors) out.push_back(d.str());
  return out;
}

const std::string* value_of(const Environment& env, std::string_view name) {
  for (const auto& v : env)
    if (v.name == name) return std::get_if<std::string>(&v.value);
  return nullptr;
}

TEST(JoinManifest, TimeoutAndOnTimeoutAreReadAndCarriedToTheSidecar) {
  auto r = load_text(actor_yaml("  join: {timeout: 5m, onTimeout: partial}\n"), "j.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.actors[0].join.has_value());
  EXPECT_EQ(r.actors[0].join->timeout, 5min);
  EXPECT_EQ(r.actors[0].join->on_timeout, "partial");
  SidecarEnvironmentOptions o;
  o.transport = "sqlite";
  Environment env = sidecar_environment(r.actors[0], o);
  ASSERT_NE(value_of(env, "ASYA_JOIN"), nullptr);
  EXPECT_EQ(*value_of(env, "ASYA_JOIN"), "true");
  EXPECT_EQ(*value_of(env, "ASYA_JOIN_TIMEOUT"), "5m");
  EXPECT_EQ(*value_of(env, "ASYA_JOIN_ON_TIMEOUT"), "partial");
}

TEST(JoinManifest, AnEmptyJoinUsesTheDefaultsAndNoJoinSetsNothing) {
  auto r = load_text(actor_yaml("  join: {}\n"), "j.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.actors[0].join.has_value());
  EXPECT_EQ(r.actors[0].join->timeout, 10min);
  EXPECT_EQ(r.actors[0].join->on_timeout, "error");
  auto plain = load_text(actor_yaml(""), "p.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain.actors[0].join.has_value());
  EXPECT_EQ(value_of(sidecar_environment(plain.actors[0], {}), "ASYA_JOIN"), nullptr);
}

TEST(JoinManifest, InvalidValuesNameFileLineFieldAndTheAllowedValues) {
  auto r = load_text(actor_yaml("  join:\n    timeout: soon\n    onTimeout: retry\n    size: 3\n"),
                     "bad.yaml");
  auto got = messages(r);
  ASSERT_EQ(got.size(), 3u) << r.error_text();
  EXPECT_EQ(got[0],
            "bad.yaml:8: spec.join.size: unknown field; allowed here: timeout, onTimeout, store");
  r = load_text(actor_yaml("  join:\n    timeout: soon\n    onTimeout: retry\n"), "bad.yaml");
  got = messages(r);
  ASSERT_EQ(got.size(), 2u) << r.error_text();
  EXPECT_NE(got[0].find("bad.yaml:6: spec.join.timeout:"), std::string::npos) << got[0];
  EXPECT_EQ(got[1],
            "bad.yaml:7: spec.join.onTimeout: \"retry\" is not allowed; use error (a timed-out "
            "group goes to error-end as join_timeout) or partial (the handler gets what arrived)");
}

TEST(JoinManifest, TheStoreOfTheManifestWinsOverTheHostsAndAMistakeNamesTheAllowedSchemes) {
  auto r =
      load_text(actor_yaml("  join: {store: \"postgresql://asya@db:5432/joins\"}\n"), "s.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  SidecarEnvironmentOptions o;
  o.join_store = std::string("postgresql://asya@host-wide/joins");
  EXPECT_EQ(*value_of(sidecar_environment(r.actors[0], o), "ASYA_JOIN_STORE"),
            "postgresql://asya@db:5432/joins");
  // Without spec.join.store the host's is used; without either, the variable is left out.
  auto plain = load_text(actor_yaml("  join: {}\n"), "p.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*value_of(sidecar_environment(plain.actors[0], o), "ASYA_JOIN_STORE"),
            "postgresql://asya@host-wide/joins");
  EXPECT_EQ(value_of(sidecar_environment(plain.actors[0], {}), "ASYA_JOIN_STORE"), nullptr);

  auto bad = load_text(actor_yaml("  join: {store: \"redis://x\"}\n"), "b.yaml");
  auto got = messages(bad);
  ASSERT_EQ(got.size(), 1u) << bad.error_text();
  EXPECT_EQ(got[0],
            "b.yaml:5: spec.join.store: \"redis://x\" is not a join store URL; use "
            "postgresql://user@host:5432/db (replicas on several hosts) or "
            "sqlite:///path/joins.db (one host)");
}

}  // namespace
}  // namespace asya::manifest
