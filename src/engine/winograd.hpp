#pragma once
// Winograd F(2, r) along every axis: convolutions with 2 or 3 taps per axis at stride 1 (any dilation), and
// transposed convolutions whose kernel is 2 or 3 times the stride, with many channels.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_winograd_engine();

}  // namespace tdconv::engine
