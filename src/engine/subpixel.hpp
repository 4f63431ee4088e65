#pragma once
// Transposed convolutions with few output channels: the phases along x fused into one GEMM's columns.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_subpixel_engine();

}  // namespace tdconv::engine
