// Nominal FLOPs and the fraction of taps inside the tensors, from the relation both operations share
// (docs/design.md): dense = strided * stride + tap * dilation - pad_begin.
#include "geometry.hpp"

namespace bench {

double nominal_flops(const tdconv::Problem& p) { return 2 * tdconv::nominal_macs(p); }

double valid_tap_fraction(const tdconv::Problem& p) {
  const tdconv::Dims out = tdconv::output_size(p);
  const bool conv = p.op == tdconv::Op::conv;
  double fraction = 1;
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t strided = conv ? out[d] : p.input[d];
    const std::int64_t dense = conv ? p.input[d] : out[d];
    std::int64_t valid = 0;
    // Counted directly rather than in closed form: sizes are at most tens of thousands, and the loop is obviously
    // right where the closed form would need its own tests.
    for (std::int64_t s = 0; s < strided; ++s) {
      for (std::int64_t k = 0; k < p.kernel[d]; ++k) {
        const std::int64_t at = s * p.stride[d] + k * p.dilation[d] - p.pad_begin[d];
        valid += (at >= 0 && at < dense) ? 1 : 0;
      }
    }
    fraction *= static_cast<double>(valid) / (static_cast<double>(strided) * static_cast<double>(p.kernel[d]));
  }
  return fraction;
}

}  // namespace bench
