#pragma once
// Winograd F(2x2, 3x3): 3x3 convolutions at stride 1, any dilation, many channels.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_winograd_engine();

}  // namespace tdconv::engine
