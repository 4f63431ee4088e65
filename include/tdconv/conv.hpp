#pragma once
// One-shot functions: build a plan and run it once. For repeated calls keep a Plan instead.
#include "tdconv/plan.hpp"

namespace tdconv {

inline void forward(const Problem& p, const TensorView& src, const TensorView& weights, const TensorView& bias,
                    const MutableTensorView& dst) {
  Plan(p).forward(src, weights, bias, dst);
}

inline void backward_data(const Problem& p, const TensorView& diff_dst, const TensorView& weights,
                          const MutableTensorView& diff_src) {
  Plan(p).backward_data(diff_dst, weights, diff_src);
}

inline void backward_weights(const Problem& p, const TensorView& src, const TensorView& diff_dst,
                             const MutableTensorView& diff_weights, const MutableTensorView& diff_bias) {
  Plan(p).backward_weights(src, diff_dst, diff_weights, diff_bias);
}

}  // namespace tdconv
