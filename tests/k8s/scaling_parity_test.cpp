// A manifest scales alike on Kubernetes and under `asya up`. For each case a manifest is rendered,
// and its ScaledObject alone (the trigger's queue length and activation value, min/max replicas,
// cooldownPeriod and the HPA behaviour) drives a simulation of what KEDA and the HPA controller
// do with it; the local Autoscaler gets the same manifest. Both see the same queue depths, one
// observation per pollingInterval, and must decide the same replica counts, which are also
// written in the table.
//
// The simulation follows Kubernetes' code (pkg/controller/podautoscaler/horizontal.go:
// stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate,
// calculateScaleUpLimitWithScalingRules, calculateScaleDownLimitWithBehaviors,
// getReplicasChangePerPeriod) and KEDA's scale executor (activation from zero to
// max(minReplicaCount, 1), scale to zero once lastActiveTime + cooldownPeriod is before now). It
// assumes the HPA evaluates at KEDA's polling times and leaves out the HPA's 10 % tolerance (a
// controller flag, not part of the ScaledObject; docs/kubernetes.md).
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "k8s/render.hpp"
#include "local/autoscaler.hpp"
#include "manifest/manifest.hpp"

namespace asya::k8s {
namespace {
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ----------------------------------------------------------------- Kubernetes, from the object

struct ScalingPolicy {
  std::string type;  // "Pods" | "Percent"
  int value = 0;
  int period_seconds = 0;
};

struct ScalingRules {
  int stabilization_window_seconds = 0;
  std::string select_policy;  // "Max" | "Min" | "Disabled"
  std::vector<ScalingPolicy> policies;
};

int integer(const json::value& v) {
  return static_cast<int>(v.to_number<std::int64_t>());
}

// Trigger metadata values are strings ("5").
int integer_text(const json::value& v) {
  return std::stoi(std::string(v.as_string()));
}

ScalingRules rules_from(const json::object& o) {
  ScalingRules r;
  r.stabilization_window_seconds = integer(o.at("stabilizationWindowSeconds"));
  r.select_policy = std::string(o.at("selectPolicy").as_string());
  for (const auto& p : o.at("policies").as_array()) {
    r.policies.push_back({std::string(p.at("type").as_string()), integer(p.at("value")),
                          integer(p.at("periodSeconds"))});
  }
  return r;
}

class KedaAndHpa {
 public:
  explicit KedaAndHpa(const json::object& spec) {
    min_replica_count_ = integer(spec.at("minReplicaCount"));
    max_replica_count_ = integer(spec.at("maxReplicaCount"));
    cooldown_ = seconds(integer(spec.at("cooldownPeriod")));
    const auto& trigger = spec.at("triggers").at(0).as_object();
    const auto& meta = trigger.at("metadata").as_object();
    if (trigger.at("type") == "rabbitmq") {
      target_ = integer_text(meta.at("value"));
      activation_ = integer_text(meta.at("activationValue"));
    } else {
      target_ = integer_text(meta.at("queueLength"));
      activation_ = integer_text(meta.at("activationQueueLength"));
    }
    const auto& behavior =
        spec.at("advanced").at("horizontalPodAutoscalerConfig").at("behavior").as_object();
    up_ = rules_from(behavior.at("scaleUp").as_object());
    down_ = rules_from(behavior.at("scaleDown").as_object());
  }

  // One poll at `now`: the replicas the workload has after KEDA and the HPA acted.
  int observe(int current, std::uint64_t depth, milliseconds now) {
    // KEDA's scale executor.
    const bool active = depth > static_cast<std::uint64_t>(activation_);
    if (active) last_active_ = now;
    if (current == 0 && active) return std::max(min_replica_count_, 1);
    if (!active && current < min_replica_count_) return min_replica_count_;
    if (!active && current > 0 && min_replica_count_ == 0) {
      if (last_active_ >= milliseconds(0) && last_active_ + cooldown_ < now) return 0;
    }
    if (current == 0) return 0;  // the HPA does not act on a workload at zero
    // The HPA controller (minReplicas is at least 1; KEDA's metric is the depth, the target an
    // AverageValue of queueLength).
    const int hpa_min = std::max(min_replica_count_, 1);
    int desired;
    if (current > max_replica_count_) {
      desired = max_replica_count_;
    } else if (current < hpa_min) {
      desired = hpa_min;
    } else {
      const int metric_desired =
          static_cast<int>(std::ceil(static_cast<double>(depth) / static_cast<double>(target_)));
      desired = stabilize(current, metric_desired, now);
      desired = rate(current, desired, hpa_min, now);
    }
    if (desired > current) scale_up_events_.push_back({now, desired - current});
    if (desired < current) scale_down_events_.push_back({now, current - desired});
    return desired;
  }

 private:
  struct Timestamped {
    milliseconds at;
    int value;
  };

  int stabilize(int current, int desired, milliseconds now) {
    int up_recommendation = desired;
    const milliseconds up_cutoff = now - seconds(up_.stabilization_window_seconds);
    int down_recommendation = desired;
    const milliseconds down_cutoff = now - seconds(down_.stabilization_window_seconds);
    for (const auto& rec : recommendations_) {
      if (rec.at > up_cutoff) up_recommendation = std::min(rec.value, up_recommendation);
      if (rec.at > down_cutoff) down_recommendation = std::max(rec.value, down_recommendation);
    }
    int recommendation = current;
    if (recommendation < up_recommendation) recommendation = up_recommendation;
    if (recommendation > down_recommendation) recommendation = down_recommendation;
    recommendations_.push_back({now, desired});
    return recommendation;
  }

  int change_per_period(int period_seconds, const std::vector<Timestamped>& events,
                        milliseconds now) const {
    const milliseconds cutoff = now - seconds(period_seconds);
    int replicas = 0;
    for (const auto& e : events)
      if (e.at > cutoff) replicas += e.value;
    return replicas;
  }

  int scale_up_limit(int current, milliseconds now) const {
    if (up_.select_policy == "Disabled") return current;
    const bool min_policy = up_.select_policy == "Min";
    int result = min_policy ? std::numeric_limits<int>::max() : std::numeric_limits<int>::min();
    for (const auto& p : up_.policies) {
      const int start = current - change_per_period(p.period_seconds, scale_up_events_, now) +
                        change_per_period(p.period_seconds, scale_down_events_, now);
      int proposed = 0;
      if (p.type == "Pods") proposed = start + p.value;
      if (p.type == "Percent")
        proposed = static_cast<int>(std::ceil(start * (1 + static_cast<double>(p.value) / 100)));
      result = min_policy ? std::min(result, proposed) : std::max(result, proposed);
    }
    return result;
  }

  int scale_down_limit(int current, milliseconds now) const {
    if (down_.select_policy == "Disabled") return current;
    const bool min_policy = down_.select_policy == "Min";
    int result = min_policy ? std::numeric_limits<int>::min() : std::numeric_limits<int>::max();
    for (const auto& p : down_.policies) {
      const int start = current - change_per_period(p.period_seconds, scale_up_events_, now) +
                        change_per_period(p.period_seconds, scale_down_events_, now);
      int proposed = 0;
      if (p.type == "Pods") proposed = start - p.value;
      if (p.type == "Percent")
        proposed = static_cast<int>(start * (1 - static_cast<double>(p.value) / 100));
      result = min_policy ? std::max(result, proposed) : std::min(result, proposed);
    }
    return result;
  }

  int rate(int current, int desired, int hpa_min, milliseconds now) const {
    if (desired > current) {
      const int limit = std::max(scale_up_limit(current, now), current);
      const int maximum_allowed = std::min(max_replica_count_, limit);
      return std::min(desired, maximum_allowed);
    }
    if (desired < current) {
      const int limit = std::min(scale_down_limit(current, now), current);
      const int minimum_allowed = std::max(hpa_min, limit);
      return std::max(desired, minimum_allowed);
    }
    return desired;
  }

  int min_replica_count_ = 0;
  int max_replica_count_ = 0;
  milliseconds cooldown_{0};
  int target_ = 1;
  int activation_ = 0;
  ScalingRules up_, down_;
  milliseconds last_active_{-1};
  std::vector<Timestamped> recommendations_;
  std::vector<Timestamped> scale_up_events_;
  std::vector<Timestamped> scale_down_events_;
};

// ------------------------------------------------------------------------------------ cases

struct Tick {
  std::uint64_t depth;  // ready + in flight at this poll
  int replicas;         // expected after it
};

struct Case {
  std::string name;
  std::string scaling;  // the manifest's spec.scaling (flow style)
  std::vector<Tick> ticks;
};

std::string manifest_text(const Case& c) {
  return "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: parity}\nspec:\n"
         "  scaling: " +
         c.scaling +
         "\n  workload:\n    template:\n      spec:\n        containers:\n"
         "        - name: asya-runtime\n          image: parity:1\n          env:\n"
         "          - {name: ASYA_HANDLER, value: parity.handle}\n";
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"BurstScalesUpByThePoliciesAndDrainsByHalvesToZero",
       "{enabled: true, minReplicas: 0, maxReplicas: 20, queueLength: 5, "
       "activationQueueLength: 2, pollingInterval: 15s, cooldownPeriod: 100s}",
       {
           {0, 0},     //  t=0: idle
           {2, 0},     //  not above the activation value
           {300, 1},   //  KEDA activates: one replica
           {300, 5},   //  +4 pods beats +100 % of 1
           {300, 10},  //  +100 % beats +4
           {300, 20},  //  maxReplicas
           {300, 20},  //
           {20, 20},   //  t=105: 4 would do, the 100 s window remembers 60
           {20, 20},  {20, 20}, {20, 20}, {20, 20},
           {20, 20},  {20, 10},  //  t=195: the window holds only 4s: -50 % per minute
           {20, 10},  {20, 10}, {20, 10}, {20, 5},  //  t=255: a minute later, -50 % again
           {20, 5},   {20, 5},  {20, 5},  {20, 4},  //  t=315: the recommendation
           {0, 4},                                  //  idle from t=330, the window remembers 4
           {0, 4},    {0, 4},   {0, 4},   {0, 4},
           {0, 4},    {0, 0},  //  t=420: more than cooldownPeriod (100 s) since the last activity
       }},
      {"MinReplicasHoldAndAScaleUpWithinAMinuteAllowsADeepScaleDown",
       "{enabled: true, minReplicas: 2, maxReplicas: 6, queueLength: 1, "
       "activationQueueLength: 0, pollingInterval: 15s, cooldownPeriod: 30s}",
       {
           {0, 2},   // KEDA brings an idle workload to minReplicaCount
           {0, 2},   // never below minReplicas
           {10, 6},  // +4 pods from 2, capped at the max
           {1, 6},   // the window remembers 10
           {1, 2},   // the period started at 2 (the +4 is in it): -50 % of 2 is allowed
           {3, 3},   // up again
           {0, 3},   // the window remembers 3
           {0, 3},   // the period started at 6: -50 % is 3
           {0, 2},   // the period now starts at 2
           {0, 2},   // minReplicas 2: not to zero
       }},
      {"AShortDipDoesNotScaleDown",
       "{enabled: true, minReplicas: 0, maxReplicas: 10, queueLength: 1, "
       "activationQueueLength: 0, pollingInterval: 15s, cooldownPeriod: 60s}",
       {
           {4, 1},  // t=0
           {4, 4},  //
           {1, 4},  // the window remembers 4
           {0, 4},  // idle for less than the cooldown
           {4, 4},  // t=60
           {1, 4},  //
           {1, 4},  //
           {1, 4},  // t=105: the last 4 is 45 s old
           {1, 2},  // t=120: the window holds only 1s: -50 %
           {1, 2},  //
           {1, 2},  //
           {1, 2},  //
           {1, 1},  // t=180: a minute after the last step
       }},
  };
  return all;
}

class ScalingParity : public ::testing::TestWithParam<std::tuple<std::size_t, std::string>> {};

TEST_P(ScalingParity, KubernetesAndLocalAutoscalerDecideTheSameReplicas) {
  const Case& c = cases()[std::get<0>(GetParam())];
  auto loaded = manifest::load_text(manifest_text(c), "parity.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.error_text();
  ASSERT_EQ(loaded.actors.size(), 1u);
  const manifest::Actor& actor = loaded.actors.front();

  RenderOptions options;
  options.transport = std::get<1>(GetParam());
  auto rendered = render_actor(actor, options);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message;
  const json::object* scaled_object = nullptr;
  for (const auto& o : rendered->objects)
    if (o.at("kind") == "ScaledObject") scaled_object = &o;
  ASSERT_NE(scaled_object, nullptr);
  const json::object& spec = scaled_object->at("spec").as_object();
  const milliseconds poll = seconds(integer(spec.at("pollingInterval")));

  KedaAndHpa kubernetes(spec);
  local::Autoscaler autoscaler(actor.scaling);
  const local::Autoscaler::Clock::time_point start{std::chrono::hours(1)};
  int on_kubernetes = 0;
  int on_local = 0;
  for (std::size_t i = 0; i < c.ticks.size(); ++i) {
    const milliseconds now = poll * static_cast<int>(i);
    on_kubernetes = kubernetes.observe(on_kubernetes, c.ticks[i].depth, now);
    on_local = autoscaler.desired(on_local, c.ticks[i].depth, start + now);
    EXPECT_EQ(on_kubernetes, c.ticks[i].replicas)
        << "Kubernetes at t=" << now.count() / 1000 << "s, depth " << c.ticks[i].depth;
    EXPECT_EQ(on_local, on_kubernetes)
        << "asya up at t=" << now.count() / 1000 << "s, depth " << c.ticks[i].depth;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ScalingParity,
                         ::testing::Combine(::testing::Range<std::size_t>(0, cases().size()),
                                            ::testing::Values("rabbitmq", "sqs")),
                         [](const auto& info) {
                           return cases()[std::get<0>(info.param)].name + "_" +
                                  std::get<1>(info.param);
                         });

}  // namespace
}  // namespace asya::k8s
