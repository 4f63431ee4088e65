#pragma once
// Dense convolutions on channels_first tensors with pixels as SIMD lanes (no relayout into channels_last).
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_planar_gemm_engine();
// gemm_planar with Winograd F(4, 2) or F(2, 2) along x (winograd_planar), for x phases (up to 2) of 2 taps on
// consecutive columns or 1 (F(n, 1)), at least one of 2.
std::shared_ptr<const detail::Implementation> make_planar_winograd_engine();

}  // namespace tdconv::engine
