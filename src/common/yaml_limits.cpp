#include "common/yaml_limits.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace asya {
namespace {

// Thrown by the event handler to stop the parse at the first broken limit.
struct LimitBroken {
  YamlLimitError error;
};

std::size_t saturating_add(std::size_t a, std::size_t b) {
  return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                         : a + b;
}

int line_of(const YAML::Mark& mark) {
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// What a node expands to when every alias under it is replaced by its anchor's node.
struct Expanded {
  std::size_t nodes = 0;
  std::size_t bytes = 0;
};

class LimitChecker : public YAML::EventHandler {
 public:
  LimitChecker(std::string_view text, const YamlLimits& limits) : text_(text), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 starts a new, empty document at the same place forever at a stray "," where
    // a document starts; YAML::LoadAll would never return (found by fuzzing). A document starting
    // where the previous one started made no progress.
    if (last_document_start_ && *last_document_start_ == mark.pos) {
      const std::size_t at = static_cast<std::size_t>(std::max(mark.pos, 0));
      stop(mark, fmt::format("invalid YAML: unexpected \"{}\" where a document should start",
                             at < text_.size() ? text_.substr(at, 1) : std::string_view("")));
    }
    last_document_start_ = mark.pos;
    anchors_.clear();
    open_.clear();
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override { leaf(anchor, {1, 0}); }

  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    leaf(anchor, {1, value.size()});
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto found = anchors_.find(anchor);
    if (found == anchors_.end()) {
      // yaml-cpp registers an anchor before reading its node, so an alias inside the node it
      // names refers to a node still open: a cycle no reader could walk to its end.
      stop(mark, fmt::format("alias {} is used inside the node it names (a cycle); an alias may "
                             "only repeat a node that is complete before it",
                             alias_name(mark)));
    }
    ++alias_uses_;
    aliased_.nodes = saturating_add(aliased_.nodes, found->second.nodes);
    aliased_.bytes = saturating_add(aliased_.bytes, found->second.bytes);
    if (alias_uses_ > limits_.max_alias_uses) {
      stop(mark, fmt::format("more than {} YAML alias uses (at alias {}); the limit is {} aliases "
                             "per file: write the repeated values out",
                             limits_.max_alias_uses, alias_name(mark), limits_.max_alias_uses));
    }
    if (aliased_.nodes > limits_.max_aliased_nodes) {
      stop(mark,
           fmt::format("YAML aliases expand to more than {} nodes (at alias {}); the limit "
                       "is {} nodes added by aliases per file (nested anchors that repeat "
                       "each other multiply: an alias bomb?)",
                       limits_.max_aliased_nodes, alias_name(mark), limits_.max_aliased_nodes));
    }
    if (aliased_.bytes > limits_.max_aliased_bytes) {
      stop(mark,
           fmt::format("YAML aliases expand to more than {} bytes of text (at alias {}); "
                       "the limit is {} bytes added by aliases per file",
                       limits_.max_aliased_bytes, alias_name(mark), limits_.max_aliased_bytes));
    }
    add_to_parent(found->second);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

  [[noreturn]] void stop(const YAML::Mark& mark, std::string message) {
    throw LimitBroken{{line_of(mark), std::move(message)}};
  }

  [[noreturn]] void too_deep(const YAML::Mark& mark, int depth) {
    stop(mark, fmt::format("nested too deeply: depth {} exceeds the limit of {} mappings and "
                           "lists inside each other",
                           depth, limits_.max_depth));
  }

 private:
  struct Open {
    YAML::anchor_t anchor;
    Expanded size;
  };

  void leaf(YAML::anchor_t anchor, Expanded size) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = size;
    add_to_parent(size);
  }

  void add_to_parent(Expanded size) {
    if (open_.empty()) return;
    Expanded& parent = open_.back().size;
    parent.nodes = saturating_add(parent.nodes, size.nodes);
    parent.bytes = saturating_add(parent.bytes, size.bytes);
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (static_cast<int>(open_.size()) >= limits_.max_depth)
      too_deep(mark, static_cast<int>(open_.size()) + 1);
    open_.push_back({anchor, {1, 0}});
  }

  void close() {
    Open done = open_.back();
    open_.pop_back();
    if (done.anchor != YAML::NullAnchor) anchors_[done.anchor] = done.size;
    add_to_parent(done.size);
  }

  // "*name" as written at `mark`, or "*?" when the mark does not point at it.
  std::string alias_name(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size() ||
        text_[static_cast<std::size_t>(mark.pos)] != '*')
      return "*?";
    std::size_t end = static_cast<std::size_t>(mark.pos) + 1;
    while (end < text_.size() && end - static_cast<std::size_t>(mark.pos) <= 64 &&
           std::string_view(" \t\r\n,[]{}").find(text_[end]) == std::string_view::npos)
      ++end;
    return std::string(
        text_.substr(static_cast<std::size_t>(mark.pos), end - static_cast<std::size_t>(mark.pos)));
  }

  std::string_view text_;
  const YamlLimits& limits_;
  std::unordered_map<YAML::anchor_t, Expanded> anchors_;  // complete anchored nodes
  std::vector<Open> open_;                                // mappings and lists being read
  std::optional<int> last_document_start_;                // Mark::pos of the last document
  std::size_t alias_uses_ = 0;
  Expanded aliased_;  // added by aliases in the whole text
};

}  // namespace

std::optional<YamlLimitError> check_yaml_limits(std::string_view text, const YamlLimits& limits) {
  std::istringstream stream{std::string(text)};
  LimitChecker checker(text, limits);
  try {
    YAML::Parser parser(stream);
    while (parser.HandleNextDocument(checker)) {
    }
  } catch (const LimitBroken& broken) {
    return broken.error;
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own recursion guard counts parser frames, not nesting levels; with the default
    // limits ours stops first, but a caller may raise max_depth past it.
    return YamlLimitError{line_of(e.mark),
                          fmt::format("nested too deeply: more than {} levels of YAML nesting "
                                      "(the parser's limit)",
                                      e.depth())};
  } catch (const YAML::Exception&) {
    return std::nullopt;  // a syntax error: the reader's load reports it
  }
  return std::nullopt;
}

}  // namespace asya
