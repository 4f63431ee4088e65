#pragma once
// The weight (and bias) gradients of a float32 problem on SIMD tiles (weight_gradient.cpp).
#include "tdconv/problem.hpp"

namespace tdconv::engine {

// diff_weights (in the problem's weight layout) and, unless null, diff_bias, from src and diff_dst (validated
// pointers of the problem's shapes, float32). Threads (OpenMP) split the weights, never a sum: results are
// identical for any thread count.
void weight_gradient(const Problem& p, const float* src, const float* diff_dst, float* diff_weights,
                     float* diff_bias);

}  // namespace tdconv::engine
