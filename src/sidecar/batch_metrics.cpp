#include "sidecar/batch_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "common/process_metrics.hpp"

namespace asya::sidecar {

struct BatchMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Histogram* size = nullptr;
  prometheus::Histogram* wait = nullptr;
  prometheus::Counter* items = nullptr;

  std::string text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry->Collect());
    return out.str();
  }
};

BatchMetrics::BatchMetrics(std::string queue) : impl_(std::make_shared<Impl>()) {
  const prometheus::Labels labels{{"queue", std::move(queue)}};
  impl_->size = &prometheus::BuildHistogram()
                     .Name("asya_actor_batch_size")
                     .Help("Envelopes sent to the runtime in one batch call")
                     .Register(*impl_->registry)
                     .Add(labels, prometheus::Histogram::BucketBoundaries{
                                      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
  impl_->wait = &prometheus::BuildHistogram()
                     .Name("asya_actor_batch_wait_seconds")
                     .Help("Time spent gathering a batch after its first envelope arrived")
                     .Register(*impl_->registry)
                     .Add(labels, prometheus::Histogram::BucketBoundaries{
                                      0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1, 5});
  impl_->items = &prometheus::BuildCounter()
                      .Name("asya_actor_batch_items_total")
                      .Help("Envelopes sent to the runtime in batch calls (rate: items per second)")
                      .Register(*impl_->registry)
                      .Add(labels);
  std::weak_ptr<Impl> weak = impl_;
  add_process_metrics([weak] {
    auto impl = weak.lock();
    return impl ? impl->text() : std::string();
  });
}

void BatchMetrics::batch(std::size_t size, double wait_seconds) {
  impl_->size->Observe(static_cast<double>(size));
  impl_->wait->Observe(wait_seconds);
  impl_->items->Increment(static_cast<double>(size));
}

std::string BatchMetrics::serialize() const {
  return impl_->text();
}

}  // namespace asya::sidecar
