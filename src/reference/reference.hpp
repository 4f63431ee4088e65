#pragma once
// The reference: plain loops straight from the definitions, accumulating in double. Slow and obviously right; the
// oracle for every fast path. Tensors are dense and C-ordered in the problem's layouts (see problem.hpp).
#include "tdconv/problem.hpp"

namespace tdconv::reference {

// dst = op(src; weights) + bias. `bias` may be null.
template <class T>
void forward(const Problem& p, const T* src, const T* weights, const T* bias, T* dst);

// diff_src = gradient of sum(forward(src) * diff_dst) with respect to src.
template <class T>
void backward_data(const Problem& p, const T* diff_dst, const T* weights, T* diff_src);

// diff_weights (and diff_bias unless null) = gradients with respect to the weights and the bias.
template <class T>
void backward_weights(const Problem& p, const T* src, const T* diff_dst, T* diff_weights, T* diff_bias);

}  // namespace tdconv::reference
