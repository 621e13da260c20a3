// Test helper (sidecar tests only): comparing payload references that name one object under hold
// tokens of their own (docs/protocol.md §10 "Outputs waiting in a queue").
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "payload/lifetime.hpp"
#include "payload/payload_store.hpp"
#include "payload/reference.hpp"

namespace asya::sidecar {

// Whether reference text `forwarded` names the object of reference text `original` with a hold
// token of its own (every published message gets one), held in `store`.
inline ::testing::AssertionResult SameObjectOwnToken(payload::PayloadStore& store,
                                                     const std::string& forwarded,
                                                     const std::string& original) {
  auto a = payload::parse_reference(forwarded);
  auto b = payload::parse_reference(original);
  if (!a || !*a || !b || !*b)
    return ::testing::AssertionFailure() << "not references: " << forwarded << " / " << original;
  if ((*a)->url != (*b)->url || (*a)->size_bytes != (*b)->size_bytes ||
      (*a)->sha256 != (*b)->sha256)
    return ::testing::AssertionFailure() << forwarded << " names another object than " << original;
  if ((*a)->hold.empty() || (*a)->hold == (*b)->hold)
    return ::testing::AssertionFailure() << forwarded << " has no hold token of its own";
  auto held = store.exists(payload::hold_key((*a)->sha256, (*a)->hold));
  if (!held || !*held)
    return ::testing::AssertionFailure() << "the hold token of " << forwarded << " is not held";
  return ::testing::AssertionSuccess();
}

}  // namespace asya::sidecar
