#pragma once
// Transposed convolutions of one-pixel inputs (a latent vector projected to a small image) as one dense GEMM.
#include <memory>

#include "plan/implementation.hpp"

namespace tdconv::engine {

std::shared_ptr<const detail::Implementation> make_projection_engine();

}  // namespace tdconv::engine
