// AVX2 FMA chains; compiled with -mavx2 -mfma (see CMakeLists.txt), run only where the CPU has AVX2 and FMA.
#include <immintrin.h>

#include "fma_kernels.hpp"

namespace bench::detail {

std::int64_t fma_chains_avx2(std::int64_t iterations, float* sink) {
  // 12 chains: enough for 2 FMAs per cycle at 4 cycles of latency, and with the two constants still within the
  // 16 ymm registers (more would spill and measure the stores instead).
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.9999f);
  const __m256 b = _mm256_set1_ps(1e-3f);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  *sink = total;
  return iterations * kChains * 8 * 2;
}

}  // namespace bench::detail
