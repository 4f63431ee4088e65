#pragma once
// Transposed convolutions with 1 to 4 output channels: a GEMM per input row, then a scatter-add.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_scatter_engine();

}  // namespace tdconv::engine
