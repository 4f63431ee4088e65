#pragma once
// FMA throughput kernels, each in its own translation unit compiled for its instruction set (peak_*.cpp), so the
// rest of the program stays portable and the choice is made at run time. Each runs `iterations` rounds of
// independent fused multiply-adds and returns the FLOPs it did; `sink` receives a value depending on every chain
// so that the compiler cannot drop them.
#include <cstdint>

namespace bench::detail {

std::int64_t fma_chains_avx512(std::int64_t iterations, float* sink);
std::int64_t fma_chains_avx2(std::int64_t iterations, float* sink);
std::int64_t fma_chains_scalar(std::int64_t iterations, float* sink);

}  // namespace bench::detail
