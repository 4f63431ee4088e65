#pragma once
// What a layer asks of the machine: its nominal FLOP count and how much of it lands inside the tensors.
#include "tdconv/problem.hpp"

namespace bench {

// 2 * nominal multiply-adds (taps that land in padding included): the usual unit for GFLOP/s.
double nominal_flops(const tdconv::Problem& p);

// The fraction of (strided element, tap) pairs whose dense index lands inside the dense tensor (the input of a conv,
// the output of a transposed conv), as a product over spatial dimensions. An implementation that skips the other
// taps can exceed 100% of peak on nominal FLOPs; this says by how much it could.
double valid_tap_fraction(const tdconv::Problem& p);

}  // namespace bench
