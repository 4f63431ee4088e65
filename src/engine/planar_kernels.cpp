// Per-target planar kernels: SIMD lanes are consecutive pixels of a channels_first row (depthwise runs, the planar
// gemm tile, the interleave of a transposed convolution's phases). Compiled once per target like kernels.cpp, whose
// best_kernels() adds these to its KernelSet (add_planar_kernels) for the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/planar_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "engine/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace tdconv::engine::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

#include "engine/simd_common-inl.h"

// PlanarRows: the sums of U vectors of pixels from j of every part, each sum its own chain of multiply-adds.
template <int P, int U>
HWY_INLINE void PhaseSums(const D d, const float* const* in, const float* w, const int* part_taps, float init,
                          std::int64_t j, V (&acc)[P][U]) {  // j: pixel of in[t] (its row offset included)
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) acc[q][u] = hn::Set(d, init);
    for (int t = part_taps[q]; t < part_taps[q + 1]; ++t) {
      const V wv = hn::Set(d, w[t]);
      const float* HWY_RESTRICT p = in[t] + j;
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[q][u] = hn::MulAdd(wv, hn::LoadU(d, p + u * lanes), acc[q][u]);
    }
  }
}

// Whether InterleaveTwo can: where InterleaveLower/Upper pair the lanes of whole vectors (128-bit targets) or of
// each 128-bit half (AVX2), and with AVX-512's two-source permutations.
constexpr bool kInterleavesTwo = HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3 ||
                                 HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL;

// a and b interleaved (a0 b0 a1 b1 ...) into two vectors, in registers.
HWY_INLINE void InterleaveTwo(const D d, V a, V b, V& first, V& second) {
#if HWY_TARGET == HWY_AVX2
  const V lo = hn::InterleaveLower(d, a, b), hi = hn::InterleaveUpper(d, a, b);
  first = hn::ConcatLowerLower(d, hi, lo);
  // The upper halves as lo's upper half moved down (an extract) blended with hi, not ConcatUpperUpper (Highway's
  // StoreInterleaved2 too): that is a vperm2f128, 8 micro-ops on Zen 1. dw_up2 channels_first, whose expanded rows
  // and outputs are interleaved vector by vector, gained 1.05-1.08x at 1 thread and 1.04-1.05x at 2 in most runs
  // (timed in turns; 0.96x and 0.99x in one); the gemm layers were unchanged.
  const hn::Half<D> dh;
  second = hn::ConcatUpperLower(d, hi, hn::ZeroExtendVector(d, hn::UpperHalf(dh, lo)));
#elif HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
  first = hn::InterleaveLower(d, a, b), second = hn::InterleaveUpper(d, a, b);
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // Across the 128-bit blocks in one two-source permutation each (vpermt2ps); Highway 1.0's InterleaveLower and
  // InterleaveUpper work within blocks. Before, AVX-512 stored and reloaded every output vector through a buffer:
  // with this, channels_first HiFi-GAN up3, U-Net up4, CycleGAN and dw_up2 ran 1.02-1.05x as fast at 1 thread
  // (processes alternated, Intel Xeon); at 2 threads, where they wait on memory, within the noise.
  (void)d;
  const __m512i lower = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i upper = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  first = V{_mm512_permutex2var_ps(a.raw, lower, b.raw)};
  second = V{_mm512_permutex2var_ps(a.raw, upper, b.raw)};
#else
  (void)d, (void)a, (void)b;
  first = second = hn::Zero(d);  // unused: kInterleavesTwo is false
#endif
}

// a, b, c, e (the first `parts` of them, 1 to 4) interleaved into out[0, parts * lanes).
HWY_INLINE void StoreInterleavedParts(const D d, int parts, V a, V b, V c, V e, float* HWY_RESTRICT out) {
  switch (parts) {
    case 1: return hn::StoreU(a, d, out);
    case 2:
      if constexpr (kInterleavesTwo) {
        V first, second;
        InterleaveTwo(d, a, b, first, second);
        hn::StoreU(first, d, out);
        return hn::StoreU(second, d, out + hn::Lanes(d));
      }
      return hn::StoreInterleaved2(a, b, d, out);
    case 3: return hn::StoreInterleaved3(a, b, c, d, out);
    default: return hn::StoreInterleaved4(a, b, c, e, d, out);
  }
}

// Vector u of every part, interleaved into out[0, P * lanes). u is a constant after unrolling: a runtime index
// would keep the accumulators in memory.
template <int P, int U>
HWY_INLINE void StoreParts(const D d, const V (&acc)[P][U], int u, float* HWY_RESTRICT out) {
  StoreInterleavedParts(d, P, acc[0][u], acc[P > 1 ? 1 : 0][u], acc[P > 2 ? 2 : 0][u], acc[P > 3 ? 3 : 0][u], out);
}

// Two parts interleaved in registers and streamed (where kInterleavesTwo). Elsewhere through a buffer, which on
// AVX2 had cost dw_up2 (channels_first) its store and reload of every output vector.
HWY_INLINE bool StreamTwoParts(const D d, V a, V b, float* HWY_RESTRICT out) {
  if constexpr (!kInterleavesTwo) return false;
  V first, second;
  InterleaveTwo(d, a, b, first, second);
  hn::Stream(first, d, out);
  hn::Stream(second, d, out + hn::Lanes(d));
  return true;
}

constexpr std::int64_t kLineBytes = 64;

template <int P, int U>
HWY_INLINE void StorePartsStreamed(const D d, const V (&acc)[P][U], int u, float* HWY_RESTRICT out) {
  if constexpr (P == 2) {
    if (StreamTwoParts(d, acc[0][u], acc[1][u], out)) return;
  }
  if constexpr (P == 1) {
    hn::Stream(acc[0][u], d, out);
  } else {
    const size_t lanes = hn::Lanes(d);
    HWY_ALIGN float buffer[P * HWY_MAX_BYTES / sizeof(float)];
    StoreParts<P, U>(d, acc, u, buffer);
    for (int q = 0; q < P; ++q) hn::Stream(hn::Load(d, buffer + q * lanes), d, out + q * lanes);
  }
}

// Vectors [0, U) of every part interleaved into out (P * lanes floats per vector).
template <int P, int U>
HWY_INLINE void StoreAllParts(const D d, const V (&acc)[P][U], float* HWY_RESTRICT out, bool stream) {
  const auto step = static_cast<std::int64_t>(P * hn::Lanes(d));
  if (stream) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) StorePartsStreamed<P, U>(d, acc, u, out + u * step);
  } else {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) StoreParts<P, U>(d, acc, u, out + u * step);
  }
}

// One output row of P parts (see KernelSet::planar_rows): in[t] + offset is where tap t reads the row's pixel 0.
// U vectors per part at a time, so that P x U chains of multiply-adds (4 or more) hide the FMA latency; whole
// vectors of every part are stored interleaved straight into the row (the phases had gone through row buffers and
// a second pass, 19% of dw_up2's time, and their masked edge vectors through vmaskmovps, most of the rest, on
// Zen 1); the row's last vector through a buffer.
template <int P>
HWY_INLINE void PlanarRowParts(const float* const* in, std::int64_t offset, const float* w, const int* part_taps,
                               float init, float* out, std::int64_t count, bool stream) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  constexpr int U = P <= 2 ? 4 : 2;
  const std::int64_t whole = count / P;  // pixels j that every part has
  std::int64_t j = 0;
  for (; j + U * lanes <= whole; j += U * lanes) {
    V acc[P][U];
    PhaseSums<P, U>(d, in, w, part_taps, init, offset + j, acc);
    StoreAllParts<P, U>(d, acc, out + j * P, stream);
  }
  for (; j + lanes <= whole; j += lanes) {
    V acc[P][1];
    PhaseSums<P, 1>(d, in, w, part_taps, init, offset + j, acc);
    StoreAllParts<P, 1>(d, acc, out + j * P, stream);
  }
  if (j * P >= count) return;
  V acc[P][1];
  PhaseSums<P, 1>(d, in, w, part_taps, init, offset + j, acc);
  HWY_ALIGN float buffer[P * HWY_MAX_BYTES / sizeof(float)];
  StoreParts<P, 1>(d, acc, 0, buffer);
  for (std::int64_t i = 0; i < count - j * P; ++i) out[j * P + i] = buffer[i];
}

// More than four parts (x strides over 4): each part's vector through a buffer, scattered element by element.
HWY_INLINE void PlanarRowManyParts(const float* const* in, std::int64_t offset, const float* w, const int* part_taps,
                                   int parts, float init, float* out, std::int64_t count) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  HWY_ALIGN float buffer[HWY_MAX_BYTES / sizeof(float)];
  for (std::int64_t j = 0; j * parts < count; j += lanes) {
    for (int q = 0; q < parts; ++q) {
      V acc[1][1];
      PhaseSums<1, 1>(d, in, w, part_taps + q, init, offset + j, acc);
      hn::Store(acc[0][0], d, buffer);
      for (std::int64_t i = 0; i < lanes && (j + i) * parts + q < count; ++i) out[(j + i) * parts + q] = buffer[i];
    }
  }
}

// R rows of one part (a convolution), vector by vector along them: the sums of R rows' vectors at pixel j are R
// chains of multiply-adds. A row shorter than U = 4 vectors had computed each of its vectors as one chain, every
// multiply-add waiting on the one before: dw_atrous_r12 (channels_first, 33-pixel rows, 9 taps) spent half its time
// there. The last vector of each row is stored partially (with masks where the target has them).
template <int R>
HWY_INLINE void PlanarRowBlock(const float* const* in, std::int64_t offset, std::int64_t in_row_stride, const float* w,
                               int taps, float init, float* out, std::int64_t out_row_stride, std::int64_t count) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t j = 0; j < count; j += lanes) {
    V acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = hn::Set(d, init);
    for (int t = 0; t < taps; ++t) {
      const V wv = hn::Set(d, w[t]);
      const float* HWY_RESTRICT p = in[t] + offset + j;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(wv, hn::LoadU(d, p + r * in_row_stride), acc[r]);
    }
    const std::int64_t left = count - j;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if (left >= lanes) {
        hn::StoreU(acc[r], d, out + r * out_row_stride + j);
      } else {
        StorePartial(d, acc[r], out + r * out_row_stride + j, static_cast<size_t>(left));
      }
    }
  }
}

template <int P>
void PlanarRowsParts(const float* const* in, std::int64_t in_row_stride, const float* w, const int* part_taps,
                     int parts, float init, float* out, std::int64_t out_row_stride, std::int64_t rows,
                     std::int64_t count, bool stream) {
  std::int64_t r = 0;
  if constexpr (P == 1) {
    const D d;
    const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
    if (count < 4 * lanes) {  // short rows: across them (PlanarRowBlock); long ones below
      const int taps = part_taps[1];
      for (; r + 8 <= rows; r += 8) {
        PlanarRowBlock<8>(in, r * in_row_stride, in_row_stride, w, taps, init, out + r * out_row_stride,
                          out_row_stride, count);
      }
      if (r + 4 <= rows) {
        PlanarRowBlock<4>(in, r * in_row_stride, in_row_stride, w, taps, init, out + r * out_row_stride,
                          out_row_stride, count);
        r += 4;
      }
      if (r + 2 <= rows) {
        PlanarRowBlock<2>(in, r * in_row_stride, in_row_stride, w, taps, init, out + r * out_row_stride,
                          out_row_stride, count);
        r += 2;
      }
      if (r < rows) {
        PlanarRowBlock<1>(in, r * in_row_stride, in_row_stride, w, taps, init, out + r * out_row_stride,
                          out_row_stride, count);
        return;
      }
    }
  }
  for (; r < rows; ++r) {
    if constexpr (P == 0) {
      PlanarRowManyParts(in, r * in_row_stride, w, part_taps, parts, init, out + r * out_row_stride, count);
    } else {
      PlanarRowParts<P>(in, r * in_row_stride, w, part_taps, init, out + r * out_row_stride, count, stream);
    }
  }
}

void PlanarRows(const float* const* in, std::int64_t in_row_stride, const float* w, const int* part_taps, int parts,
                float init, float* out, std::int64_t out_row_stride, std::int64_t rows, std::int64_t count,
                bool stream) {
  using Fn = void (*)(const float* const*, std::int64_t, const float*, const int*, int, float, float*, std::int64_t,
                      std::int64_t, std::int64_t, bool);
  static constexpr Fn kByParts[5] = {PlanarRowsParts<0>, PlanarRowsParts<1>, PlanarRowsParts<2>, PlanarRowsParts<3>,
                                     PlanarRowsParts<4>};
  kByParts[parts <= 4 ? parts : 0](in, in_row_stride, w, part_taps, parts, init, out, out_row_stride, rows, count,
                                   stream);
}

// Lane-weight rows (KernelSet::planar_lane_rows). On Zen 1 a 256-bit load takes both load ports for a cycle, so
// with one load per multiply-add the loads are the limit: the weight vectors and row pointers of up to
// kMaxLaneTaps taps are kept in registers (the tap count a template argument) rather than reloaded for every
// group of vectors, which had made dw_up2's kernel 1.35x slower. More taps loop over them from memory (T = 0).
constexpr int kMaxLaneTaps = 8;

template <int T>
struct LaneTaps {  // the taps of a call: T of them, or `taps` with T = 0
  const float* const* in;
  const float* w;
  int taps;
};

// The sums of U vectors of pixels from x (the row offset included in x).
template <int T, int U>
HWY_INLINE void LaneWeightSums(const D d, const float* const (&in)[T > 0 ? T : 1], const V (&w)[T > 0 ? T : 1],
                               const LaneTaps<T>& call, float init, std::int64_t x, V (&acc)[U]) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u) acc[u] = hn::Set(d, init);
  if constexpr (T > 0) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[u] = hn::MulAdd(w[t], hn::LoadU(d, in[t] + x + u * lanes), acc[u]);
    }
  } else {
    for (int t = 0; t < call.taps; ++t) {
      const V wv = hn::Load(d, call.w + t * lanes);
      const float* HWY_RESTRICT p = call.in[t] + x;
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[u] = hn::MulAdd(wv, hn::LoadU(d, p + u * lanes), acc[u]);
    }
  }
}

// Vectors [0, U) of acc to out[0, U * lanes): streamed (out vector-aligned) or not.
template <int U>
HWY_INLINE void StoreLaneVectors(const D d, const V (&acc)[U], float* HWY_RESTRICT out, bool stream) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  if (stream) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) hn::Stream(acc[u], d, out + u * lanes);
  } else {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) hn::StoreU(acc[u], d, out + u * lanes);
  }
}

// The first min(left, lanes) lanes of v to out: a row's last vector, partial through a buffer.
HWY_INLINE void StoreLaneVector(const D d, V v, float* HWY_RESTRICT out, std::int64_t left, bool stream) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  if (left >= lanes) {
    const V acc[1] = {v};
    return StoreLaneVectors<1>(d, acc, out, stream);
  }
  HWY_ALIGN float buffer[HWY_MAX_BYTES / sizeof(float)];
  hn::Store(v, d, buffer);
  for (std::int64_t i = 0; i < left; ++i) out[i] = buffer[i];
}

// One row: U = 4 vectors at a time (four chains of multiply-adds), then single vectors, the last partial one through
// a buffer.
template <int T>
HWY_INLINE void PlanarLaneRow(const LaneTaps<T>& call, std::int64_t offset, float init, float* HWY_RESTRICT out,
                              std::int64_t count, bool stream) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  constexpr int kRegs = T > 0 ? T : 1;
  const float* in[kRegs];
  V w[kRegs];
  for (int t = 0; t < kRegs; ++t) {
    in[t] = T > 0 ? call.in[t] + offset : nullptr;
    w[t] = T > 0 ? hn::Load(d, call.w + t * lanes) : hn::Zero(d);
  }
  const std::int64_t x_offset = T > 0 ? 0 : offset;
  constexpr int U = 4;
  std::int64_t x = 0;
  for (; x + U * lanes <= count; x += U * lanes) {
    V acc[U];
    LaneWeightSums<T, U>(d, in, w, call, init, x_offset + x, acc);
    StoreLaneVectors<U>(d, acc, out + x, stream);
  }
  for (; x < count; x += lanes) {
    V acc[1];
    LaneWeightSums<T, 1>(d, in, w, call, init, x_offset + x, acc);
    StoreLaneVector(d, acc[0], out + x, count - x, stream);
  }
}

template <int T>
void PlanarLaneRowsTaps(const float* const* in, std::int64_t in_row_stride, const float* w, int taps, float init,
                        float* out, std::int64_t out_row_stride, std::int64_t rows, std::int64_t count, bool stream) {
  const LaneTaps<T> call{in, w, taps};
  for (std::int64_t r = 0; r < rows; ++r) {
    PlanarLaneRow<T>(call, r * in_row_stride, init, out + r * out_row_stride, count, stream);
  }
}

void PlanarLaneRows(const float* const* in, std::int64_t in_row_stride, const float* w, int taps, float init,
                    float* out, std::int64_t out_row_stride, std::int64_t rows, std::int64_t count, bool stream) {
  using Fn = void (*)(const float* const*, std::int64_t, const float*, int, float, float*, std::int64_t, std::int64_t,
                      std::int64_t, bool);
  static constexpr Fn kByTaps[kMaxLaneTaps + 1] = {
      PlanarLaneRowsTaps<0>, PlanarLaneRowsTaps<1>, PlanarLaneRowsTaps<2>, PlanarLaneRowsTaps<3>, PlanarLaneRowsTaps<4>,
      PlanarLaneRowsTaps<5>, PlanarLaneRowsTaps<6>, PlanarLaneRowsTaps<7>, PlanarLaneRowsTaps<8>};
  kByTaps[taps <= kMaxLaneTaps ? taps : 0](in, in_row_stride, w, taps, init, out, out_row_stride, rows, count, stream);
}

// Row pairs (KernelSet::planar_lane_row_pairs): two output rows that read the same input rows with different
// weights, each input vector loaded once for both. The T taps' weights of both rows stay in registers (2T of them,
// with 2U accumulators: T <= kMaxPairedLaneTaps keeps them within AVX2's 16).
template <int T>
void PlanarLaneRowPairsTaps(const float* const* in_rows, std::int64_t in_row_stride, const float* w_a,
                            const float* w_b, float init, float* out_a, float* out_b, std::int64_t out_row_stride,
                            std::int64_t rows, std::int64_t count, bool stream) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  V wa[T], wb[T];
  for (int t = 0; t < T; ++t) wa[t] = hn::Load(d, w_a + t * lanes), wb[t] = hn::Load(d, w_b + t * lanes);
  constexpr int U = 2;
  const auto sums = [&](const float* const (&in)[T], std::int64_t x, auto& a, auto& b) {
    constexpr int kU = static_cast<int>(sizeof(a) / sizeof(a[0]));
#pragma GCC unroll 4
    for (int u = 0; u < kU; ++u) a[u] = hn::Set(d, init), b[u] = a[u];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
      for (int u = 0; u < kU; ++u) {
        const V v = LoadOnce(d, in[t] + x + u * lanes);
        a[u] = hn::MulAdd(wa[t], v, a[u]);
        b[u] = hn::MulAdd(wb[t], v, b[u]);
      }
    }
  };
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in[T];
    for (int t = 0; t < T; ++t) in[t] = in_rows[t] + r * in_row_stride;
    float* const row_a = out_a + r * out_row_stride;
    float* const row_b = out_b + r * out_row_stride;
    std::int64_t x = 0;
    for (; x + U * lanes <= count; x += U * lanes) {
      V a[U], b[U];
      sums(in, x, a, b);
      StoreLaneVectors<U>(d, a, row_a + x, stream);
      StoreLaneVectors<U>(d, b, row_b + x, stream);
    }
    for (; x < count; x += lanes) {
      V a[1], b[1];
      sums(in, x, a, b);
      StoreLaneVector(d, a[0], row_a + x, count - x, stream);
      StoreLaneVector(d, b[0], row_b + x, count - x, stream);
    }
  }
}

void PlanarLaneRowPairs(const float* const* in, std::int64_t in_row_stride, const float* w_a, const float* w_b,
                        int taps, float init, float* out_a, float* out_b, std::int64_t out_row_stride,
                        std::int64_t rows, std::int64_t count, bool stream) {
  using Fn = void (*)(const float* const*, std::int64_t, const float*, const float*, float, float*, float*,
                      std::int64_t, std::int64_t, std::int64_t, bool);
  static_assert(kMaxPairedLaneTaps == 4);
  static constexpr Fn kByTaps[kMaxPairedLaneTaps] = {PlanarLaneRowPairsTaps<1>, PlanarLaneRowPairsTaps<2>,
                                                     PlanarLaneRowPairsTaps<3>, PlanarLaneRowPairsTaps<4>};
  kByTaps[std::clamp(taps, 1, kMaxPairedLaneTaps) - 1](in, in_row_stride, w_a, w_b, init, out_a, out_b,
                                                        out_row_stride, rows, count, stream);
}

// The vector of row[at, at + lanes), zeros for the lanes outside row[0, width), reading nothing outside it (expanded
// rows and panels: the edges of an input row).
HWY_INLINE V LoadInside(const D d, const float* row, std::int64_t width, std::int64_t at) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t lo = std::clamp<std::int64_t>(-at, 0, lanes), hi = std::clamp<std::int64_t>(width - at, 0, lanes);
  if (lo == 0 && hi == lanes) return hn::LoadU(d, row + at);
  if (lo >= hi) return hn::Zero(d);
  return LoadRange(d, row + at, static_cast<size_t>(lo), static_cast<size_t>(hi));
}

// The positions p whose vector row[offset + p, offset + p + lanes) lies wholly inside row[0, width): [first,
// last], empty when first > last. Reads there take plain loads; only those at the edges need LoadInside's checks,
// which on every vector had cost dw_up2 (channels_first, expanded rows) 6-9% of its time at 1 thread, 4% at 2
// (timed in turns).
struct VectorsInside {
  std::int64_t first, last;
  VectorsInside(std::int64_t lanes, std::int64_t width, std::int64_t offset)
      : first(-offset), last(width - lanes - offset) {}
  bool contains(std::int64_t p) const { return p >= first && p <= last; }
  void intersect(const VectorsInside& other) {
    first = std::max(first, other.first), last = std::min(last, other.last);
  }
};

void ExpandRow(const float* row, std::int64_t width, std::int64_t first, const std::int64_t* base, int parts,
               float* out, std::int64_t n) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  VectorsInside inside(lanes, width, first + base[0]);  // vectors i that read every part inside the row
  for (int q = 1; q < parts; ++q) inside.intersect(VectorsInside(lanes, width, first + base[q]));
  const auto at = [&](int q, std::int64_t i) { return first + base[q] + i; };
  // Part q's vector i: a plain load inside the row, edge checks only at its edges.
  const auto part = [&](int q, std::int64_t i) {
    return inside.contains(i) ? hn::LoadU(d, row + at(q, i)) : LoadInside(d, row, width, at(q, i));
  };
  std::int64_t i = 0;
  if (parts == 2) {
    for (; i + lanes <= n; i += lanes) {
      StoreInterleavedParts(d, 2, part(0, i), part(1, i), hn::Zero(d), hn::Zero(d), out + 2 * i);
    }
  } else if (parts == 4) {
    for (; i + lanes <= n; i += lanes) {
      hn::StoreInterleaved4(part(0, i), part(1, i), part(2, i), part(3, i), d, out + 4 * i);
    }
  }
  for (; i < n; ++i)
    for (int q = 0; q < parts; ++q) {
      const std::int64_t a = at(q, i);
      out[parts * i + q] = a >= 0 && a < width ? row[a] : 0.0f;
    }
}

// Planar gemm (PlanarGemmCall): M output channels x NV vectors of consecutive pixels. Each step broadcasts M
// packed weights and loads NV vectors of one input channel's row, the transpose of GemmTile's roles, so that
// channels_first tensors need no relayout. `n` holds the pixels of each vector when the tile is the partial last
// one of a run (null: all full); vectors past the run compute on whatever a[t] holds there and are not stored.
// The sums of taps [t_begin, t_end) for rows `block * M + r`, pixels x + v * lanes + lane, added to acc.
// (Every t_step-th tap from t_begin: one of Winograd's transformed rows, PlanarGemmGroups.)
template <int M, int NV>
HWY_INLINE void PlanarGemmSums(const D d, const PlanarGemmCall& call, std::int64_t x, int block, int t_begin,
                               int t_end, V (&acc)[M][NV], int t_step = 1) {
  const size_t lanes = hn::Lanes(d);
  const std::int64_t b_offset = block * call.b_block_stride;
  for (int t = t_begin; t < t_end; t += t_step) {
    const float* HWY_RESTRICT a = call.a[t] + x;
    const float* HWY_RESTRICT b = call.b[t] + b_offset;
    // Two channels per iteration, as the gemm tiles (GemmProducts): half the loop's counting and branching per
    // multiply-add. U-Net up4, CycleGAN, HiFi-GAN up3 and WaveNet channels_first 1.01-1.03x as fast at 1 thread,
    // the same at 2 (abm, in turns, stop 41).
#pragma GCC unroll 2
    for (std::int64_t q = 0; q < call.k; ++q) {
      V av[NV];
      for (int v = 0; v < NV; ++v) av[v] = hn::LoadU(d, a + q * call.a_channel_stride + v * lanes);
      if (call.prefetch_channels > 0 && q + call.prefetch_channels < call.k) {
        const float* ahead = a + (q + call.prefetch_channels) * call.a_channel_stride;
        for (int v = 0; v < NV; ++v) hwy::Prefetch(ahead + v * lanes);
      }
      const float* HWY_RESTRICT bq = b + q * call.b_stride;
      for (int r = 0; r < M; ++r) {
        const V bv = hn::Set(d, bq[r]);
        for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(bv, av[v], acc[r][v]);
      }
    }
  }
}

// The bias of each of the block's m rows, or zero.
template <int M, int NV>
HWY_INLINE void PlanarGemmInit(const D d, const PlanarGemmCall& call, int block, int m, V (&acc)[M][NV]) {
  for (int r = 0; r < M; ++r) {
    const V init = call.init != nullptr && r < m ? hn::Set(d, call.init[block * M + r]) : hn::Zero(d);
    for (int v = 0; v < NV; ++v) acc[r][v] = init;
  }
}

template <int M, int NV>
HWY_INLINE void PlanarGemmTile(const D d, const PlanarGemmCall& call, std::int64_t x, const size_t* n,
                               int block) {
  const size_t lanes = hn::Lanes(d);
  // Block `block` of M rows: the last one has call.m.
  const int m = block == call.blocks - 1 ? call.m : M;
  float* const c_block = call.c + block * M * call.c_channel_stride + x;
  V acc[M][NV];
  if (call.accumulate) {
    for (int r = 0; r < M; ++r) {
      const float* c = c_block + (r < m ? r : 0) * call.c_channel_stride;
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = n == nullptr || n[v] == lanes ? hn::LoadU(d, c + v * lanes)
                    : n[v] > 0                    ? LoadPartial(d, c + v * lanes, n[v])
                                                  : hn::Zero(d);
      }
    }
  } else {
    PlanarGemmInit<M, NV>(d, call, block, m, acc);
  }
  PlanarGemmSums<M, NV>(d, call, x, block, 0, call.ntaps, acc);
  // Unrolled, so that the accumulators stay in registers: a loop over the block's m rows had stored them all to the
  // stack after the sums and reloaded each one (12% of WaveNet's samples, channels_first, in those reloads).
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    if (r >= m) break;
    float* c = c_block + r * call.c_channel_stride;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (n == nullptr || n[v] == lanes) {
        if (call.stream && reinterpret_cast<std::uintptr_t>(c + v * lanes) % (lanes * sizeof(float)) == 0) {
          hn::Stream(acc[r][v], d, c + v * lanes);
        } else {
          hn::StoreU(acc[r][v], d, c + v * lanes);
        }
      } else if (n[v] > 0) {
        StorePartial(d, acc[r][v], c + v * lanes, n[v]);
      }
    }
  }
}

// Vector v of every part, interleaved into out[0, parts * lanes); the parts are part_stride floats apart. Up to 8
// parts: 8 (Winograd F(4, 2) of two phases) as 4 pairs of floats interleaved as doubles, each pair interleaved first.
HWY_INLINE void StorePartsInterleaved(const D d, const float* parts_at, size_t part_stride, int parts, float* out) {
  const auto part = [&](int q) { return q < parts ? hn::Load(d, parts_at + q * part_stride) : hn::Zero(d); };
  if (parts <= 4) return StoreInterleavedParts(d, parts, part(0), part(1), part(2), part(3), out);
  const size_t lanes = hn::Lanes(d);
#if HWY_TARGET == HWY_SCALAR
  for (int q = 0; q < 8; ++q) out[q] = parts_at[q * part_stride];
  (void)lanes;
#else
  HWY_ALIGN float pairs[4 * 2 * (HWY_MAX_BYTES / sizeof(float))];  // pair k: parts 2k and 2k + 1 interleaved
  for (int k = 0; k < 4; ++k) {
    StoreInterleavedParts(d, 2, part(2 * k), part(2 * k + 1), part(0), part(0), pairs + 2 * k * lanes);
  }
  const hn::Repartition<double, D> dd;
  const auto half = [&](int k, size_t h) {
    return hn::Load(dd, reinterpret_cast<const double*>(pairs + (2 * k + h) * lanes));
  };
  for (size_t h = 0; h < 2; ++h) {
    hn::StoreInterleaved4(half(0, h), half(1, h), half(2, h), half(3, h), dd,
                          reinterpret_cast<double*>(out + 4 * h * lanes));
  }
#endif
}

// Winograd's groups of n = call.winograd pixels of a part with `taps` x taps (PlanarGemmCall::winograd): the sums Ms
// of its n + taps - 1 transformed rows (every (n + taps - 1)-th tap from t_begin + s) through the stack, then pixel
// k of each group, init + sum of A[k][s] Ms, passed to store(k, y):
//   F(4, 2):  M0 + M1 + M2 + M3,  M1 - M2 + 2 M3,  M1 + M2 + 4 M3,  M1 - M2 + 8 M3 + M4;
//   F(2, 2):  M0 + M1,  M1 + M2;   F(n, 1):  Mk.
// `init` holds the bias (or zero) of each row.
template <int M, int NV, class Store>
HWY_INLINE void PlanarGemmGroups(const D d, const PlanarGemmCall& call, std::int64_t x, int block, int t_begin,
                                 int t_end, int taps, const V (&init)[M][NV], const Store& store) {
  const size_t lanes = hn::Lanes(d);
  constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);
  const int n = call.winograd, streams = n + taps - 1;
  HWY_ALIGN float sums[(kMaxWinogradGroup + 1) * M * NV * kMaxLanes];  // [s][r][v][lane]
  for (int s = 0; s < streams; ++s) {
    V acc[M][NV];  // in registers for the sum, stored after it
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = hn::Zero(d);
    PlanarGemmSums<M, NV>(d, call, x, block, t_begin + s, t_end, acc, streams);
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < NV; ++v) hn::Store(acc[r][v], d, sums + ((s * M + r) * NV + v) * lanes);
  }
  const auto sum = [&](int s, int r, int v) { return hn::Load(d, sums + ((s * M + r) * NV + v) * lanes); };
  const V two = hn::Set(d, 2.0f), four = hn::Set(d, 4.0f), eight = hn::Set(d, 8.0f);
  V y[M][NV];
  for (int k = 0; k < n; ++k) {
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < NV; ++v) {
        if (taps == 1) {
          y[r][v] = hn::Add(init[r][v], sum(k, r, v));
        } else if (n == 2) {
          y[r][v] = hn::Add(init[r][v], hn::Add(sum(k, r, v), sum(k + 1, r, v)));
        } else {
          const V m1 = sum(1, r, v), m2 = sum(2, r, v), m3 = sum(3, r, v);
          switch (k) {
            case 0: y[r][v] = hn::Add(hn::Add(init[r][v], sum(0, r, v)), hn::Add(hn::Add(m1, m2), m3)); break;
            case 1: y[r][v] = hn::MulAdd(two, m3, hn::Add(init[r][v], hn::Sub(m1, m2))); break;
            case 2: y[r][v] = hn::MulAdd(four, m3, hn::Add(init[r][v], hn::Add(m1, m2))); break;
            default: y[r][v] = hn::MulAdd(eight, m3, hn::Add(hn::Add(init[r][v], sum(4, r, v)), hn::Sub(m1, m2)));
          }
        }
      }
    store(k, y);
  }
}

// Groups x.. along a dilation (PlanarGemmCall::winograd_step), one block's: pixel k of the tile's groups, in
// parts_buf's part k (rows r < m), goes to outputs b n d + k d + h.. of each row, h = x mod d and b = x / d (the
// tile's width divides d, so its groups are one block's).
template <int M, int NV>
HWY_INLINE void StoreDilatedGroups(const D d, const PlanarGemmCall& call, std::int64_t x, int block, int m,
                                   const float* parts_buf, size_t part_stride) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t step = call.winograd_step, n = call.winograd;
  const std::int64_t first = x / step * n * step + x % step;  // pixel 0 of the tile's first group
  HWY_ALIGN float row_buf[HWY_MAX_BYTES / sizeof(float)];
  for (int r = 0; r < m; ++r) {
    float* c = call.c + (block * M + r) * call.c_channel_stride;
    for (std::int64_t k = 0; k < n; ++k)
      for (int v = 0; v < NV; ++v) {
        const std::int64_t at = first + k * step + v * lanes, left = call.count - at;
        if (left <= 0) break;
        const V y = hn::Load(d, parts_buf + k * part_stride + (r * NV + v) * lanes);
        if (left < lanes) {
          hn::Store(y, d, row_buf);
          for (std::int64_t i = 0; i < left; ++i) c[at + i] = row_buf[i];
        } else if (call.stream && reinterpret_cast<std::uintptr_t>(c + at) % (lanes * sizeof(float)) == 0) {
          hn::Stream(y, d, c + at);
        } else {
          hn::StoreU(y, d, c + at);
        }
      }
  }
}

// A tile of every part (call.parts), its rows stored interleaved: pixels x.. of each part go to outputs
// x * parts.., of which `outputs` exist (fewer than the tile's in the last one). With Winograd x counts groups of n
// pixels, whose outputs start at x * n * parts.
template <int M, int NV>
HWY_INLINE void PlanarGemmPhasedTile(const D d, const PlanarGemmCall& call, std::int64_t x, std::int64_t outputs,
                                     int block) {
  const size_t lanes = hn::Lanes(d);
  const int m = block == call.blocks - 1 ? call.m : M;
  // The parts' accumulators, row by row: [part][r][v][lane].
  constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);
  HWY_ALIGN float parts_buf[2 * kMaxWinogradGroup * M * NV * kMaxLanes];
  const size_t part_stride = M * NV * lanes;
  const auto store_part = [&](int q, const V(&acc)[M][NV]) {
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < NV; ++v) hn::Store(acc[r][v], d, parts_buf + q * part_stride + (r * NV + v) * lanes);
  };
  for (int p = 0; p < call.parts; ++p) {
    const int t_begin = call.part_taps[p], t_end = call.part_taps[p + 1];
    V acc[M][NV];
    PlanarGemmInit<M, NV>(d, call, block, m, acc);
    if (!call.winograd) {
      PlanarGemmSums<M, NV>(d, call, x, block, t_begin, t_end, acc);
      store_part(p, acc);
      continue;
    }
    PlanarGemmGroups<M, NV>(d, call, x, block, t_begin, t_end, call.part_x_taps[p], acc,
                            [&](int k, const V(&y)[M][NV]) { store_part(k * call.parts + p, y); });
  }
  if (call.winograd_step > 0) return StoreDilatedGroups<M, NV>(d, call, x, block, m, parts_buf, part_stride);
  // The parts as stored: Winograd's groups of n pixels make n times as many, pixel i of part p being output
  // i * parts + p.
  const int stored_parts = call.winograd ? call.winograd * call.parts : call.parts;
  // A whole tile of two parts on aligned rows, streamed: interleaved in registers where the target can (AVX2,
  // SSE). Through row_buf below, each tile also stored and reloaded every output vector on its way to the streaming
  // stores: without that U-Net up4 ran 1.07-1.08x, HiFi-GAN up3 1.02-1.03x, CycleGAN 1.01-1.03x as fast (1 and 2
  // threads, in turns, Zen 1). One check for the whole tile: checked vector by vector, U-Net up4 gained 1.02-1.04x.
  float* const c_block = call.c + block * M * call.c_channel_stride + x * stored_parts;
  if (kInterleavesTwo && stored_parts == 2 && call.stream && outputs == 2 * NV * static_cast<std::int64_t>(lanes) &&
      (reinterpret_cast<std::uintptr_t>(c_block) | (call.c_channel_stride * sizeof(float))) % (lanes * sizeof(float)) ==
          0) {
    for (int r = 0; r < m; ++r)
      for (int v = 0; v < NV; ++v) {
        const float* at = parts_buf + (r * NV + v) * lanes;
        StreamTwoParts(d, hn::Load(d, at), hn::Load(d, at + part_stride),
                       c_block + r * call.c_channel_stride + v * 2 * lanes);
      }
    return;
  }
  const auto parts = static_cast<std::int64_t>(stored_parts);
  const auto vector_outputs = static_cast<std::int64_t>(lanes) * parts;
  HWY_ALIGN float row_buf[2 * kMaxWinogradGroup * kMaxLanes];
  for (int r = 0; r < m; ++r) {
    float* c = call.c + (block * M + r) * call.c_channel_stride + x * parts;
    for (int v = 0; v < NV; ++v) {
      const std::int64_t left = outputs - v * vector_outputs;
      if (left <= 0) break;
      const float* at = parts_buf + (r * NV + v) * lanes;
      if (left >= vector_outputs && !call.stream) {
        StorePartsInterleaved(d, at, part_stride, stored_parts, c + v * vector_outputs);
        continue;
      }
      StorePartsInterleaved(d, at, part_stride, stored_parts, row_buf);
      float* out = c + v * vector_outputs;
      if (left >= vector_outputs) {  // streamed where aligned
        const bool aligned = reinterpret_cast<std::uintptr_t>(out) % (lanes * sizeof(float)) == 0;
        for (std::int64_t i = 0; i < parts; ++i) {
          if (aligned) {
            hn::Stream(hn::Load(d, row_buf + i * lanes), d, out + i * lanes);
          } else {
            hn::StoreU(hn::Load(d, row_buf + i * lanes), d, out + i * lanes);
          }
        }
      } else {
        const std::int64_t n = left < vector_outputs ? left : vector_outputs;
        for (std::int64_t i = 0; i < n; ++i) out[i] = row_buf[i];
      }
    }
  }
}

// Two parts whose taps read the same input columns, each with its own weights (PlanarGemmCall::shared_parts: a
// transposed convolution whose kernel equals its stride along x, U-Net's and 3D U-Net's up-samplings): R output
// channels of both parts from one pass over the taps, each input vector loaded once for both, and the two parts
// interleaved in registers into the destination. PlanarGemmPhasedTile computes each part on its own, through a
// buffer on the stack, and interleaves them from there. Rows r0 .. r0 + R - 1 of a whole block, a whole tile.
template <int M, int R, int NV>
HWY_INLINE void PlanarSharedPartsTile(const D d, const PlanarGemmCall& call, std::int64_t x, int block, int r0) {
  const size_t lanes = hn::Lanes(d);
  V acc0[R][NV], acc1[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const V init = call.init != nullptr ? hn::Set(d, call.init[block * M + r0 + r]) : hn::Zero(d);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc0[r][v] = acc1[r][v] = init;
  }
  const int t0 = call.part_taps[0], t1 = call.part_taps[1];
  const std::int64_t b_offset = block * call.b_block_stride + r0;
  for (int i = 0; i < t1 - t0; ++i) {
    const float* HWY_RESTRICT a = call.a[t0 + i] + x;
    const float* HWY_RESTRICT b0 = call.b[t0 + i] + b_offset;
    const float* HWY_RESTRICT b1 = call.b[t1 + i] + b_offset;
    // Two channels per iteration (see PlanarGemmSums): 3D U-Net's up-sampling channels_first 1.02-1.03x as fast at 1
    // thread and 1.01-1.03x at 2, U-Net up4 1.01x (abm, in turns, stop 41). Unrolled 4 times: no better.
#pragma GCC unroll 2
    for (std::int64_t q = 0; q < call.k; ++q) {
      V av[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) av[v] = hn::LoadU(d, a + q * call.a_channel_stride + v * lanes);
      const float* HWY_RESTRICT bq0 = b0 + q * call.b_stride;
      const float* HWY_RESTRICT bq1 = b1 + q * call.b_stride;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const V w0 = hn::Set(d, bq0[r]), w1 = hn::Set(d, bq1[r]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          acc0[r][v] = hn::MulAdd(w0, av[v], acc0[r][v]);
          acc1[r][v] = hn::MulAdd(w1, av[v], acc1[r][v]);
        }
      }
    }
  }
  float* const c = call.c + (block * M + r0) * call.c_channel_stride + 2 * x;
  const bool stream = call.stream && (reinterpret_cast<std::uintptr_t>(c) | (call.c_channel_stride * sizeof(float))) %
                                             (lanes * sizeof(float)) == 0;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* out = c + r * call.c_channel_stride + 2 * v * lanes;
      V first, second;
      InterleaveTwo(d, acc0[r][v], acc1[r][v], first, second);
      if (stream) {
        hn::Stream(first, d, out);
        hn::Stream(second, d, out + lanes);
      } else {
        hn::StoreU(first, d, out);
        hn::StoreU(second, d, out + lanes);
      }
    }
  }
}

// Whether a tile of M rows and NV vectors can be computed as two halves of shared parts (PlanarSharedPartsTile): the
// parts interleaved in registers, and both halves' accumulators, their vectors and two weights in the registers.
template <int M, int NV>
constexpr bool kSharesParts = kInterleavesTwo && M % 2 == 0 && M * NV + NV + 2 <= kRegisters;

// Output channels per planar tile: as TileRows, but 8 for two vectors (not 14, AVX-512), which suits the 32- and
// 64-channel decoder layers with 32-pixel phases (3D U-Net) and measured 170 GFLOP/s from L1, the best of the four.
// With 16 registers, three vectors get 4 rows (12 accumulators, 3 pixel vectors and a broadcast: every register; see
// planar_gemm.cpp's choose_vectors for where it pays).
constexpr int PlanarRows(int vectors) {
  return vectors == 2 && TileRows(2) > 8   ? 8
         : vectors == 3 && kRegisters == 16 ? 4
                                            : TileRows(vectors);
}

// A run of call.count pixels: whole tiles of NV vectors, then the rest in the fewest vectors that hold it. Every
// block of rows computes a tile before the next tile starts, so the tile's input columns are read from L1 by all of
// them (blocks outermost, each block swept the whole run's panel from L2).
template <int NV>
HWY_NOINLINE void PlanarGemm(const PlanarGemmCall& call) {
  const D d;
  constexpr int M = PlanarRows(NV);
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  if (call.winograd_step > 0) {  // groups along a dilation: blocks of step groups, whole tiles
    const std::int64_t block_outputs = call.winograd * call.winograd_step;
    const std::int64_t groups = (call.count + block_outputs - 1) / block_outputs * call.winograd_step;
    for (std::int64_t x = 0; x < groups; x += NV * lanes) {
      for (int block = 0; block < call.blocks; ++block) PlanarGemmPhasedTile<M, NV>(d, call, x, 0, block);
    }
    return;
  }
  if (call.parts > 1 || call.winograd) {
    // x counts pixels of each part, or Winograd's groups of them (call.winograd stored parts per part).
    const std::int64_t parts = call.winograd ? call.winograd * call.parts : call.parts;
    const std::int64_t tile_outputs = NV * lanes * parts;
    for (std::int64_t x = 0; x * parts < call.count; x += NV * lanes) {
      const std::int64_t outputs = std::min(tile_outputs, call.count - x * parts);
      for (int block = 0; block < call.blocks; ++block) {
        if constexpr (kSharesParts<M, NV>) {
          if (call.shared_parts && outputs == tile_outputs && (block < call.blocks - 1 || call.m == M)) {
            PlanarSharedPartsTile<M, M / 2, NV>(d, call, x, block, 0);
            PlanarSharedPartsTile<M, M / 2, NV>(d, call, x, block, M / 2);
            continue;
          }
        }
        PlanarGemmPhasedTile<M, NV>(d, call, x, outputs, block);
      }
    }
    return;
  }
  std::int64_t x = 0;
  // Streamed rows of a tile that are not whole cache lines (AVX2's 4 x 3 tile: 96 bytes) are followed by the tiles
  // of the next blocks before the next tile of the row completes the line: each block then computes the fewest
  // tiles that end on a line (two of 4 x 3). Non-temporal stores collect in a few write-combining buffers, and a
  // line left half written leaves memory as a partial write; WaveNet channels_first 1.06x (1 thread), 1.03x (2).
  const std::int64_t tile_bytes = NV * lanes * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t line_tiles = call.stream ? kLineBytes / std::gcd(kLineBytes, tile_bytes) : 1;
  for (; line_tiles > 1 && x + line_tiles * NV * lanes <= call.count; x += line_tiles * NV * lanes) {
    for (int block = 0; block < call.blocks; ++block) {
      for (std::int64_t i = 0; i < line_tiles; ++i) PlanarGemmTile<M, NV>(d, call, x + i * NV * lanes, nullptr, block);
    }
  }
  for (; x + NV * lanes <= call.count; x += NV * lanes) {
    for (int block = 0; block < call.blocks; ++block) PlanarGemmTile<M, NV>(d, call, x, nullptr, block);
  }
  const std::int64_t left = call.count - x;
  if (left == 0) return;
  size_t n[NV];
  for (int v = 0; v < NV; ++v) {
    const std::int64_t in_vector = left - v * lanes;
    n[v] = static_cast<size_t>(in_vector <= 0 ? 0 : (in_vector < lanes ? in_vector : lanes));
  }
  const std::int64_t vectors = (left + lanes - 1) / lanes;
  for (int block = 0; block < call.blocks; ++block) {
    // Fewer vectors than NV: the same M rows over fewer columns (the weights are packed for M rows).
    if constexpr (NV >= 2) {
      if (vectors == 1) {
        PlanarGemmTile<M, 1>(d, call, x, n, block);
        continue;
      }
    }
    if constexpr (NV >= 3) {
      if (vectors == 2) {
        PlanarGemmTile<M, 2>(d, call, x, n, block);
        continue;
      }
    }
    if constexpr (NV >= 4) {
      if (vectors == 3) {
        PlanarGemmTile<M, 3>(d, call, x, n, block);
        continue;
      }
    }
    PlanarGemmTile<M, NV>(d, call, x, n, block);
  }
}

// Interleaves pixels [j, j_end) of the parts into out (element j * parts + q), whole vectors of every part at a time;
// returns the first pixel it left (fewer than a vector remain).
HWY_INLINE std::int64_t InterleaveVectors(const float* const* part, int parts, float* out, std::int64_t j,
                                          std::int64_t j_end) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  if (parts == 2) {
    for (; j + lanes <= j_end; j += lanes) {
      StoreInterleavedParts(d, 2, hn::LoadU(d, part[0] + j), hn::LoadU(d, part[1] + j), hn::Zero(d), hn::Zero(d),
                            out + j * 2);
    }
  } else if (parts == 3) {
    for (; j + lanes <= j_end; j += lanes) {
      hn::StoreInterleaved3(hn::LoadU(d, part[0] + j), hn::LoadU(d, part[1] + j), hn::LoadU(d, part[2] + j), d,
                            out + j * 3);
    }
  } else if (parts == 4) {
    for (; j + lanes <= j_end; j += lanes) {
      hn::StoreInterleaved4(hn::LoadU(d, part[0] + j), hn::LoadU(d, part[1] + j), hn::LoadU(d, part[2] + j),
                            hn::LoadU(d, part[3] + j), d, out + j * 4);
    }
  }
  return j;
}

// out[i] = in[i] for i < count, with non-temporal stores where out is vector-aligned.
HWY_INLINE void StreamCopy(const float* HWY_RESTRICT in, float* HWY_RESTRICT out, std::int64_t count) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  std::int64_t i = 0;
  for (; i < count && reinterpret_cast<std::uintptr_t>(out + i) % (lanes * sizeof(float)) != 0; ++i) out[i] = in[i];
  for (; i + lanes <= count; i += lanes) hn::Stream(hn::LoadU(d, in + i), d, out + i);
  for (; i < count; ++i) out[i] = in[i];
}

void AddRow(const float* in, float* out, std::int64_t count) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  std::int64_t i = 0;
  for (; i + lanes <= count; i += lanes) hn::StoreU(hn::Add(hn::LoadU(d, out + i), hn::LoadU(d, in + i)), d, out + i);
  if (i < count) {
    const auto rest = static_cast<size_t>(count - i);
    StorePartial(d, hn::Add(LoadPartial(d, out + i, rest), LoadPartial(d, in + i, rest)), out + i, rest);
  }
}

void Interleave(const float* const* part, int parts, float* out, std::int64_t count, bool stream) {
  const std::int64_t whole = count / parts;  // pixels j for which every part has an element
  std::int64_t j = 0;
  // Vector code for 2 to 4 parts; the others element by element below (streaming them had never ended).
  if (!stream || parts < 2 || parts > 4) {
    j = InterleaveVectors(part, parts, out, 0, whole);
  } else {
    // Through an L1 buffer, streamed out: the row's lines are not read from memory before being written.
    constexpr std::int64_t kChunk = 256;  // pixels
    HWY_ALIGN float buffer[kChunk * 4];
    while (whole - j >= static_cast<std::int64_t>(hn::Lanes(D()))) {
      const std::int64_t j_end = std::min(whole, j + kChunk);
      const float* shifted[4];
      for (int q = 0; q < parts; ++q) shifted[q] = part[q] + j;
      const std::int64_t done = InterleaveVectors(shifted, parts, buffer, 0, j_end - j);
      StreamCopy(buffer, out + j * parts, done * parts);
      j += done;
    }
  }
  for (; j * parts < count; ++j)
    for (int q = 0; q < parts && j * parts + q < count; ++q) out[j * parts + q] = part[q][j];
}

void PanelRows(const float* const* from, std::int64_t slots, std::int64_t from_stride, float* to,
               std::int64_t to_stride, std::int64_t rows, std::int64_t zeros_before, std::int64_t inside,
               std::int64_t window) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t all = slots * rows;
  // The rows are planes apart, beyond what the hardware prefetchers follow, and each read waited on L3 or memory
  // (the copy was 16-24% of 3D U-Net's and the volumetric decoder's time in profiles): their lines are fetched this
  // many rows ahead, across slots (10-13% after; 24 rows ahead was no better).
  constexpr std::int64_t kAhead = 12;
  const VectorsInside interior(lanes, inside, -zeros_before);
  for (std::int64_t i = 0; i < all; ++i) {
    if (i + kAhead < all) {
      const float* next = from[(i + kAhead) / rows] + (i + kAhead) % rows * from_stride;
      for (std::int64_t c = 0; c < inside; c += 64 / static_cast<std::int64_t>(sizeof(float))) hwy::Prefetch(next + c);
    }
    const float* row = from[i / rows] + i % rows * from_stride;  // column v of the window: row[v - zeros_before]
    float* out = to + i * to_stride;
    for (std::int64_t v = 0; v < window; v += lanes) {
      const V columns = interior.contains(v) ? hn::LoadU(d, row + v - zeros_before)
                                             : LoadInside(d, row, inside, v - zeros_before);
      hn::StoreU(columns, d, out + v);
    }
  }
}

// The transformed rows of winograd_rows from d_u = x[n j + u] (lane j), stream s at out + s * stream_stride:
//   F(4, 2):  WinogradF42Input (simd_common-inl.h; the packed weights carry its factors, see planar_gemm.cpp);
//   F(2, 2):  d0 - d1,  d1,  d2 - d1;   F(n, 1):  d0 .. d(n-1).
HWY_INLINE void StoreFours(const D d, V d0, V d1, V d2, V d3, V d4, float* out, std::int64_t stream_stride) {
  V v[5];
  WinogradF42Input(d, d0, d1, d2, d3, d4, v);
  for (int s = 0; s < 5; ++s) hn::StoreU(v[s], d, out + s * stream_stride);
}
HWY_INLINE void StoreTwos(const D d, V d0, V d1, V d2, float* out, std::int64_t stream_stride) {
  hn::StoreU(hn::Sub(d0, d1), d, out);
  hn::StoreU(d1, d, out + stream_stride);
  hn::StoreU(hn::Sub(d2, d1), d, out + 2 * stream_stride);
}

// One part's rows for groups j .. j + lanes - 1 (out: its first stream at lane j).
HWY_INLINE void TransformGroups(const D d, int n, int taps, const float* x, std::int64_t j, float* out,
                                std::int64_t stream_stride) {
  if (n == 4) {
    V d0, d1, d2, d3, d4, unused1, unused2, unused3;
    hn::LoadInterleaved4(d, x + 4 * j, d0, d1, d2, d3);
    if (taps == 1) {
      hn::StoreU(d0, d, out), hn::StoreU(d1, d, out + stream_stride);
      hn::StoreU(d2, d, out + 2 * stream_stride), hn::StoreU(d3, d, out + 3 * stream_stride);
      return;
    }
    hn::LoadInterleaved4(d, x + 4 * j + 4, d4, unused1, unused2, unused3);
    return StoreFours(d, d0, d1, d2, d3, d4, out, stream_stride);
  }
  V even, odd;  // x[2 j + 2 l], x[2 j + 2 l + 1] (lane l)
  hn::LoadInterleaved2(d, x + 2 * j, even, odd);
  if (taps == 1) {
    hn::StoreU(even, d, out), hn::StoreU(odd, d, out + stream_stride);
    return;
  }
  V next_even, next_odd;  // x[2 j + 2 l + 2], ...
  hn::LoadInterleaved2(d, x + 2 * j + 2, next_even, next_odd);
  StoreTwos(d, even, odd, next_even, out, stream_stride);
}

// F(4, 2) of both phases of a transposed convolution whose second phase reads one column past the first (kernel 4
// at stride 2): its d_u are the first's d_(u + 1), from the same two loads (1.04x in medians on HiFi-GAN up3).
HWY_INLINE void TransformFoursOfTwoPhases(const D d, const float* x, std::int64_t j, float* out,
                                          std::int64_t stream_stride) {
  V d0, d1, d2, d3, d4, d5, unused1, unused2;
  hn::LoadInterleaved4(d, x + 4 * j, d0, d1, d2, d3);
  hn::LoadInterleaved4(d, x + 4 * j + 4, d4, d5, unused1, unused2);
  StoreFours(d, d0, d1, d2, d3, d4, out + j, stream_stride);
  StoreFours(d, d1, d2, d3, d4, d5, out + 5 * stream_stride + j, stream_stride);
}

// Groups along a dilation d (winograd_rows' step): group g = b d + h from d_u = x[b n d + h + u d], its rows made
// by StoreFours or StoreTwos, d_u loaded as whole vectors of consecutive h.
HWY_INLINE void TransformDilatedGroups(const D d, int n, const float* x, std::int64_t step, std::int64_t groups,
                                       float* out, std::int64_t stream_stride) {
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t b = 0; b * step < groups; ++b) {
    const float* block = x + b * n * step;
    for (std::int64_t h = 0; h < step; h += lanes) {
      float* o = out + b * step + h;
      const V d0 = hn::LoadU(d, block + h), d1 = hn::LoadU(d, block + step + h);
      const V d2 = hn::LoadU(d, block + 2 * step + h);
      if (n == 2) {
        StoreTwos(d, d0, d1, d2, o, stream_stride);
        continue;
      }
      const V d3 = hn::LoadU(d, block + 3 * step + h), d4 = hn::LoadU(d, block + 4 * step + h);
      StoreFours(d, d0, d1, d2, d3, d4, o, stream_stride);
    }
  }
}

void WinogradRows(const float* from, std::int64_t from_stride, std::int64_t rows, const std::int64_t* first,
                  const int* taps, int parts, int n, std::int64_t groups, float* to, std::int64_t to_stride,
                  std::int64_t stream_stride, std::int64_t step) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t whole = (groups + lanes - 1) / lanes * lanes;
  // Straight from a channels_first source, rows are planes apart: fetched ahead as in PanelRows.
  constexpr std::int64_t kAhead = 12;
  const std::int64_t lo = *std::min_element(first, first + parts);
  const std::int64_t hi = step > 0 ? first[0] + groups / step * n * step + step
                                   : *std::max_element(first, first + parts) + n * (whole + 1);
  const bool shared = n == 4 && parts == 2 && taps[0] == 2 && taps[1] == 2 && first[1] == first[0] + 1;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (r + kAhead < rows) {
      const float* next = from + (r + kAhead) * from_stride;
      for (std::int64_t c = lo; c < hi; c += 64 / static_cast<std::int64_t>(sizeof(float))) hwy::Prefetch(next + c);
    }
    float* out = to + r * to_stride;
    if (step > 0) {
      TransformDilatedGroups(d, n, from + r * from_stride + first[0], step, groups, out, stream_stride);
      continue;
    }
    if (shared) {
      const float* x = from + r * from_stride + first[0];
      for (std::int64_t j = 0; j < groups; j += lanes) TransformFoursOfTwoPhases(d, x, j, out, stream_stride);
      continue;
    }
    for (int p = 0; p < parts; ++p) {
      const float* x = from + r * from_stride + first[p];
      for (std::int64_t j = 0; j < groups; j += lanes) TransformGroups(d, n, taps[p], x, j, out + j, stream_stride);
      out += (n + taps[p] - 1) * stream_stride;
    }
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
// KernelSet::depthwise_flat. A group's taps whose masks are all empty (taps in padding for all its outputs) are
// skipped without a load.
void DepthwiseFlat(const float* in, const float* w, const std::int64_t* offsets, int taps, const std::uint8_t* masks,
                   std::int64_t count, float init, float* out) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  constexpr int U = kFlatGroupVectors;
  constexpr std::size_t kMaskBytes = (hn::MaxLanes(D()) + 7) / 8;
  static_assert(U * kMaskBytes <= sizeof(std::uint64_t), "a group's masks of one tap are read as one word");
  constexpr std::uint64_t kAllLanes =
      U * kMaskBytes == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * U * kMaskBytes)) - 1;
  const std::uint8_t* m = masks;
  for (std::int64_t o0 = 0; o0 < count; o0 += U * lanes) {
    V acc[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) acc[u] = hn::Set(d, init);
    for (int t = 0; t < taps; ++t, m += U * kMaskBytes) {
      std::uint64_t any = 0;
      std::memcpy(&any, m, U * kMaskBytes);
      if (any == 0) continue;
      const V wv = hn::Set(d, w[t]);
      const float* p = in + o0 + offsets[t];
      if (any == kAllLanes) {  // inside the input for every output of the group: plain loads
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[u] = hn::MulAdd(hn::LoadU(d, p + u * lanes), wv, acc[u]);
        continue;
      }
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) {
        const auto mask = hn::LoadMaskBits(d, m + u * kMaskBytes);
        acc[u] = hn::MulAdd(hn::MaskedLoad(mask, d, p + u * lanes), wv, acc[u]);
      }
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const std::int64_t o = o0 + u * lanes;
      if (o + lanes <= count) {
        hn::StoreU(acc[u], d, out + o);
      } else if (o < count) {
        StorePartial(d, acc[u], out + o, static_cast<size_t>(count - o));
      }
    }
  }
}
#endif

void FillPlanarKernels(KernelSet* set) {
  set->planar_target = hwy::TargetName(HWY_TARGET);
  set->planar_rows = PlanarRows;
  set->planar_lane_rows = PlanarLaneRows;
  set->planar_lane_row_pairs = PlanarLaneRowPairs;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  set->depthwise_flat = DepthwiseFlat;
#endif
  for (int v = 1; v <= kMaxVectorsPerTile; ++v) set->planar_mr[v] = PlanarRows(v);
  set->planar_gemm[1] = PlanarGemm<1>, set->planar_gemm[2] = PlanarGemm<2>;
  set->planar_gemm[3] = PlanarGemm<3>, set->planar_gemm[4] = PlanarGemm<4>;
  set->interleave = Interleave;
  set->add_row = AddRow;
  set->expand_row = ExpandRow;
  set->panel_rows = PanelRows;
  set->winograd_rows = WinogradRows;
}

}  // namespace tdconv::engine::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tdconv::engine {
HWY_EXPORT(FillPlanarKernels);

void add_planar_kernels(KernelSet& set) { HWY_DYNAMIC_DISPATCH(FillPlanarKernels)(&set); }

}  // namespace tdconv::engine
#endif
