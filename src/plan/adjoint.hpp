#pragma once
// The data gradient of a convolution is the forward pass of its adjoint: the transposed convolution with the same
// weights (and the other way round), so backward_data runs on every fast path the forward pass has.
#include <memory>
#include <mutex>
#include <optional>

#include "tdconv/plan.hpp"
#include "tdconv/problem.hpp"
#include "tdconv/tensor.hpp"

namespace tdconv::detail {

// The problem whose forward pass computes p's data gradient: op swapped, channels swapped, the same kernel, stride,
// dilation, pad_begin, groups, layouts and weights tensor (both operations index their weights by the strided and
// the dense side, not by input and output), and a pad_end and output_padding that make its output exactly p's input.
// Those two only decide how many outputs there are: which src element meets which weight is
// dst[i * stride + k * dilation - pad_begin] in both directions. nullopt where no such problem exists (a transposed
// convolution whose output_padding exceeds pad_end + stride - 1, possible when dilation > stride: its adjoint
// convolution would have outputs past the input's end).
std::optional<Problem> adjoint_problem(const Problem& p);

// For a convolution at stride 1 on every axis whose padding on each side reaches no further than its dilated
// kernel (pad_begin, pad_end <= dilation * (kernel - 1)): its adjoint (a transposed convolution at stride 1) as a
// convolution with the kernel reversed along every axis and the channels' roles exchanged, pad_begin' = dilation *
// (kernel - 1) - pad_begin and pad_end' likewise. Convolutions have the engine's fastest paths (Winograd for 2 or 3
// taps per axis at any dilation: DeepLab's and ASPP's data gradients). Its weights are flip_weights' result.
std::optional<Problem> flipped_adjoint_problem(const Problem& p);

// p's float32 weights as the flipped adjoint's weights (same weight layout): out[the adjoint's (g, n, q, taps - 1 -
// t)] = w[p's (g, q, n, t)], (input, output) channels of a group and the kernel tap.
void flip_weights(const Problem& p, const float* w, float* out);

// The plan of a problem's adjoint, made the first time backward_data needs it (thread-safe): plans for inference
// never pay for it.
class AdjointPlan {
 public:
  explicit AdjointPlan(const Problem& p) : problem_(p) {}
  // diff_src from diff_dst and the weights (views checked against the problem) as the adjoint's forward pass;
  // false where there is none worth running (float64, or no adjoint: the reference's own loops run then).
  bool backward_data(const TensorView& diff_dst, const TensorView& weights, const MutableTensorView& diff_src) const;

 private:
  const Plan* plan() const;
  // diff_src through the stride-1 problem over diff_dst's phases (phase_channels.hpp), a batch of images per call.
  void backward_data_by_phases(const Plan& plan, const TensorView& diff_dst, const TensorView& weights,
                               const MutableTensorView& diff_src) const;
  Problem problem_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<Plan> plan_;
  mutable bool flipped_ = false;  // the plan is the flipped adjoint's (its weights through flip_weights)
  mutable bool phase_channels_ = false;  // the plan is phase_channels_problem's
};

}  // namespace tdconv::detail
