// The rule for actor names, shared by envelopes (route.actors), manifests (metadata.name), the
// gateway's routes.yaml and `asya send --route`: a DNS label, because an actor's name is also
// its queue's and its Kubernetes objects' name.
#pragma once

#include <string_view>

namespace asya {

// The rule in words, for error messages.
inline constexpr const char* kActorNameRule =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 "
    "characters";

// True for [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
constexpr bool valid_actor_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace asya
