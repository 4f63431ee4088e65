#pragma once
// Seeded generators of small valid problems and tensors, shared by the identity and differential tests. Every
// failure message should print to_string(problem), which parse_problem reads back: the repro line.
#include <random>
#include <vector>

#include "tdconv/error.hpp"
#include "tdconv/problem.hpp"

namespace tdconv::testing {

struct ProblemLimits {
  int max_spatial_dims = 3;
  std::int64_t max_input = 5;
  std::int64_t max_kernel = 3;
  std::int64_t max_stride = 3;
  std::int64_t max_dilation = 3;
  std::int64_t max_channels_per_group = 3;
  std::int64_t max_groups = 3;
  std::int64_t max_batch = 2;
};

inline std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// A random valid problem: retries until validate() accepts it. Padding ranges past the kernel extent, strides past
// the kernel, output padding up to its limit, every layout and dtype.
inline Problem random_problem(std::mt19937_64& rng, Op op, const ProblemLimits& lim = {}) {
  while (true) {
    Problem p;
    p.op = op;
    p.spatial_dims = static_cast<int>(uniform(rng, 1, lim.max_spatial_dims));
    p.batch = uniform(rng, 1, lim.max_batch);
    p.groups = uniform(rng, 1, lim.max_groups);
    p.in_channels = p.groups * uniform(rng, 1, lim.max_channels_per_group);
    p.out_channels = p.groups * uniform(rng, 1, lim.max_channels_per_group);
    // Fewer elements per dimension in 3D keep the reference fast.
    const std::int64_t max_input = p.spatial_dims == 3 ? std::min<std::int64_t>(lim.max_input, 4) : lim.max_input;
    for (int d = 0; d < p.spatial_dims; ++d) {
      p.input[d] = uniform(rng, 1, max_input);
      p.kernel[d] = uniform(rng, 1, lim.max_kernel);
      p.stride[d] = uniform(rng, 1, lim.max_stride);
      p.dilation[d] = uniform(rng, 1, lim.max_dilation);
      const std::int64_t k_eff = p.dilation[d] * (p.kernel[d] - 1) + 1;
      p.pad_begin[d] = uniform(rng, 0, k_eff + 1);
      p.pad_end[d] = uniform(rng, 0, k_eff + 1);
      if (op == Op::conv_transpose) p.output_padding[d] = uniform(rng, 0, std::max(p.stride[d], p.dilation[d]) - 1);
    }
    p.dtype = uniform(rng, 0, 1) ? DType::f64 : DType::f32;
    p.layout = uniform(rng, 0, 1) ? Layout::channels_last : Layout::channels_first;
    p.weight_layout = uniform(rng, 0, 1) ? WeightLayout::tf : WeightLayout::torch;
    try {
      validate(p);
      return p;
    } catch (const Error&) {
      // invalid combination (e.g. kernel longer than the padded input): draw again
    }
  }
}

inline std::vector<double> random_values(std::mt19937_64& rng, const std::vector<std::int64_t>& shape) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(static_cast<std::size_t>(element_count(shape, "test")));
  for (double& x : v) x = dist(rng);
  return v;
}

// Values exactly representable in float32 and small integers, so float32 and float64 sums are exact.
inline std::vector<double> random_small_integers(std::mt19937_64& rng, const std::vector<std::int64_t>& shape) {
  std::vector<double> v(static_cast<std::size_t>(element_count(shape, "test")));
  for (double& x : v) x = static_cast<double>(uniform(rng, -3, 3));
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace tdconv::testing
