// Per-target weight-gradient tiles (KernelSet::weight_grad, WeightGradCall in kernels.hpp). Compiled once per target
// like kernels.cpp, whose best_kernels() adds them to its KernelSet (add_weight_gradient_kernels) for the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/weight_gradient_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstdint>

#include "engine/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace tdconv::engine::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

#include "engine/simd_common-inl.h"

// The outer products of the forward gemm tile with the roles of its operands moved: the reduction runs over pixels
// instead of input channels. Each pixel of a run broadcasts M strided-side channels (one cache line of its row) and
// loads NV vectors of dense-side channels, for M x NV multiply-adds, exactly the forward tile's loads per product.
template <int M, int NV>
HWY_NOINLINE void WeightGradTile(const WeightGradCall& call) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const size_t whole = static_cast<size_t>(call.nr_valid) / lanes, rest = static_cast<size_t>(call.nr_valid) % lanes;
  V acc[M][NV];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    const float* row = call.c + r * call.c_stride;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (!call.accumulate || static_cast<size_t>(v) > whole) {
        acc[r][v] = hn::Zero(d);
      } else {
        acc[r][v] = static_cast<size_t>(v) < whole ? hn::LoadU(d, row + v * lanes) : LoadPartial(d, row + v * lanes, rest);
      }
    }
  }
  for (int u = 0; u < call.runs; ++u) {
    const float* HWY_RESTRICT s = call.s[u] + call.s_offset;
    const float* HWY_RESTRICT dense = call.d[u] + call.d_offset;
    const std::int64_t length = call.length[u], s_step = call.s_step, d_step = call.d_step;
#pragma GCC unroll 2
    for (std::int64_t i = 0; i < length; ++i) {
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = LoadOnce(d, dense + i * d_step + v * lanes);
      const float* HWY_RESTRICT si = s + i * s_step;
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
        const V av = hn::Set(d, si[r]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(av, bv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    float* row = call.c + r * call.c_stride;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (static_cast<size_t>(v) < whole) hn::StoreU(acc[r][v], d, row + v * lanes);
      if (static_cast<size_t>(v) == whole && rest != 0) StorePartial(d, acc[r][v], row + v * lanes, rest);
    }
  }
}

// Depthwise: each lane its own channel on both sides. Two sets of accumulators, for even and odd pixels of a run,
// so that consecutive multiply-adds do not wait on each other (one set of NV chains left the FMA units idle three
// cycles in four with NV = 1); they are added at the end, in that order.
template <int NV>
HWY_NOINLINE void WeightGradDepthwiseTile(const WeightGradCall& call) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const size_t whole = static_cast<size_t>(call.nr_valid) / lanes, rest = static_cast<size_t>(call.nr_valid) % lanes;
  V even[NV], odd[NV];
  for (int v = 0; v < NV; ++v) {
    odd[v] = hn::Zero(d);
    if (!call.accumulate || static_cast<size_t>(v) > whole) {
      even[v] = hn::Zero(d);
    } else {
      even[v] = static_cast<size_t>(v) < whole ? hn::LoadU(d, call.c + v * lanes) : LoadPartial(d, call.c + v * lanes, rest);
    }
  }
  for (int u = 0; u < call.runs; ++u) {
    const float* HWY_RESTRICT s = call.s[u] + call.s_offset;
    const float* HWY_RESTRICT dense = call.d[u] + call.d_offset;
    const std::int64_t length = call.length[u], s_step = call.s_step, d_step = call.d_step;
    std::int64_t i = 0;
    for (; i + 1 < length; i += 2) {
      for (int v = 0; v < NV; ++v) {
        even[v] = hn::MulAdd(hn::LoadU(d, s + i * s_step + v * lanes), hn::LoadU(d, dense + i * d_step + v * lanes),
                             even[v]);
        odd[v] = hn::MulAdd(hn::LoadU(d, s + (i + 1) * s_step + v * lanes),
                            hn::LoadU(d, dense + (i + 1) * d_step + v * lanes), odd[v]);
      }
    }
    if (i < length) {
      for (int v = 0; v < NV; ++v) {
        even[v] = hn::MulAdd(hn::LoadU(d, s + i * s_step + v * lanes), hn::LoadU(d, dense + i * d_step + v * lanes),
                             even[v]);
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    const V sum = hn::Add(even[v], odd[v]);
    if (static_cast<size_t>(v) < whole) hn::StoreU(sum, d, call.c + v * lanes);
    if (static_cast<size_t>(v) == whole && rest != 0) StorePartial(d, sum, call.c + v * lanes, rest);
  }
}

// Runtime m -> compile-time M: a tile never reads a strided-side channel past its m.
template <int NV, int M = GemmRows(NV)>
void WeightGradEntry(const WeightGradCall& call) {
  if constexpr (M > 1) {
    if (call.m < M) return WeightGradEntry<NV, M - 1>(call);
  }
  WeightGradTile<M, NV>(call);
}

void FillWeightGradientKernels(KernelSet* set) {
  set->weight_grad_target = hwy::TargetName(HWY_TARGET);
  set->weight_grad_mr[1] = GemmRows(1), set->weight_grad_mr[2] = GemmRows(2);
  set->weight_grad_mr[3] = GemmRows(3), set->weight_grad_mr[4] = GemmRows(4);
  set->weight_grad[1] = WeightGradEntry<1>, set->weight_grad[2] = WeightGradEntry<2>;
  set->weight_grad[3] = WeightGradEntry<3>, set->weight_grad[4] = WeightGradEntry<4>;
  set->weight_grad_depthwise[1] = WeightGradDepthwiseTile<1>, set->weight_grad_depthwise[2] = WeightGradDepthwiseTile<2>;
  set->weight_grad_depthwise[3] = WeightGradDepthwiseTile<3>, set->weight_grad_depthwise[4] = WeightGradDepthwiseTile<4>;
}

}  // namespace tdconv::engine::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tdconv::engine {
HWY_EXPORT(FillWeightGradientKernels);

void add_weight_gradient_kernels(KernelSet& set) { HWY_DYNAMIC_DISPATCH(FillWeightGradientKernels)(&set); }

}  // namespace tdconv::engine
#endif
