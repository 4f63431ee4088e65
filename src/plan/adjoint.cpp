// The adjoint problem of backward_data (see adjoint.hpp).
#include "plan/adjoint.hpp"

#include <algorithm>
#include <iostream>

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

const Plan* AdjointPlan::get() const {
  std::call_once(once_, [this] {
    if (problem_.dtype != DType::f32) return;
    const std::optional<Problem> adjoint = adjoint_problem(problem_);
    if (!adjoint) return;
    if (verbose()) {
      std::cerr << "tdconv: backward_data of " << to_string(problem_) << " runs as the forward pass of its adjoint\n";
    }
    auto plan = std::make_unique<Plan>(*adjoint);
    if (plan->implementation_name() != "reference") plan_ = std::move(plan);
  });
  return plan_.get();
}

}  // namespace tdconv::detail
