// Times tdconv::Plan::forward on one problem.
#include "tdconv_run.hpp"

#include <limits>

#include "tdconv/plan.hpp"
#include "timing.hpp"

namespace bench {

TdconvOutput run_tdconv(const tdconv::Problem& p, const Buffer& src, const Buffer& weights, const TimingRule& rule) {
  TdconvOutput out;
  out.dst = Buffer(tdconv::element_count(tdconv::dst_shape(p), "dst"));
  // NaN everywhere first: an implementation that forgets to write an element shows up as non-finite output and as
  // a mismatch with every peer instead of passing on whatever the allocator left there.
  fill(out.dst, std::numeric_limits<float>::quiet_NaN());

  double t0 = now_seconds();
  const tdconv::Plan plan(p);
  out.run.plan_ms = (now_seconds() - t0) * 1e3;
  out.run.implementation = plan.implementation_name();

  t0 = now_seconds();
  const tdconv::PackedWeights packed = plan.pack_weights(tdconv::view(weights.data(), tdconv::weights_shape(p)));
  out.run.pack_ms = (now_seconds() - t0) * 1e3;
  out.run.packed_bytes = packed.bytes();
  out.run.workspace_bytes = plan.forward_workspace_bytes();

  const tdconv::TensorView src_view = tdconv::view(src.data(), tdconv::src_shape(p));
  const tdconv::MutableTensorView dst_view = tdconv::mutable_view(out.dst.data(), tdconv::dst_shape(p));
  out.run.timing = time_runs([&] { plan.forward(src_view, packed, tdconv::TensorView{}, dst_view); }, rule);
  out.run.finite = all_finite(out.dst.data(), out.dst.size());
  return out;
}

}  // namespace bench
