#pragma once
// Where one weight sits in the user's tensor: the engines pack weights from it.
#include <cstdint>

#include "tdconv/problem.hpp"

namespace tdconv::engine {

// Index of weight (group g, input channel q of the group, output channel n of the group, kernel tap) in the
// problem's weight layout (torch: conv [out][in/g][taps], transposed [in][out/g][taps]; TensorFlow: taps first,
// then conv [in/g][out], transposed [out/g][in]).
inline std::int64_t weight_index(const Problem& p, std::int64_t g, std::int64_t q, std::int64_t n, std::int64_t tap,
                                 std::int64_t taps) {
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const bool torch = p.weight_layout == WeightLayout::torch;
  if (p.op == Op::conv) {
    return torch ? ((g * ocg + n) * icg + q) * taps + tap : (tap * icg + q) * p.out_channels + g * ocg + n;
  }
  return torch ? ((g * icg + q) * ocg + n) * taps + tap : (tap * ocg + n) * p.in_channels + g * icg + q;
}

}  // namespace tdconv::engine
