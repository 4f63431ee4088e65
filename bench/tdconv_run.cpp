// Times tdconv::Plan::forward on one problem.
#include "tdconv_run.hpp"

#include <limits>

#include "tdconv/plan.hpp"
#include "timing.hpp"

namespace bench {

struct TdconvContender::Prepared {
  tdconv::Plan plan;
  tdconv::PackedWeights packed;
  tdconv::TensorView src;
  tdconv::MutableTensorView dst;
};

TdconvContender::TdconvContender(const tdconv::Problem& p, const Buffer& src, const Buffer& weights)
    : dst_(tdconv::element_count(tdconv::dst_shape(p), "dst")) {
  // NaN everywhere first: an implementation that forgets to write an element shows up as non-finite output and as
  // a mismatch with every peer instead of passing on whatever the allocator left there.
  fill(dst_, std::numeric_limits<float>::quiet_NaN());

  double t0 = now_seconds();
  tdconv::Plan plan(p);
  info_.plan_ms = (now_seconds() - t0) * 1e3;
  info_.implementation = plan.implementation_name();

  t0 = now_seconds();
  tdconv::PackedWeights packed = plan.pack_weights(tdconv::view(weights.data(), tdconv::weights_shape(p)));
  info_.pack_ms = (now_seconds() - t0) * 1e3;
  info_.packed_bytes = packed.bytes();
  info_.workspace_bytes = plan.forward_workspace_bytes();
  prepared_ = std::make_unique<Prepared>(Prepared{std::move(plan), std::move(packed),
                                                  tdconv::view(src.data(), tdconv::src_shape(p)),
                                                  tdconv::mutable_view(dst_.data(), tdconv::dst_shape(p))});
}

TdconvContender::~TdconvContender() = default;

void TdconvContender::run() const {
  prepared_->plan.forward(prepared_->src, prepared_->packed, tdconv::TensorView{}, prepared_->dst);
}

TdconvRun TdconvContender::result(const Timing& timing) const {
  TdconvRun r = info_;
  r.timing = timing;
  r.finite = all_finite(dst_.data(), dst_.size());
  return r;
}

}  // namespace bench
