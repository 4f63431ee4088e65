#pragma once
// Layout conversions and index helpers for tests: plain loops, kept obviously right.
#include <functional>
#include <vector>

#include "tdconv/problem.hpp"

namespace tdconv::testing {

inline std::int64_t volume(const Dims& v, int n) {
  std::int64_t c = 1;
  for (int d = 0; d < n; ++d) c *= v[d];
  return c;
}

inline Dims unflatten(std::int64_t i, const Dims& size, int n) {
  Dims pos{0, 0, 0};
  for (int d = n - 1; d >= 0; --d) {
    pos[d] = i % size[d];
    i /= size[d];
  }
  return pos;
}

inline std::int64_t flatten(const Dims& pos, const Dims& size, int n) {
  std::int64_t i = 0;
  for (int d = 0; d < n; ++d) i = i * size[d] + pos[d];
  return i;
}

// (N, C, spatial) -> (N, spatial, C)
inline std::vector<double> to_channels_last(const std::vector<double>& v, std::int64_t batch, std::int64_t channels,
                                            std::int64_t spatial) {
  std::vector<double> out(v.size());
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t s = 0; s < spatial; ++s) out[(n * spatial + s) * channels + c] = v[(n * channels + c) * spatial + s];
  return out;
}

// torch (A, B, k...) -> tf (k..., B, A)
inline std::vector<double> torch_to_tf_weights(const std::vector<double>& v, std::int64_t a, std::int64_t b,
                                               std::int64_t taps) {
  std::vector<double> out(v.size());
  for (std::int64_t i = 0; i < a; ++i)
    for (std::int64_t j = 0; j < b; ++j)
      for (std::int64_t t = 0; t < taps; ++t) out[(t * b + j) * a + i] = v[(i * b + j) * taps + t];
  return out;
}

}  // namespace tdconv::testing
