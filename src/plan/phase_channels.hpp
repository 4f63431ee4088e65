#pragma once
// The data gradient of a transposed convolution whose kernel is 2 or 3 times its stride (DCGAN's 4 x 4 at stride 2)
// as a convolution at stride 1 over diff_dst's stride phases stacked as channels ("space to depth"). Its adjoint is a
// convolution at stride s, dx[o] = sum over taps k of dy[s o + k - pad_begin] w[k] along each axis; with k = s u + rho
// (u < r = kernel / s, rho < s) that is the sum over rho and u of Z_rho[o + u] w[s u + rho], where Z_rho[m] =
// dy[s m + rho - pad_begin] (zero outside dy): a convolution of r taps at stride 1 and no padding over Z, whose
// channels are dy's channels once per phase rho. The engine's Winograd path runs that (F(2, 2) or F(2, 3) per axis),
// where the strided adjoint has only the direct GEMMs.
#include <cstdint>
#include <optional>

#include "tdconv/problem.hpp"

namespace tdconv::detail {

// The stride-1 problem q for `images` images of p's batch: a float32 channels_last transposed convolution of one
// group, dilation 1, a stride over 1 on some axis and a kernel r times the stride on every axis with r 2 or 3, the same
// r on all (Winograd compiles equal tap counts). q: a convolution, input channels p.out_channels x the phases (the
// product of the strides), output channels p.in_channels, kernel r, no padding, input p.input + r - 1 per axis, so
// that its output is p's input; p's layouts. nullopt otherwise.
std::optional<Problem> phase_channels_problem(const Problem& p, std::int64_t images);

// Images per call of q: the most that divide p's batch with Z (q's source) within kMaxPhaseSourceBytes, at least 1.
std::int64_t phase_channels_images(const Problem& p);

// p's weights (p's weight layout) as q's: q's weight (input channel rho * C + c, output channel n, taps u) is p's
// (input channel n, output channel c, taps s u + rho per axis), C = p.out_channels.
void phase_channels_weights(const Problem& p, const Problem& q, const float* w, float* out);

// Z for images [n0, n0 + q.batch) of diff_dst (p's dst, channels_last) as q's src: channel rho * C + c of pixel m is
// dy's channel c at s m + rho - pad_begin per axis, 0 outside dy.
void phase_channels_source(const Problem& p, const Problem& q, const float* dy, std::int64_t n0, float* z);

}  // namespace tdconv::detail
