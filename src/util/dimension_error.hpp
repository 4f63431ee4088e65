#pragma once
// Per-dimension checks throw errors that do not know their dimension; this adds it, so that a message about a 2D
// or 3D problem says which spatial dimension broke the rule.
#include <string>

#include "tdconv/error.hpp"

namespace tdconv::detail {

template <class Fn>
auto in_spatial_dimension(int spatial_dims, int dim, Fn fn) {
  try {
    return fn();
  } catch (const Error& e) {
    if (spatial_dims == 1) throw;
    const std::string rule = std::string(e.what()).substr(e.subject().size() + 2);
    throw Error(e.subject(), rule + " (spatial dimension " + std::to_string(dim) + ")");
  }
}

}  // namespace tdconv::detail
