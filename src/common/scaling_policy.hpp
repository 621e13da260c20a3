// The rate limits of autoscaling, in ONE place: `asya render` writes them into every ScaledObject
// as the HPA's `behavior` (src/k8s/render_scaling.cpp), and `asya up` applies the same rules itself
// (src/local/autoscaler.cpp), so a manifest scales alike on Kubernetes and on one machine.
//
//   scale up aggressively:      +100 % or +4 pods per 15 s, whichever is more (selectPolicy Max),
//                               no stabilization window
//   scale down conservatively:  at most -50 % per 60 s, after a stabilization window of the
//                               manifest's cooldownPeriod (at most one hour, the HPA's limit)
//
// The meaning of each number is Kubernetes' (autoscaling/v2 HPAScalingRules): a policy limits the
// change over its period, counted from the replicas at the start of the period; the stabilization
// window makes a scale-down follow the highest recommendation of the window.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <string_view>

namespace asya::scaling {

enum class PolicyType {
  kPods,     // `value` replicas per period
  kPercent,  // `value` % of the replicas at the start of the period
};

// The HPA's name of a policy type ("Pods", "Percent").
constexpr std::string_view label(PolicyType type) {
  return type == PolicyType::kPods ? "Pods" : "Percent";
}

struct Policy {
  PolicyType type;
  int value;
  std::chrono::seconds period;
};

// Among several policies the one allowing the largest change wins (HPA selectPolicy: Max).
inline constexpr std::string_view kSelectPolicy = "Max";

inline constexpr std::array<Policy, 2> kScaleUpPolicies{{
    {PolicyType::kPercent, 100, std::chrono::seconds(15)},
    {PolicyType::kPods, 4, std::chrono::seconds(15)},
}};
inline constexpr std::chrono::seconds kScaleUpStabilizationWindow{0};

inline constexpr std::array<Policy, 1> kScaleDownPolicies{{
    {PolicyType::kPercent, 50, std::chrono::seconds(60)},
}};

// The longest stabilization window the HPA accepts (stabilizationWindowSeconds <= 3600).
inline constexpr std::chrono::seconds kMaxStabilizationWindow{3600};

// The scale-down stabilization window for a manifest's cooldownPeriod: the cooldown, capped at
// the HPA's limit.
constexpr std::chrono::milliseconds scale_down_stabilization_window(
    std::chrono::milliseconds cooldown_period) {
  return std::min<std::chrono::milliseconds>(cooldown_period, kMaxStabilizationWindow);
}

}  // namespace asya::scaling
