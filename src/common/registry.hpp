// One way to plug implementations of an interface in by name, shared by the transports
// (transport/registry.cpp), the gateway's job stores (gateway/store/job_store.cpp) and the end
// actors' result stores (sidecar/result_store.cpp).
//
// Each interface keeps one NamedRegistry<Interface, Options>. Its built-in implementations, each in
// its own folder, are put in the table explicitly when the registry is first used (not by static
// initialisers, which a static link may silently drop); a test may add or replace entries. A
// factory receives the interface's options struct, which carries everything the implementation
// reads: an EnvironmentLookup for its own variables (the process environment in the binaries) and
// explicit values that win over them. So nothing configures an implementation through setenv.
//
// Threads: every method is thread-safe. A registry is never destroyed (see the users), so it may be
// used from other static destructors.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asya {

template <typename Interface, typename Options>
class NamedRegistry {
 public:
  // Creates an implementation from `options`; throws asya::ConfigError for invalid settings,
  // naming the variable (or option) and the bad value.
  using Factory = std::function<std::unique_ptr<Interface>(const Options&)>;
  using Table = std::map<std::string, Factory, std::less<>>;

  explicit NamedRegistry(Table built_ins) : factories_(std::move(built_ins)) {}
  NamedRegistry(const NamedRegistry&) = delete;
  NamedRegistry& operator=(const NamedRegistry&) = delete;

  // Registers (or replaces) the factory of `name`.
  void add(std::string name, Factory factory) {
    std::lock_guard lock(mutex_);
    factories_.insert_or_assign(std::move(name), std::move(factory));
  }

  // The factory registered as `name`, or an empty function. The caller reports an unknown name
  // in its own terms (the variable that named it, the accepted values from names_text()).
  Factory find(std::string_view name) const {
    std::lock_guard lock(mutex_);
    auto it = factories_.find(name);
    return it == factories_.end() ? Factory() : it->second;
  }

  // The registered names, sorted.
  std::vector<std::string> names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& entry : factories_) out.push_back(entry.first);
    return out;
  }

  // names() joined by ", ", for error messages.
  std::string names_text() const {
    std::string out;
    for (const std::string& name : names()) {
      if (!out.empty()) out += ", ";
      out += name;
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  Table factories_;
};

}  // namespace asya
