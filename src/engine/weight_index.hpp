#pragma once
// Where one weight sits in the user's tensor: the engines pack weights from it.
#include <cstdint>

#include "tdconv/problem.hpp"

namespace tdconv::engine {

// The weight index is linear in (group, input channel of the group, output channel of the group, kernel tap):
// its four strides, for packing loops that step through the tensor instead of recomputing each index.
struct WeightStrides {
  std::int64_t group = 0, in = 0, out = 0, tap = 0;
  std::int64_t at(std::int64_t g, std::int64_t q, std::int64_t n, std::int64_t t) const {
    return g * group + q * in + n * out + t * tap;
  }
};

// The strides of the problem's weight layout (torch: conv [out][in/g][taps], transposed [in][out/g][taps];
// TensorFlow: taps first, then conv [in/g][out], transposed [out/g][in]).
inline WeightStrides weight_strides(const Problem& p, std::int64_t taps) {
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const bool torch = p.weight_layout == WeightLayout::torch;
  if (p.op == Op::conv) {
    if (torch) return {ocg * icg * taps, taps, icg * taps, 1};
    return {ocg, p.out_channels, 1, icg * p.out_channels};
  }
  if (torch) return {icg * ocg * taps, ocg * taps, taps, 1};
  return {icg, 1, p.in_channels, ocg * p.in_channels};
}

// Index of weight (group g, input channel q of the group, output channel n of the group, kernel tap) in the
// problem's weight layout.
inline std::int64_t weight_index(const Problem& p, std::int64_t g, std::int64_t q, std::int64_t n, std::int64_t tap,
                                 std::int64_t taps) {
  return weight_strides(p, taps).at(g, q, n, tap);
}

}  // namespace tdconv::engine
