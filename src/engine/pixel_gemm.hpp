#pragma once
// 1D convolutions on channels_first tensors with the pixels of an output row as SIMD lanes (no re-layout).
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_pixel_gemm_engine();

}  // namespace tdconv::engine
