// AVX-512 FMA chains; compiled with -mavx512f -mfma (see CMakeLists.txt), run only where the CPU has AVX-512F.
#include <immintrin.h>

#include "fma_kernels.hpp"

namespace bench::detail {

std::int64_t fma_chains_avx512(std::int64_t iterations, float* sink) {
  // 16 chains: a 4-cycle FMA latency times up to 2 FMAs per cycle needs 8; 16 leaves margin and still fits in the
  // 32 zmm registers with the two constants. acc = acc * a + b converges to b / (1 - a): no overflow, no denormals.
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.9999f);
  const __m512 b = _mm512_set1_ps(1e-3f);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  // Summed by hand: GCC 12's _mm512_reduce_add_ps trips -Werror=uninitialized inside its own header.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  *sink = total;
  return iterations * kChains * 16 * 2;
}

}  // namespace bench::detail
