#pragma once
// The SIMD engine's entries in the implementation list.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

// Depthwise (one channel per group): channels are SIMD lanes.
std::shared_ptr<const detail::Implementation> make_depthwise_engine();
// Few output channels per group (1 to 4) and enough input channels: input channels as lanes.
std::shared_ptr<const detail::Implementation> make_dot_engine();
// Everything else: implicit GEMM over input channels x valid taps, output channels as lanes.
std::shared_ptr<const detail::Implementation> make_gemm_engine();

}  // namespace tdconv::engine
