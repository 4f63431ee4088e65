#pragma once
// Dense convolutions on channels_first tensors with pixels as SIMD lanes (no relayout into channels_last).
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_planar_gemm_engine();

}  // namespace tdconv::engine
