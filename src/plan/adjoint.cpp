// The adjoint problem of backward_data (see adjoint.hpp).
#include "plan/adjoint.hpp"

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "engine/weight_index.hpp"
#include "plan/phase_channels.hpp"

#include "plan/verbose.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::detail {

std::optional<Problem> adjoint_problem(const Problem& p) {
  validate(p);
  const Dims out = output_size(p);
  Problem a = p;
  a.op = p.op == Op::conv ? Op::conv_transpose : Op::conv;
  a.in_channels = p.out_channels;
  a.out_channels = p.in_channels;
  a.input = out;
  a.output_padding = Dims{0, 0, 0};
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t k_eff = p.dilation[d] * (p.kernel[d] - 1) + 1;
    if (p.op == Op::conv) {
      // The transposed output (out - 1) * stride + k_eff - pads falls short of the input by the elements the
      // convolution's last window did not reach, fewer than the stride: they become output padding.
      a.output_padding[d] = p.input[d] - ((out[d] - 1) * p.stride[d] + k_eff - p.pad_begin[d] - p.pad_end[d]);
    } else {
      // floor((out + pad_begin + pad_end' - k_eff) / stride) + 1 = input for pad_end' in
      // [pad_end - output_padding, pad_end - output_padding + stride - 1]: the smallest that is not negative.
      const std::int64_t lowest = p.pad_end[d] - p.output_padding[d];
      if (lowest + p.stride[d] - 1 < 0) return std::nullopt;
      a.pad_end[d] = std::max<std::int64_t>(0, lowest);
    }
  }
  validate(a);
  return a;
}

std::optional<Problem> flipped_adjoint_problem(const Problem& p) {
  validate(p);
  if (p.op != Op::conv) return std::nullopt;
  Problem a = p;
  a.in_channels = p.out_channels;
  a.out_channels = p.in_channels;
  a.input = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t reach = p.dilation[d] * (p.kernel[d] - 1);
    if (p.stride[d] != 1 || p.pad_begin[d] > reach || p.pad_end[d] > reach) return std::nullopt;
    a.pad_begin[d] = reach - p.pad_begin[d];
    a.pad_end[d] = reach - p.pad_end[d];
  }
  validate(a);
  return a;
}

void flip_weights(const Problem& p, const float* w, float* out) {
  const std::optional<Problem> a = flipped_adjoint_problem(p);
  if (!a) throw std::logic_error("flip_weights: the problem has no flipped adjoint");
  std::int64_t taps = 1;
  for (int d = 0; d < p.spatial_dims; ++d) taps *= p.kernel[d];
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const engine::WeightStrides from = engine::weight_strides(p, taps), to = engine::weight_strides(*a, taps);
  // In blocks of channels: with the channels' roles exchanged, one side or the other is read or written a row of
  // channels apart. torch's taps are innermost (a block's rows hold all of them: 16 x 16 channels stay in L1), tf's
  // outermost (a plane per tap: 64 x 64 channels per block, so that each plane's pages are walked less often).
  // Element by element with the taps innermost, ASPP's 18 MiB took 18 ms in the tf layout; now 4-9 ms in either.
  auto flip = [&](std::int64_t g, std::int64_t n, std::int64_t q, std::int64_t t) {
    out[to.at(g, n, q, taps - 1 - t)] = w[from.at(g, q, n, t)];
  };
  const bool taps_inside = p.weight_layout == WeightLayout::torch;
  const std::int64_t block = taps_inside ? 16 : 64;
  for (std::int64_t g = 0; g < p.groups; ++g)
    for (std::int64_t n0 = 0; n0 < ocg; n0 += block)
      for (std::int64_t q0 = 0; q0 < icg; q0 += block) {
        const std::int64_t n1 = std::min(ocg, n0 + block), q1 = std::min(icg, q0 + block);
        if (taps_inside) {
          for (std::int64_t n = n0; n < n1; ++n)
            for (std::int64_t q = q0; q < q1; ++q)
              for (std::int64_t t = 0; t < taps; ++t) flip(g, n, q, t);
        } else {
          for (std::int64_t t = 0; t < taps; ++t)
            for (std::int64_t n = n0; n < n1; ++n)
              for (std::int64_t q = q0; q < q1; ++q) flip(g, n, q, t);
        }
      }
}

const Plan* AdjointPlan::plan() const {
  std::call_once(once_, [this] {
    if (problem_.dtype != DType::f32) return;
    if (const std::optional<Problem> q = phase_channels_problem(problem_, phase_channels_images(problem_))) {
      auto plan = std::make_unique<Plan>(*q);
      // Only where Winograd takes it: otherwise the GEMMs of the strided adjoint do the same multiplications
      // without copying diff_dst.
      if (plan->implementation_name() == "winograd") {
        if (verbose()) {
          std::cerr << "tdconv: backward_data of " << to_string(problem_)
                    << " runs as a stride-1 convolution over diff_dst's stride phases as channels, " << q->batch
                    << " image(s) per call\n";
        }
        plan_ = std::move(plan);
        phase_channels_ = true;
        return;
      }
    }
    std::optional<Problem> adjoint = flipped_adjoint_problem(problem_);
    const bool flipped = adjoint.has_value();
    if (!flipped) adjoint = adjoint_problem(problem_);
    if (!adjoint) return;
    if (verbose()) {
      std::cerr << "tdconv: backward_data of " << to_string(problem_) << " runs as the forward pass of its adjoint"
                << (flipped ? ", a convolution with the kernel reversed" : "") << "\n";
    }
    auto plan = std::make_unique<Plan>(*adjoint);
    if (plan->implementation_name() == "reference") return;
    plan_ = std::move(plan);
    flipped_ = flipped;
  });
  return plan_.get();
}

bool AdjointPlan::backward_data(const TensorView& diff_dst, const TensorView& weights,
                                const MutableTensorView& diff_src) const {
  const Plan* adjoint = plan();
  if (adjoint == nullptr) return false;
  if (phase_channels_) {
    backward_data_by_phases(*adjoint, diff_dst, weights, diff_src);
    return true;
  }
  const TensorView no_bias{nullptr, problem_.dtype, Shape(bias_shape(problem_))};
  if (!flipped_) {
    adjoint->forward(diff_dst, weights, no_bias, diff_src);
    return true;
  }
  std::vector<float> flipped(static_cast<std::size_t>(element_count(weights_shape(problem_), "weights")));
  flip_weights(problem_, static_cast<const float*>(weights.data), flipped.data());
  adjoint->forward(diff_dst, view(flipped.data(), weights_shape(adjoint->problem())), no_bias, diff_src);
  return true;
}

void AdjointPlan::backward_data_by_phases(const Plan& plan, const TensorView& diff_dst, const TensorView& weights,
                                          const MutableTensorView& diff_src) const {
  const Problem& q = plan.problem();
  std::vector<float> w(static_cast<std::size_t>(element_count(weights_shape(q), "weights")));
  phase_channels_weights(problem_, q, static_cast<const float*>(weights.data), w.data());
  const PackedWeights packed = plan.pack_weights(view(w.data(), weights_shape(q)));
  std::vector<float> z(static_cast<std::size_t>(element_count(src_shape(q), "src")));
  const TensorView no_bias{nullptr, q.dtype, Shape(bias_shape(q))};
  const std::int64_t dx_image = element_count(src_shape(problem_), "diff_src") / problem_.batch;
  for (std::int64_t n0 = 0; n0 < problem_.batch; n0 += q.batch) {
    phase_channels_source(problem_, q, static_cast<const float*>(diff_dst.data), n0, z.data());
    plan.forward(view(z.data(), src_shape(q)), packed, no_bias,
                 mutable_view(static_cast<float*>(diff_src.data) + n0 * dx_image, dst_shape(q)));
  }
}

}  // namespace tdconv::detail
