#pragma once
// The data gradient of a convolution is the forward pass of its adjoint: the transposed convolution with the same
// weights (and the other way round), so backward_data runs on every fast path the forward pass has.
#include <memory>
#include <mutex>
#include <optional>

#include "tdconv/plan.hpp"
#include "tdconv/problem.hpp"

namespace tdconv::detail {

// The problem whose forward pass computes p's data gradient: op swapped, channels swapped, the same kernel, stride,
// dilation, pad_begin, groups, layouts and weights tensor (both operations index their weights by the strided and
// the dense side, not by input and output), and a pad_end and output_padding that make its output exactly p's input.
// Those two only decide how many outputs there are: which src element meets which weight is
// dst[i * stride + k * dilation - pad_begin] in both directions. nullopt where no such problem exists (a transposed
// convolution whose output_padding exceeds pad_end + stride - 1, possible when dilation > stride: its adjoint
// convolution would have outputs past the input's end).
std::optional<Problem> adjoint_problem(const Problem& p);

// The plan of a problem's adjoint, made the first time backward_data needs it (thread-safe): plans for inference
// never pay for it.
class AdjointPlan {
 public:
  explicit AdjointPlan(const Problem& p) : problem_(p) {}
  // Null where the adjoint would run on the reference anyway (float64) or does not exist: backward_data then runs
  // the reference's own loops.
  const Plan* get() const;

 private:
  Problem problem_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<Plan> plan_;
};

}  // namespace tdconv::detail
