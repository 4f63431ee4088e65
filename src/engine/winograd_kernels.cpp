// Per-target Winograd transforms (winograd_transforms-inl.h) for every tile shape the engine uses. Compiled once per
// target like kernels.cpp, whose best_kernels() adds them to its KernelSet (add_winograd_kernels) for the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/winograd_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

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
#include "engine/winograd_transforms-inl.h"

// The Winograd transforms of every tile shape the engine uses (see KernelSet::winograd_input): the same 2 or 3 taps
// on every axis, or 1 or 2 taps on each axis (the stride phases of a transposed convolution whose kernel is longer
// than the stride but at most twice it, e.g. 3 at stride 2), or 3 taps on two inputs (kWinogradPaddedEnds).
template <int... R>
void SetWinogradTransform(KernelSet& set) {
  constexpr std::array<int, 3> kTaps = [] {
    std::array<int, 3> taps{0, 0, 0};
    const std::array<int, sizeof...(R)> given{R...};
    for (std::size_t a = 0; a < given.size(); ++a) taps[3 - given.size() + a] = given[a];
    return taps;
  }();
  set.winograd_input[kTaps[0]][kTaps[1]][kTaps[2]] = WinogradInput<2, R...>;
  set.winograd_output[kTaps[0]][kTaps[1]][kTaps[2]] = WinogradOutput<2, R...>;
}

void SetWinogradTransforms(KernelSet& set) {
  SetWinogradTransform<2>(set), SetWinogradTransform<2, 2>(set), SetWinogradTransform<2, 2, 2>(set);
  SetWinogradTransform<3>(set), SetWinogradTransform<3, 3>(set), SetWinogradTransform<3, 3, 3>(set);
  SetWinogradTransform<1>(set), SetWinogradTransform<1, 1>(set), SetWinogradTransform<1, 2>(set);
  SetWinogradTransform<2, 1>(set), SetWinogradTransform<1, 1, 1>(set), SetWinogradTransform<1, 1, 2>(set);
  SetWinogradTransform<1, 2, 1>(set), SetWinogradTransform<1, 2, 2>(set), SetWinogradTransform<2, 1, 1>(set);
  SetWinogradTransform<2, 1, 2>(set), SetWinogradTransform<2, 2, 1>(set);
  // 3 taps on inputs whose F(2, 3) patch ends are padding (kWinogradPaddedEnds), on every axis or mixed with F(2, 3)
  // in 2D (a dilation of half the image or more along one axis only)
  constexpr int kP = kWinogradPaddedEnds;
  SetWinogradTransform<kP>(set), SetWinogradTransform<kP, kP>(set), SetWinogradTransform<kP, kP, kP>(set);
  SetWinogradTransform<kP, 3>(set), SetWinogradTransform<3, kP>(set);
  // F(4, 3) along x (and F(2, 3) along y), 1D and 2D; F(4, 2) in 1D
  set.winograd4_input[3][1] = WinogradInput<4, 3>, set.winograd4_output[3][1] = WinogradOutput<4, 3>;
  set.winograd4_input[3][2] = WinogradInput<4, 3, 3>, set.winograd4_output[3][2] = WinogradOutput<4, 3, 3>;
  set.winograd4_input[2][1] = WinogradInput<4, 2>, set.winograd4_output[2][1] = WinogradOutput<4, 2>;
}

void FillWinogradKernels(KernelSet* set) {
  set->winograd_target = hwy::TargetName(HWY_TARGET);
  SetWinogradTransforms(*set);
}

}  // namespace tdconv::engine::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tdconv::engine {
HWY_EXPORT(FillWinogradKernels);

void add_winograd_kernels(KernelSet& set) { HWY_DYNAMIC_DISPATCH(FillWinogradKernels)(&set); }

}  // namespace tdconv::engine
#endif
