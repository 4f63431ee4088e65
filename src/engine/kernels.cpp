// Per-target microkernels. Highway compiles this file once per SIMD target (foreach_target.h) and dispatches at
// run time; each target contributes only its tile kernels and their sizes. The planar kernels (pixels as lanes) and
// the Winograd transforms are in planar_kernels.cpp and winograd_kernels.cpp: separate translation units compile in
// parallel (this one file had become the longest step of every build, a minute per configuration).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "engine/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace tdconv::engine::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

#include "engine/simd_common-inl.h"


// Writes a tile that is not a plain run of full vectors per pixel: partial channel blocks, or channels_first
// (each output channel a plane, so the tile is written transposed). `tile` holds the accumulators row by row.
HWY_NOINLINE void StoreTileSlow(const TileCall& call, const float* tile, int rows, size_t row_floats) {
  for (int n = 0; n < call.nr_valid; ++n) {
    float* out = call.c + n * call.c_channel_stride;
    for (int r = 0; r < rows; ++r) out[r * call.c_pixel_stride] = tile[r * row_floats + n];
  }
}

// Every loop over the accumulators is unrolled (here and in the tiles): one left as a loop indexes them at run time,
// and GCC then keeps the whole array on the stack, stored before the products and after them and reloaded for the
// stores (40 vector stores and 40 loads around a 5 x 4 tile of 64 channels, which ran at 89% of the FMA peak from
// L1 instead of 98%, Zen 4).
template <int M, int NV, class DT>
HWY_INLINE void StoreTile(const DT d, const TileCall& call, hn::Vec<DT> (&acc)[M][NV]) {
  const size_t lanes = hn::Lanes(d);
  // In locals: the stores might otherwise alias the call, which would be read again after each one.
  float* const c = call.c;
  const std::int64_t stride = call.c_pixel_stride;
  if (HWY_LIKELY(call.c_channel_stride == 1 && static_cast<size_t>(call.nr_valid) == NV * lanes)) {
    const bool aligned = (reinterpret_cast<std::uintptr_t>(c) | (stride * sizeof(float))) % (lanes * sizeof(float)) == 0;
    if (call.stream && aligned) {
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) hn::Stream(acc[r][v], d, c + r * stride + v * lanes);
      }
      return;
    }
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) hn::StoreU(acc[r][v], d, c + r * stride + v * lanes);
    }
    return;
  }
  if (call.c_channel_stride == 1) {
    // A partial block of channels_last channels (FCN-8s' 21 in 24 lanes): the whole vectors as they are, the last
    // one's valid lanes under a mask, never a lane of the next pixel (another tile's, maybe another thread's).
    // FCN-8s ran 1.09x as fast as with these tiles stored element by element through memory (paired, Zen 3).
    const int whole = call.nr_valid / static_cast<int>(lanes);
    const size_t rest = static_cast<size_t>(call.nr_valid) - whole * lanes;
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      float* out = c + r * stride;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        if (v < whole) hn::StoreU(acc[r][v], d, out + v * lanes);
        if (v == whole) StorePartial(d, acc[r][v], out + v * lanes, rest);
      }
    }
    return;
  }
  // Channels_first tiles get the accumulators through memory, so that the common path keeps them in registers.
  HWY_ALIGN float tile[M * NV * HWY_MAX_BYTES / sizeof(float)];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) hn::Store(acc[r][v], d, tile + (r * NV + v) * lanes);
  }
  StoreTileSlow(call, tile, M, NV * lanes);
}

// Reads back a tile of partial sums (the mirror of StoreTile): a plain run of full vectors per pixel directly,
// anything else (partial channel blocks, channels_first) element by element, zeros past nr_valid.
HWY_NOINLINE void LoadTileSlow(const TileCall& call, float* tile, int rows, size_t row_floats) {
  for (int r = 0; r < rows; ++r)
    for (size_t n = 0; n < row_floats; ++n) {
      tile[r * row_floats + n] =
          static_cast<int>(n) < call.nr_valid
              ? call.c[r * call.c_pixel_stride + static_cast<std::int64_t>(n) * call.c_channel_stride]
              : 0.0f;
    }
}

template <int M, int NV>
HWY_INLINE void LoadTile(const D d, const TileCall& call, V (&acc)[M][NV]) {
  const size_t lanes = hn::Lanes(d);
  if (HWY_LIKELY(call.c_channel_stride == 1 && static_cast<size_t>(call.nr_valid) == NV * lanes)) {
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = hn::LoadU(d, call.c + r * call.c_pixel_stride + v * lanes);
    }
    return;
  }
  HWY_ALIGN float tile[M * NV * HWY_MAX_BYTES / sizeof(float)];
  LoadTileSlow(call, tile, M, NV * lanes);
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = hn::Load(d, tile + (r * NV + v) * lanes);
  }
}

// Every gemm tile that reaches its products has some (GemmTile takes the others aside). Told so, GCC keeps the
// accumulators in registers from their start to their stores; where the loops might not run, it had kept them on
// the stack around the loops, as with a loop left rolled (see StoreTile).
HWY_INLINE void AssumeProducts(const TileCall& call) {
  HWY_ASSUME(call.ntaps > 0);
  HWY_ASSUME(call.k > 0);
}

// Tall tiles (7 to 14 rows) of channels_last inputs (a_channel_stride 1) address each row from its own pointer,
// indexed by the channel. With one pointer stepping by the channel stride and every row an offset from it, GCC ran
// out of registers and reloaded row offsets from the stack on every channel (4 of 11 in the 11 x 2 tile). From L1
// (AVX-512, Intel Xeon), 64 channels a tap: 11 x 2 with 4 taps 160 -> 169 GFLOP/s, 14 x 2 165 -> 171-177, 8 x 2
// 160-164 -> 170, 9 x 3 175 -> 180, 7 x 2 166 -> 170; vol_up_k3 channels_last 1.02-1.05x as fast at 1 and 2 threads
// (in turns). Shorter tiles keep the offsets (6 x 4: 174 -> 170 with row pointers), and so does 16 x 1 (130 -> 129).
template <int M>
constexpr bool kRowPointers = M >= 7 && M <= 14;

template <int M, int NV, bool kReverse>
HWY_INLINE void GemmProductsChannelsLast(const D d, const TileCall& call, V (&acc)[M][NV]) {
  const size_t lanes = hn::Lanes(d);
  AssumeProducts(call);
  for (int i = 0; i < call.ntaps; ++i) {
    const int t = kReverse ? call.ntaps - 1 - i : i;
    const float* HWY_RESTRICT a = call.a[t] + call.a_offset;
    const float* HWY_RESTRICT b = call.b[t];
    const float* rows[M];
    for (int r = 0; r < M; ++r) rows[r] = a + r * call.a_pixel_stride;
    // The next tile (the next M pixels or images) reads the same channels: fetch them while this one computes, a
    // cache line per row every 16 channels, if the call has a next tile (TileCall::prefetch_next).
    const std::int64_t next_tile = M * call.a_pixel_stride;
#pragma GCC unroll 2  // see GemmProducts
    for (std::int64_t j = 0; j < call.k; ++j) {
      const std::int64_t q = kReverse ? call.k - 1 - j : j;
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, b + q * NV * lanes + v * lanes);
      if ((q & 15) == 0 && call.prefetch_next) {
        for (int r = 0; r < M; ++r) hwy::Prefetch(rows[r] + next_tile + q);
      }
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
        const V av = hn::Set(d, rows[r][q]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(av, bv[v], acc[r][v]);
      }
    }
  }
}

// The products of a gemm tile, taps and channels in order, or with kReverse from the last tap's last channel back
// (see TileCall::reverse).
template <int M, int NV, bool kReverse>
HWY_INLINE void GemmProducts(const D d, const TileCall& call, V (&acc)[M][NV]) {
  if constexpr (kRowPointers<M>) {
    if (call.a_channel_stride == 1) return GemmProductsChannelsLast<M, NV, kReverse>(d, call, acc);
  }
  const size_t lanes = hn::Lanes(d);
  AssumeProducts(call);
  for (int i = 0; i < call.ntaps; ++i) {
    const int t = kReverse ? call.ntaps - 1 - i : i;
    const float* HWY_RESTRICT a = call.a[t] + call.a_offset;
    const float* HWY_RESTRICT b = call.b[t];
    // Two channels per loop turn: half the loop's own instructions and branches. From L1 (AVX-512, Intel Xeon):
    // 6 x 4 with 4 taps of 64 channels 168 -> 175 GFLOP/s, with 2 of 256 (weights from L2) 185 -> 199, 11 x 2
    // 181 -> 187, 14 x 2 180 -> 187-192; in turns, DCGAN g2 1.04-1.06x as fast, HiFi-GAN up1 1.04-1.07x and U-Net
    // up1 channels_first 1.09x, none of the gemm layers measurably slower.
#pragma GCC unroll 2
    for (std::int64_t j = 0; j < call.k; ++j) {
      const std::int64_t q = kReverse ? call.k - 1 - j : j;
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = hn::LoadU(d, b + q * NV * lanes + v * lanes);
      const float* HWY_RESTRICT aq = a + q * call.a_channel_stride;
      // The next tile (the next M pixels or images) reads the same channels: fetch them while this one computes,
      // a cache line per row every 16 channels, if the call has a next tile (TileCall::prefetch_next).
      if ((q & 15) == 0 && call.prefetch_next && call.a_channel_stride == 1) {
        for (int r = 0; r < M; ++r) hwy::Prefetch(aq + (r + M) * call.a_pixel_stride);
      }
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
        const V av = hn::Set(d, aq[r * call.a_pixel_stride]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(av, bv[v], acc[r][v]);
      }
    }
  }
}

// The products of a gemm tile whose accumulators hold their starting values, then its stores.
template <int M, int NV>
HWY_INLINE void GemmProductsAndStore(const D d, const TileCall& call, V (&acc)[M][NV]) {
  if (call.reverse) {
    GemmProducts<M, NV, true>(d, call, acc);
  } else {
    GemmProducts<M, NV, false>(d, call, acc);
  }
  StoreTile<M, NV>(d, call, acc);
}

// Zeros for tiles without bias, read like a bias (NV vectors at most).
HWY_ALIGN constexpr float kZeros[kMaxVectorsPerTile * HWY_MAX_BYTES / sizeof(float)] = {};

// Every row of a tile starts from the call's bias (NV vectors), or from zeros.
template <int M, int NV>
HWY_INLINE void StartTile(const D d, const TileCall& call, V (&acc)[M][NV]) {
  const size_t lanes = hn::Lanes(d);
  const float* init = call.init != nullptr ? call.init : kZeros;
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const V start = hn::LoadU(d, init + v * lanes);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) acc[r][v] = start;
  }
}

// A tile from its bias (or zeros), in one direction, from its start to its stores.
template <int M, int NV, bool kReverse>
HWY_INLINE void GemmFreshTile(const D d, const TileCall& call) {
  V acc[M][NV];
  StartTile<M, NV>(d, call, acc);
  GemmProducts<M, NV, kReverse>(d, call, acc);
  StoreTile<M, NV>(d, call, acc);
}

// A tile without products (no taps, or no channels): its bias (or zeros), or with `accumulate` what it holds.
template <int M, int NV>
HWY_NOINLINE void GemmTileWithoutProducts(const D d, const TileCall& call) {
  if (call.accumulate) return;
  V acc[M][NV];
  StartTile<M, NV>(d, call, acc);
  StoreTile<M, NV>(d, call, acc);
}

// m x (NV vectors) tile: broadcast one input channel of each pixel, multiply with NV vectors of packed weights.
// Each way of starting has its own copy of the products: with one copy after both, GCC kept the accumulators in
// memory across the join, and zeroed them there with rep stos on every tile without bias (FCN-8s: 16% of the
// tile's samples).
template <int M, int NV>
HWY_NOINLINE void GemmTile(const TileCall& call) {
  const D d;
  if (HWY_UNLIKELY(call.ntaps <= 0 || call.k <= 0)) return GemmTileWithoutProducts<M, NV>(d, call);
  if (call.accumulate) {
    V acc[M][NV];
    LoadTile<M, NV>(d, call, acc);
    return GemmProductsAndStore<M, NV>(d, call, acc);
  }
  if (call.reverse) return GemmFreshTile<M, NV, true>(d, call);
  GemmFreshTile<M, NV, false>(d, call);
}

// Pair tiles (KernelSet::gemm_pair): the taps come in pairs whose pixels are one apart, tap t reading the tile's
// pixels and tap t + 1 the pixel before each (a sub-pixel transposed convolution's two x taps, subpixel.cpp). The
// M + 1 pixels of a pair are each broadcast once for both taps: pixel r adds w0 into row r - 1 and w1 into row r.
// Only the first LIVE vectors of the second tap's weights are multiplied: past them the sub-pixel form's packed
// weights are zeros (a kernel shorter than a multiple of the stride, e.g. 3 taps at stride 2).
template <int M, int NV, int LIVE, bool kReverse>
HWY_INLINE void PairProducts(const D d, const TileCall& call, V (&acc)[M][NV]) {
  const size_t lanes = hn::Lanes(d);
  for (int i = 0; i < call.ntaps; i += 2) {
    const int t = kReverse ? call.ntaps - 2 - i : i;
    const float* HWY_RESTRICT a = call.a[t + 1] + call.a_offset;  // the pixel before the tile's first
    const float* HWY_RESTRICT b0 = call.b[t];
    const float* HWY_RESTRICT b1 = call.b[t + 1];
    const float* rows[M + 1];
    for (int r = 0; r <= M; ++r) rows[r] = a + r * call.a_pixel_stride;
    const std::int64_t next_tile = M * call.a_pixel_stride;
#pragma GCC unroll 2
    for (std::int64_t j = 0; j < call.k; ++j) {
      const std::int64_t q = kReverse ? call.k - 1 - j : j;
      V w0[NV], w1[LIVE];
      for (int v = 0; v < NV; ++v) w0[v] = hn::LoadU(d, b0 + q * NV * lanes + v * lanes);
      for (int v = 0; v < LIVE; ++v) w1[v] = hn::LoadU(d, b1 + q * NV * lanes + v * lanes);
      if ((q & 15) == 0 && call.prefetch_next) {
        for (int r = 1; r <= M; ++r) hwy::Prefetch(rows[r] + next_tile + q);
      }
#pragma GCC unroll 16
      for (int r = 0; r <= M; ++r) {
        const V av = hn::Set(d, rows[r][q]);
        if (r >= 1) {
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[r - 1][v] = hn::MulAdd(av, w0[v], acc[r - 1][v]);
        }
        if (r < M) {
#pragma GCC unroll 8
          for (int v = 0; v < LIVE; ++v) acc[r][v] = hn::MulAdd(av, w1[v], acc[r][v]);
        }
      }
    }
  }
}

// A pair tile (see PairProducts): channels_last input (a_channel_stride 1), an even number of taps in pairs, no
// `accumulate`.
template <int M, int NV, int LIVE>
HWY_NOINLINE void PairTile(const TileCall& call) {
  const D d;
  V acc[M][NV];
  StartTile<M, NV>(d, call, acc);
  if (call.reverse) {
    PairProducts<M, NV, LIVE, true>(d, call, acc);
  } else {
    PairProducts<M, NV, LIVE, false>(d, call, acc);
  }
  StoreTile<M, NV>(d, call, acc);
}

// Two depthwise taps whose pixels are one apart: `lo` reads pixels 0 .. M - 1 from a, `hi` pixels 1 .. M. Each
// pixel is loaded once for both: acc[p] += x[p] * w_lo, acc[p - 1] += x[p] * w_hi. One pointer walks the pixels
// and each pixel's prefetch goes with its first load: with the prefetches issued up front, GCC kept their M + 1
// addresses on the stack and reloaded them every call (dw_up2 channels_last: 1.04-1.09x at 1 and 2 threads, in
// turns, Zen 1). The single-tap loop below keeps its prefetches up front: there they gained (the atrous depthwise
// layer, whose input comes from memory, was 0.94-0.95x with them interleaved).
// G vectors of channels per pixel (a column of the tile, see DepthwiseTile), fetched two blocks of NV ahead.
template <int M, int G, int NV, class DT>
HWY_INLINE void DepthwisePair(const DT d, const float* HWY_RESTRICT a, std::int64_t a_stride,
                              const float* HWY_RESTRICT b_lo, const float* HWY_RESTRICT b_hi, bool prefetch,
                              hn::Vec<DT> (&acc)[M][G]) {
  const size_t lanes = hn::Lanes(d);
  for (int v = 0; v < G; ++v) {
    const auto w_lo = hn::LoadU(d, b_lo + v * lanes), w_hi = hn::LoadU(d, b_hi + v * lanes);
    const float* HWY_RESTRICT ap = a + v * lanes;
    for (int p = 0; p <= M; ++p) {
      if (v == 0 && prefetch) hwy::Prefetch(ap + 2 * NV * lanes);
      const auto x = LoadOnce(d, ap);
      ap += a_stride;
      if (p < M) acc[p][v] = hn::MulAdd(x, w_lo, acc[p][v]);
      if (p > 0) acc[p - 1][v] = hn::MulAdd(x, w_hi, acc[p - 1][v]);
    }
  }
}

// Depthwise: channels are lanes; each tap multiplies each pixel's channel vector by the tap's per-channel weights.
// Everything a block needs from the call is read once per tile (the blocks' loop had reloaded the call's fields and
// copied it to store each block: the kernel ran at 5 cycles per multiply-add with its data in L1, Zen 1).
// A block is computed a column of G vectors at a time, each pixel's column a cache line (or the whole block where
// that is narrower or not a whole number of lines). With AVX-512's 6 x 4 tile held whole, GCC kept the 24
// accumulators on the stack (with the pair's weights and pixels, more than 32 registers), and every multiply-add
// waited on a store and a reload; one vector at a time, dw_up2 channels_last ran 1.06-1.08x as fast at 1 thread and
// 1.05-1.08x at 2, the atrous depthwise layer 1.01-1.02x (in turns, Intel Xeon; AVX2's tiles unchanged). Columns
// narrower than a line leave the streamed stores' lines half written while the next column computes: AVX2's 32-byte
// vectors one at a time ran dw_up2 at 0.6x.
// DT: the target's full vectors, or 8-float ones (KernelSet::depthwise_narrow).
template <class DT, int M, int NV>
HWY_NOINLINE void DepthwiseTile(const TileCall& call) {
  using VT = hn::Vec<DT>;
  const DT d;
  constexpr auto kLineVectors = static_cast<int>(64 / (hn::MaxLanes(DT()) * sizeof(float)));
  constexpr int G = kLineVectors >= 1 && kLineVectors < NV && NV % kLineVectors == 0 ? kLineVectors : NV;
  const size_t lanes = hn::Lanes(d);
  const auto nr = static_cast<std::int64_t>(NV * lanes);
  const int ntaps = call.ntaps;
  const float* const* HWY_RESTRICT taps_a = call.a;
  const float* const* HWY_RESTRICT taps_b = call.b;
  const std::int64_t a_stride = call.a_pixel_stride, a_offset = call.a_offset, c_stride = call.c_pixel_stride;
  const float* init = call.init;
  // Blocks of a cache line or less (AVX2's 6 x 2 tile): each pixel of each tap is a stream that reaches a new line
  // every block, more streams than the hardware prefetchers follow (the atrous depthwise layer, whose 8.9 MiB input
  // is read from memory, took 4.5 ms against 3.4 with its lines fetched two blocks ahead, Zen 1).
  const bool prefetch = nr * sizeof(float) <= 64;
  // Whole vectors per pixel (every block of the call has nr_valid channels): stored straight from registers.
  const bool plain = call.c_channel_stride == 1 && call.nr_valid == nr;
  const bool stream = plain && call.stream &&
                      (reinterpret_cast<std::uintptr_t>(call.c) | (c_stride * sizeof(float))) %
                          (lanes * sizeof(float)) == 0;
  for (int column = 0; column < call.blocks * NV / G; ++column) {
    const std::int64_t offset = column / (NV / G) * nr + column % (NV / G) * G * static_cast<std::int64_t>(lanes);
    VT acc[M][G];
    for (int v = 0; v < G; ++v) {
      const VT start = init ? hn::LoadU(d, init + offset + v * lanes) : hn::Zero(d);
      for (int r = 0; r < M; ++r) acc[r][v] = start;
    }
    for (int t = 0; t < ntaps;) {
      // Two taps one pixel apart (the x taps of a transposed convolution's phase, of a convolution with stride
      // and dilation 1) share their loads: M + 1 pixels feed 2 M products.
      const bool pair_down = t + 1 < ntaps && taps_a[t + 1] == taps_a[t] - a_stride;
      if (pair_down || (t + 1 < ntaps && taps_a[t + 1] == taps_a[t] + a_stride)) {
        const int lo = pair_down ? t + 1 : t, hi = pair_down ? t : t + 1;
        DepthwisePair<M, G, NV>(d, taps_a[lo] + a_offset + offset, a_stride, taps_b[lo] + offset,
                                taps_b[hi] + offset, prefetch, acc);
        t += 2;
        continue;
      }
      const float* HWY_RESTRICT a = taps_a[t] + a_offset + offset;
      const float* HWY_RESTRICT b = taps_b[t] + offset;
      if (prefetch) {
        for (int r = 0; r < M; ++r) hwy::Prefetch(a + r * a_stride + 2 * nr);
      }
      for (int v = 0; v < G; ++v) {
        const VT bv = hn::LoadU(d, b + v * lanes);
        for (int r = 0; r < M; ++r) {
          // Only nr_valid channels exist in the input; the tail block reads up to a vector past them, which the
          // caller guarantees is inside the tensor or a padded copy (see engine.cpp: depthwise tail handling).
          acc[r][v] = hn::MulAdd(hn::LoadU(d, a + r * a_stride + v * lanes), bv, acc[r][v]);
        }
      }
      ++t;
    }
    // One pointer walks the rows: with c + r * c_stride per row, GCC kept the rows' offsets on the stack and reloaded
    // them for every block (dw_up2 channels_last 1.03-1.06x at 1 and 2 threads, in turns; the atrous layer 1.01x).
    float* HWY_RESTRICT c = call.c + offset;
    if (stream) {
      for (int r = 0; r < M; ++r, c += c_stride)
        for (int v = 0; v < G; ++v) hn::Stream(acc[r][v], d, c + v * lanes);
    } else if (plain) {
      for (int r = 0; r < M; ++r, c += c_stride)
        for (int v = 0; v < G; ++v) hn::StoreU(acc[r][v], d, c + v * lanes);
    } else {
      // The column's channels that exist (nr_valid is per block).
      TileCall block_call = call;
      block_call.c = call.c + offset * call.c_channel_stride;
      block_call.nr_valid = static_cast<int>(std::min<std::int64_t>(
          G * static_cast<std::int64_t>(lanes), call.nr_valid - (offset - column / (NV / G) * nr)));
      if (block_call.nr_valid > 0) StoreTile<M, G>(d, block_call, acc);
    }
  }
}

// Few output channels: input channels are lanes; NO outputs per pixel, each reduced horizontally at the end.
template <int M, int NO>
HWY_NOINLINE void DotTile(const TileCall& call) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  V acc[M][NO];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
    for (int o = 0; o < NO; ++o) acc[r][o] = hn::Zero(d);
  }
  const std::int64_t full_blocks = call.k / static_cast<std::int64_t>(lanes);
  const size_t tail = static_cast<size_t>(call.k) % lanes;
  const std::int64_t blocks = full_blocks + (tail ? 1 : 0);
  for (int t = 0; t < call.ntaps; ++t) {
    const float* HWY_RESTRICT a = call.a[t] + call.a_offset;
    const float* HWY_RESTRICT b = call.b[t];
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      V wv[NO];
      for (int o = 0; o < NO; ++o) wv[o] = hn::LoadU(d, b + (blk * NO + o) * lanes);
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
        const float* p = a + r * call.a_pixel_stride + blk * lanes;
        // The last block of a pixel's channels may be partial: load only what exists (fault-safe).
        const V av = blk < full_blocks ? hn::LoadU(d, p) : LoadPartial(d, p, tail);
#pragma GCC unroll 8
        for (int o = 0; o < NO; ++o) acc[r][o] = hn::MulAdd(av, wv[o], acc[r][o]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    float* out = call.c + r * call.c_pixel_stride;
#pragma GCC unroll 8
    for (int o = 0; o < NO; ++o) {
      out[o * call.c_channel_stride] = (call.init ? call.init[o] : 0.0f) + hn::GetLane(hn::SumOfLanes(d, acc[r][o]));
    }
  }
}

// Runtime m -> compile-time M, so every tile height has fully unrolled register blocks.
template <int NV, template <int, int> class Kernel, int M = GemmRows(NV)>
HWY_INLINE void DispatchRows(const TileCall& call) {
  if constexpr (M > 1) {
    if (call.m < M) return DispatchRows<NV, Kernel, M - 1>(call);
  }
  Kernel<M, NV>::Run(call);
}

template <int M, int NV>
struct Gemm {
  static void Run(const TileCall& call) { GemmTile<M, NV>(call); }
};
template <int M, int NV>
struct Depthwise {
  static void Run(const TileCall& call) { DepthwiseTile<D, M, NV>(call); }
};
// 8 floats per vector: AVX-512's depthwise tiles for channel counts that are a multiple of 8 but not of 16.
using DNarrow = hn::CappedTag<float, 8>;
template <int M, int NV>
struct DepthwiseNarrow {
  static void Run(const TileCall& call) { DepthwiseTile<DNarrow, M, NV>(call); }
};

template <int M, int NO>
struct Dot {
  static void Run(const TileCall& call) { DotTile<M, NO>(call); }
};
// Dot tiles hold M x NO accumulators plus NO weight vectors and one input vector.
template <int NO, int M = TileRows(NO)>
HWY_INLINE void DispatchDotRows(const TileCall& call) {
  if constexpr (M > 1) {
    if (call.m < M) return DispatchDotRows<NO, M - 1>(call);
  }
  Dot<M, NO>::Run(call);
}
// Every tile of a call (TileCall::tiles), each through `run`.
template <class Run>
HWY_INLINE void ForEachTile(const TileCall& call, const Run& run) {
  if (call.tiles == 1) return run(call);
  TileCall tile = call;
  for (int i = 0; i < call.tiles; ++i) {
    tile.reverse = (i & 1) != 0;
    tile.prefetch_next = i + 1 < call.tiles;
    tile.a_offset = i * call.m * call.a_pixel_stride;
    tile.c = call.c + i * call.m * call.c_pixel_stride;
    run(tile);
  }
}

template <int NO>
void DotEntry(const TileCall& call) {
  ForEachTile(call, [](const TileCall& tile) { DispatchDotRows<NO>(tile); });
}

template <int NV>
void GemmEntry(const TileCall& call) {
  ForEachTile(call, [](const TileCall& tile) { DispatchRows<NV, Gemm>(tile); });
}
template <int NV>
void DepthwiseEntry(const TileCall& call) {
  ForEachTile(call, [](const TileCall& tile) { DispatchRows<NV, Depthwise>(tile); });
}
// Rows of a pair tile: its accumulators, both taps' weights and a broadcast in the registers.
constexpr int PairRows(int vectors, int live) { return RowsLeaving(vectors, live + 1); }

// Compiled for the full height and one row less (the heights of a run's tiles, see subpixel.cpp); other heights
// take the gemm tile, which reads each tap on its own and multiplies the zeros too.
template <int NV, int LIVE>
void PairEntry(const TileCall& call) {
  constexpr int M = PairRows(NV, LIVE);
  ForEachTile(call, [](const TileCall& tile) {
    if (tile.m == M) return PairTile<M, NV, LIVE>(tile);
    if constexpr (M > 1) {
      if (tile.m == M - 1) return PairTile<M - 1, NV, LIVE>(tile);
    }
    DispatchRows<NV, Gemm>(tile);
  });
}

#if HWY_MAX_BYTES > 32
template <int NV>
void DepthwiseNarrowEntry(const TileCall& call) {
  ForEachTile(call, [](const TileCall& tile) { DispatchRows<NV, DepthwiseNarrow>(tile); });
}
#endif


// Square blocks of kBlock x kBlock floats transposed in registers: 16 x 16 with AVX-512 (each output row a whole
// cache line, which non-temporal stores need: streaming half lines ran 2x slower than plain stores on 3D U-Net's
// write-back), 8 x 8 with AVX2, 4 x 4 in 128-bit vectors otherwise (every target but SCALAR, which copies element
// by element).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr std::int64_t kBlock = 16;
#elif HWY_TARGET == HWY_AVX2
constexpr std::int64_t kBlock = 8;
#elif HWY_TARGET == HWY_SCALAR
constexpr std::int64_t kBlock = 1;
#else
constexpr std::int64_t kBlock = 4;
#endif

// out row c (c < kBlock) = column c of the kBlock rows at in; with kStream, non-temporal stores (out and
// out_stride vector-aligned). kPartial: only the first `count` rows of in (count < kBlock), so the first `count`
// floats of each out row: the ragged end of a transposition narrower than a block (DCGAN g1's 4-pixel rows,
// channels_first, had been copied element by element).
// kPartialColumns instead: only the first `count` columns of in (count < kBlock, read with masked loads), so only
// the first `count` out rows, whole: the rows past the last whole block of a transposition (FCN-8s' 21 channels
// into their planes: 5 of 21 rows had been copied element by element; channels_first 1.04-1.06x as fast at 1 and 2
// threads, in turns, Intel Xeon).
template <bool kStream, bool kPartial = false, bool kPartialColumns = false>
HWY_INLINE void TransposeBlock(const float* HWY_RESTRICT in, std::int64_t in_stride, float* HWY_RESTRICT out,
                               std::int64_t out_stride, std::int64_t count = kBlock) {
#if HWY_TARGET == HWY_SCALAR
  out[0] = in[0];
  (void)in_stride, (void)out_stride, (void)count;
#else
  using DB = hn::FixedTag<float, kBlock>;
  using DD = hn::Repartition<double, DB>;
  const DB d;
  const DD dd;
  using VB = hn::Vec<DB>;
  VB r[kBlock];
  for (int i = 0; i < kBlock; ++i) {
    if constexpr (kPartialColumns) {
      r[i] = LoadPartial(d, in + i * in_stride, static_cast<size_t>(count));
    } else {
      r[i] = !kPartial || i < count ? hn::LoadU(d, in + i * in_stride) : hn::Zero(d);
    }
  }
  // Pairs of rows interleaved as floats, then as doubles: within each 128-bit half, 4 x 4 transposed.
  VB t[kBlock], u[kBlock];
  for (int i = 0; i < kBlock; i += 4) {
    const VB a = hn::InterleaveLower(d, r[i], r[i + 1]), b = hn::InterleaveUpper(d, r[i], r[i + 1]);
    const VB c = hn::InterleaveLower(d, r[i + 2], r[i + 3]), e = hn::InterleaveUpper(d, r[i + 2], r[i + 3]);
    t[i + 0] = hn::BitCast(d, hn::InterleaveLower(dd, hn::BitCast(dd, a), hn::BitCast(dd, c)));
    t[i + 1] = hn::BitCast(d, hn::InterleaveUpper(dd, hn::BitCast(dd, a), hn::BitCast(dd, c)));
    t[i + 2] = hn::BitCast(d, hn::InterleaveLower(dd, hn::BitCast(dd, b), hn::BitCast(dd, e)));
    t[i + 3] = hn::BitCast(d, hn::InterleaveUpper(dd, hn::BitCast(dd, b), hn::BitCast(dd, e)));
  }
  if constexpr (kBlock == 4) {
    for (int i = 0; i < 4; ++i) u[i] = t[i];
  } else if constexpr (kBlock == 16) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    // t[4g + c] holds, in its 128-bit block b, column c + 4b of rows 4g..4g+3: a 4 x 4 transposition of blocks
    // (vshuff32x4; Highway 1.0 has no portable op for it) gathers column c + 4b of all 16 rows.
    for (int c = 0; c < 4; ++c) {
      const __m512 lo0 = _mm512_shuffle_f32x4(t[c].raw, t[4 + c].raw, 0x44);
      const __m512 hi0 = _mm512_shuffle_f32x4(t[c].raw, t[4 + c].raw, 0xEE);
      const __m512 lo1 = _mm512_shuffle_f32x4(t[8 + c].raw, t[12 + c].raw, 0x44);
      const __m512 hi1 = _mm512_shuffle_f32x4(t[8 + c].raw, t[12 + c].raw, 0xEE);
      u[c] = VB{_mm512_shuffle_f32x4(lo0, lo1, 0x88)};
      u[c + 4] = VB{_mm512_shuffle_f32x4(lo0, lo1, 0xDD)};
      u[c + 8] = VB{_mm512_shuffle_f32x4(hi0, hi1, 0x88)};
      u[c + 12] = VB{_mm512_shuffle_f32x4(hi0, hi1, 0xDD)};
    }
#endif
  } else {
    // t[c] holds columns c (low half) and c + 4 (high half) of rows 0-3; t[4 + c] the same of rows 4-7.
    for (int c = 0; c < 4; ++c) {
      u[c] = hn::ConcatLowerLower(d, t[4 + c], t[c]);
      u[c + 4] = hn::ConcatUpperUpper(d, t[4 + c], t[c]);
    }
  }
  for (int i = 0; i < kBlock; ++i) {
    if constexpr (kPartialColumns) {
      if (i >= count) break;
      if constexpr (kStream) {
        hn::Stream(u[i], d, out + i * out_stride);
      } else {
        hn::StoreU(u[i], d, out + i * out_stride);
      }
    } else if constexpr (kPartial) {
      StorePartial(d, u[i], out + i * out_stride, static_cast<size_t>(count));
    } else if constexpr (kStream) {
      hn::Stream(u[i], d, out + i * out_stride);
    } else {
      hn::StoreU(u[i], d, out + i * out_stride);
    }
  }
#endif
}

template <bool kStream>
void TransposeStrips(const float* HWY_RESTRICT in, std::int64_t in_stride, float* HWY_RESTRICT out,
                     std::int64_t out_stride, std::int64_t rows, std::int64_t cols) {
  // Strips of kBlock output rows, each written along its rows; columns in chunks so that the input lines a strip
  // reads are still in L1 for the next strip.
  constexpr std::int64_t kChunk = 256;
  for (std::int64_t j0 = 0; j0 < cols; j0 += kChunk) {
    const std::int64_t j1 = cols < j0 + kChunk ? cols : j0 + kChunk;
    std::int64_t i = 0;
    for (; i + kBlock <= rows; i += kBlock) {
      std::int64_t j = j0;
      for (; j + kBlock <= j1; j += kBlock) {
        TransposeBlock<kStream>(in + j * in_stride + i, in_stride, out + i * out_stride + j, out_stride);
      }
      if (j < j1) {
        TransposeBlock<false, true>(in + j * in_stride + i, in_stride, out + i * out_stride + j, out_stride, j1 - j);
      }
    }
    if (i < rows) {  // fewer than kBlock rows left: whole blocks of columns with masked loads, then the corner
      std::int64_t j = j0;
      for (; j + kBlock <= j1; j += kBlock) {
        TransposeBlock<kStream, false, true>(in + j * in_stride + i, in_stride, out + i * out_stride + j, out_stride,
                                             rows - i);
      }
      for (std::int64_t r = i; r < rows; ++r)
        for (std::int64_t c = j; c < j1; ++c) out[r * out_stride + c] = in[c * in_stride + r];
    }
  }
}

void Transpose(const float* in, std::int64_t in_stride, float* out, std::int64_t out_stride, std::int64_t rows,
               std::int64_t cols, bool stream) {
  // Streaming needs every block's rows vector-aligned; the ragged edges are stored plainly either way.
  const std::uintptr_t align = kBlock * sizeof(float);
  if (stream && kBlock > 1 && (reinterpret_cast<std::uintptr_t>(out) | (out_stride * sizeof(float))) % align == 0) {
    return TransposeStrips<true>(in, in_stride, out, out_stride, rows, cols);
  }
  TransposeStrips<false>(in, in_stride, out, out_stride, rows, cols);
}

template <int NV, int LIVE>
void AddPairTiles(KernelSet& set) {
  set.pair_mr[NV][LIVE] = PairRows(NV, LIVE);
  set.gemm_pair[NV][LIVE] = PairEntry<NV, LIVE>;
}

KernelSet Kernels() {
  KernelSet set;
  set.target = hwy::TargetName(HWY_TARGET);
  set.lanes = static_cast<int>(hn::Lanes(D()));
  set.mr[1] = GemmRows(1), set.mr[2] = GemmRows(2), set.mr[3] = GemmRows(3), set.mr[4] = GemmRows(4);
  set.gemm[1] = GemmEntry<1>, set.gemm[2] = GemmEntry<2>, set.gemm[3] = GemmEntry<3>, set.gemm[4] = GemmEntry<4>;
  set.depthwise[1] = DepthwiseEntry<1>, set.depthwise[2] = DepthwiseEntry<2>;
  set.depthwise[3] = DepthwiseEntry<3>, set.depthwise[4] = DepthwiseEntry<4>;
#if HWY_MAX_BYTES > 32  // only targets whose vectors may exceed 8 floats compile the narrow tiles
  if (hn::Lanes(DNarrow()) < hn::Lanes(D())) {
    set.depthwise_narrow_lanes = static_cast<int>(hn::Lanes(DNarrow()));
    set.depthwise_narrow[1] = DepthwiseNarrowEntry<1>, set.depthwise_narrow[2] = DepthwiseNarrowEntry<2>;
    set.depthwise_narrow[3] = DepthwiseNarrowEntry<3>, set.depthwise_narrow[4] = DepthwiseNarrowEntry<4>;
  }
#endif
  for (int o = 1; o <= kMaxVectorsPerTile; ++o) set.dot_mr[o] = TileRows(o);
  AddPairTiles<1, 1>(set), AddPairTiles<2, 1>(set), AddPairTiles<2, 2>(set), AddPairTiles<3, 1>(set);
  AddPairTiles<3, 2>(set), AddPairTiles<3, 3>(set), AddPairTiles<4, 1>(set), AddPairTiles<4, 2>(set);
  AddPairTiles<4, 3>(set), AddPairTiles<4, 4>(set);
  set.transpose = Transpose;
  set.dot[1] = DotEntry<1>, set.dot[2] = DotEntry<2>, set.dot[3] = DotEntry<3>, set.dot[4] = DotEntry<4>;
  return set;
}

}  // namespace tdconv::engine::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <mutex>
#include <stdexcept>

namespace tdconv::engine {
HWY_EXPORT(Kernels);

int fewest_loads_vectors(const KernelSet& k, std::int64_t columns) {
  int best = 1;
  std::int64_t best_loads = 0, best_products = 1;  // loads per useful product = best_loads / best_products
  for (int v = 1; v <= kMaxVectorsPerTile; ++v) {
    const std::int64_t m = k.mr[v], width = v * k.lanes;
    const std::int64_t padded = (columns + width - 1) / width * width;
    const std::int64_t loads = (m + v) * padded, products = m * v * columns;
    const std::int64_t lhs = loads * best_products, rhs = best_loads * products;
    if (v == 1 || lhs < rhs || (lhs == rhs && m > k.mr[best])) best = v, best_loads = loads, best_products = products;
  }
  return best;
}

namespace {
std::mutex g_target_mutex;
std::int64_t g_forced = 0;  // 0: no restriction
}  // namespace

namespace {
// The kernels of the four per-target files, dispatched to the same target.
KernelSet dispatch_kernels() {
  KernelSet set = HWY_DYNAMIC_DISPATCH(Kernels)();
  add_planar_kernels(set);
  add_winograd_kernels(set);
  add_weight_gradient_kernels(set);
  if (set.planar_target != set.target || set.winograd_target != set.target || set.weight_grad_target != set.target) {
    throw std::logic_error("SIMD kernels dispatched to different targets");
  }
  return set;
}
}  // namespace

KernelSet best_kernels() {
  const std::lock_guard<std::mutex> lock(g_target_mutex);
  if (g_forced == 0) return dispatch_kernels();
  // Highway's test hook narrows what dynamic dispatch may choose; the plan keeps the returned pointers.
  hwy::SetSupportedTargetsForTest(g_forced);
  KernelSet set = dispatch_kernels();
  hwy::SetSupportedTargetsForTest(0);
  return set;
}

std::vector<std::string> supported_targets() {
  std::vector<std::string> names;
  for (std::int64_t target : hwy::SupportedAndGeneratedTargets()) names.push_back(hwy::TargetName(target));
  return names;
}

void to_channels_last(const KernelSet& kernels, const float* in, float* out, std::int64_t out_image,
                      std::int64_t images, std::int64_t channels, std::int64_t pixels, bool stream) {
  constexpr std::int64_t kSlice = 64;  // pixels: a strip of the transposition reads 16 lines of each channel
  const std::int64_t slices = (pixels + kSlice - 1) / kSlice;
#pragma omp parallel for schedule(static)
  for (std::int64_t t = 0; t < images * slices; ++t) {
    const std::int64_t n = t / slices, x0 = t % slices * kSlice;
    const std::int64_t count = pixels - x0 < kSlice ? pixels - x0 : kSlice;
    kernels.transpose(in + n * channels * pixels + x0, pixels, out + n * out_image + x0 * channels, channels, count,
                      channels, stream);
    if (stream) hwy::FlushStream();  // streamed stores are visible before the threads join
  }
}

bool force_target(const std::string& name) {
  const std::lock_guard<std::mutex> lock(g_target_mutex);
  if (name.empty()) {
    g_forced = 0;
    return true;
  }
  for (std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(target)) {
      g_forced = target;
      return true;
    }
  }
  return false;
}

}  // namespace tdconv::engine
#endif
