#pragma once
// Depthwise convolutions on channels_first tensors, plane by plane (SIMD lanes are consecutive pixels).
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_planar_engine();

}  // namespace tdconv::engine
