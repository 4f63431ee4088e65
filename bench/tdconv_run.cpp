// Times tdconv::Plan's forward pass, or its two backward passes, on one problem.
#include "tdconv_run.hpp"

#include <limits>

#include "tdconv/plan.hpp"
#include "timing.hpp"

namespace bench {

struct TdconvContender::Prepared {
  tdconv::Plan plan;
  Pass pass;
  tdconv::PackedWeights packed;  // forward only
  tdconv::TensorView src, weights, diff_dst;
  tdconv::MutableTensorView dst, diff_src, diff_weights;
};

namespace {

std::int64_t count(const std::vector<std::int64_t>& shape, const char* what) {
  return tdconv::element_count(shape, what);
}

}  // namespace

TdconvContender::TdconvContender(const tdconv::Problem& p, Pass pass, const Buffer& src, const Buffer& weights,
                                 const Buffer& diff_dst)
    : dst_(pass == Pass::forward ? count(tdconv::dst_shape(p), "dst")
                                 : count(tdconv::src_shape(p), "src") + count(tdconv::weights_shape(p), "weights")) {
  // NaN everywhere first: an implementation that forgets to write an element shows up as non-finite output and as
  // a mismatch with every peer instead of passing on whatever the allocator left there.
  fill(dst_, std::numeric_limits<float>::quiet_NaN());
  parts_ = {0};
  if (pass == Pass::backward) parts_.push_back(count(tdconv::src_shape(p), "src"));

  double t0 = now_seconds();
  tdconv::Plan plan(p);
  info_.plan_ms = (now_seconds() - t0) * 1e3;
  info_.implementation = plan.implementation_name();
  const tdconv::TensorView weights_view = tdconv::view(weights.data(), tdconv::weights_shape(p));
  tdconv::PackedWeights packed;
  if (pass == Pass::forward) {
    t0 = now_seconds();
    packed = plan.pack_weights(weights_view);
    info_.pack_ms = (now_seconds() - t0) * 1e3;
    info_.packed_bytes = packed.bytes();
    info_.workspace_bytes = plan.forward_workspace_bytes();
  } else {
    info_.implementation = "backward";  // the passes' own paths (Plan::backward_data, backward_weights)
  }
  float* out = dst_.data();
  prepared_ = std::make_unique<Prepared>(Prepared{
      std::move(plan), pass, std::move(packed), tdconv::view(src.data(), tdconv::src_shape(p)), weights_view,
      tdconv::view(diff_dst.data(), tdconv::dst_shape(p)), tdconv::mutable_view(out, tdconv::dst_shape(p)),
      tdconv::mutable_view(out, tdconv::src_shape(p)),
      tdconv::mutable_view(out + (parts_.size() > 1 ? parts_[1] : 0), tdconv::weights_shape(p))});
}

TdconvContender::~TdconvContender() = default;

void TdconvContender::run() const {
  const Prepared& s = *prepared_;
  if (s.pass == Pass::forward) {
    s.plan.forward(s.src, s.packed, tdconv::TensorView{}, s.dst);
    return;
  }
  s.plan.backward_data(s.diff_dst, s.weights, s.diff_src);
  s.plan.backward_weights(s.src, s.diff_dst, s.diff_weights, tdconv::MutableTensorView{});
}

TdconvRun TdconvContender::result(const Timing& timing) const {
  TdconvRun r = info_;
  r.timing = timing;
  r.finite = all_finite(dst_.data(), dst_.size());
  return r;
}

}  // namespace bench
