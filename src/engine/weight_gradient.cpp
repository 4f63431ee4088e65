// Weight gradients as GEMMs over pixels. Both operations connect a strided side (a convolution's output, a
// transposed convolution's input) to a dense side through the same index map, dense = j * stride + k * dilation -
// pad_begin per axis, so for either
//   dW[g][s][d][k] = sum over images n and strided pixels j of  S[n][j][g, s] * D[n][j * stride + k * dilation -
//                    pad_begin][g, d]
// (S the strided side, D the dense side; a convolution's S is diff_dst and D src, a transposed one's the other way
// round). For each tap k that is a product of S's channels and D's, reduced over the pixels j whose dense pixel
// lies inside D: along x those are one run per row of S, at a fixed step through D. The tiles (weight_gradient_
// kernels.cpp) hold m strided channels x NR dense channels of one tap in registers and walk the runs of a chunk of
// rows; chunks follow each other, each tile's sums continuing where the last chunk left them, so every sum has
// the same order whatever the threads, which split the tiles of a chunk.
#include "engine/weight_gradient.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

// Pixels of S per chunk, at least: each tile then sums a few hundred pixels between storing and reloading its
// partial sums, and a chunk's rows of S and D stay in L2 while every tile of the chunk reads them.
constexpr std::int64_t kChunkPixels = 256;

struct Geometry {
  std::int64_t cs = 1, cd = 1, csg = 1, cdg = 1, taps = 1;
  std::array<std::int64_t, 3> s_size{1, 1, 1}, d_size{1, 1, 1}, kernel{1, 1, 1};
  std::array<std::int64_t, 3> stride{1, 1, 1}, dilation{1, 1, 1}, pad{0, 0, 0};
  // Per axis and kernel tap along it: the strided pixels [lo, hi) whose dense pixel lies inside D.
  std::array<std::vector<std::int64_t>, 3> lo, hi;
  std::int64_t s_pixels() const { return s_size[0] * s_size[1] * s_size[2]; }
  std::int64_t d_pixels() const { return d_size[0] * d_size[1] * d_size[2]; }
};

Geometry geometry(const Problem& p) {
  Geometry g;
  const bool conv = p.op == Op::conv;
  g.cs = conv ? p.out_channels : p.in_channels;
  g.cd = conv ? p.in_channels : p.out_channels;
  g.csg = g.cs / p.groups, g.cdg = g.cd / p.groups;
  const Dims out = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const auto a = static_cast<std::size_t>(3 - p.spatial_dims + d);  // z, y, x: leading axes trivial
    g.s_size[a] = conv ? out[d] : p.input[d];
    g.d_size[a] = conv ? p.input[d] : out[d];
    g.kernel[a] = p.kernel[d], g.stride[a] = p.stride[d], g.dilation[a] = p.dilation[d], g.pad[a] = p.pad_begin[d];
    g.taps *= p.kernel[d];
  }
  for (std::size_t a = 0; a < 3; ++a) {
    for (std::int64_t k = 0; k < g.kernel[a]; ++k) {
      const std::int64_t shift = k * g.dilation[a] - g.pad[a];  // dense = j * stride + shift
      const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(-shift, g.stride[a]));
      const std::int64_t hi = std::min(g.s_size[a], ceil_div(g.d_size[a] - shift, g.stride[a]));
      g.lo[a].push_back(lo);
      g.hi[a].push_back(std::max(lo, hi));
    }
  }
  return g;
}

// The runs of one chunk of S's rows, tap after tap: run u of tap t is runs[begin[t] + u].
struct Runs {
  std::vector<const float*> s, d;
  std::vector<std::int64_t> length;
  std::vector<std::int64_t> begin;  // taps + 1 entries
};

// Rows [row0, row1) of one image's S (rows: (z, y) pairs, x along the row) against its D (channels_last, cd floats
// per pixel).
void collect_runs(const Geometry& g, const float* s_image, const float* d_image, std::int64_t row0, std::int64_t row1,
                  Runs& runs) {
  runs.s.clear(), runs.d.clear(), runs.length.clear(), runs.begin.assign(1, 0);
  for (std::int64_t kz = 0; kz < g.kernel[0]; ++kz)
    for (std::int64_t ky = 0; ky < g.kernel[1]; ++ky)
      for (std::int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const auto ukz = static_cast<std::size_t>(kz), uky = static_cast<std::size_t>(ky);
        const auto ukx = static_cast<std::size_t>(kx);
        const std::int64_t x0 = g.lo[2][ukx], x1 = g.hi[2][ukx];
        for (std::int64_t row = row0; row < row1 && x0 < x1; ++row) {
          const std::int64_t jz = row / g.s_size[1], jy = row % g.s_size[1];
          if (jz < g.lo[0][ukz] || jz >= g.hi[0][ukz] || jy < g.lo[1][uky] || jy >= g.hi[1][uky]) continue;
          const std::int64_t dz = jz * g.stride[0] + kz * g.dilation[0] - g.pad[0];
          const std::int64_t dy = jy * g.stride[1] + ky * g.dilation[1] - g.pad[1];
          const std::int64_t dx = x0 * g.stride[2] + kx * g.dilation[2] - g.pad[2];
          runs.s.push_back(s_image + (row * g.s_size[2] + x0) * g.cs);
          runs.d.push_back(d_image + ((dz * g.d_size[1] + dy) * g.d_size[2] + dx) * g.cd);
          runs.length.push_back(x1 - x0);
        }
        runs.begin.push_back(static_cast<std::int64_t>(runs.s.size()));
      }
}

// One image (channels_last) into `out`, with `slack` zeros after it.
void copy_image(const KernelSet& kernels, const float* image, bool channels_first, std::int64_t channels,
                std::int64_t pixels, std::int64_t slack, util::AlignedFloats& out) {
  const auto floats = static_cast<std::size_t>(channels * pixels);
  out.resize(floats + static_cast<std::size_t>(slack));
  if (channels_first) {
    to_channels_last(kernels, image, out.data(), channels * pixels, 1, channels, pixels, false);
  } else {
    std::memcpy(out.data(), image, floats * sizeof(float));
  }
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(floats), out.end(), 0.0f);
}

void bias_gradient(const Problem& p, const float* diff_dst, float* diff_bias) {
  const Dims out = output_size(p);
  std::int64_t pixels = 1;
  for (int d = 0; d < p.spatial_dims; ++d) pixels *= out[d];
  const std::int64_t oc = p.out_channels;
  std::vector<double> sum(static_cast<std::size_t>(oc), 0.0);
  for (std::int64_t n = 0; n < p.batch; ++n) {
    const float* image = diff_dst + n * oc * pixels;
    if (p.layout == Layout::channels_last) {
      for (std::int64_t i = 0; i < pixels; ++i)
        for (std::int64_t c = 0; c < oc; ++c) sum[static_cast<std::size_t>(c)] += image[i * oc + c];
    } else {
      for (std::int64_t c = 0; c < oc; ++c)
        for (std::int64_t i = 0; i < pixels; ++i) sum[static_cast<std::size_t>(c)] += image[c * pixels + i];
    }
  }
  for (std::int64_t c = 0; c < oc; ++c) diff_bias[c] = static_cast<float>(sum[static_cast<std::size_t>(c)]);
}

}  // namespace

void weight_gradient(const Problem& p, const float* src, const float* diff_dst, float* diff_weights,
                     float* diff_bias) {
  const Geometry g = geometry(p);
  const KernelSet kernels = best_kernels();
  const int vectors = fewest_loads_vectors(kernels, g.cdg);
  const std::int64_t mr = kernels.weight_grad_mr[vectors], nr = vectors * static_cast<std::int64_t>(kernels.lanes);
  const WeightGradFn tile = kernels.weight_grad[vectors];
  const std::int64_t s_blocks = (g.csg + mr - 1) / mr, d_blocks = (g.cdg + nr - 1) / nr;
  const std::int64_t tiles = p.groups * g.taps * s_blocks * d_blocks;
  const bool conv = p.op == Op::conv, channels_first = p.layout == Layout::channels_first;
  const float* s_tensor = conv ? diff_dst : src;
  const float* d_tensor = conv ? src : diff_dst;
  // The sums, [group][tap][strided channel][dense channel], then written in the weight layout.
  // The calling thread's buffers, kept between calls; the OpenMP threads reach them through these references (a
  // thread_local named inside the parallel loop would be each worker's own, empty one).
  thread_local util::AlignedFloats local_sums, local_s_copy, local_d_copy;
  thread_local Runs local_runs;
  util::AlignedFloats &sums = local_sums, &s_copy = local_s_copy, &d_copy = local_d_copy;
  Runs& runs = local_runs;
  sums.resize(static_cast<std::size_t>(p.groups * g.taps * g.csg * g.cdg));
  const std::int64_t rows = g.s_size[0] * g.s_size[1];
  const std::int64_t rows_per_chunk = std::max<std::int64_t>(1, kChunkPixels / g.s_size[2]);
  bool first = true;
  for (std::int64_t n = 0; n < p.batch; ++n) {
    const float* s_image = s_tensor + n * g.cs * g.s_pixels();
    if (channels_first) {
      copy_image(kernels, s_image, true, g.cs, g.s_pixels(), 0, s_copy);
      s_image = s_copy.data();
    }
    // The tiles read whole vectors of dense channels: nr floats of room past the last pixel.
    copy_image(kernels, d_tensor + n * g.cd * g.d_pixels(), channels_first, g.cd, g.d_pixels(), nr, d_copy);
    for (std::int64_t row0 = 0; row0 < rows; row0 += rows_per_chunk) {
      collect_runs(g, s_image, d_copy.data(), row0, std::min(rows, row0 + rows_per_chunk), runs);
      const bool accumulate = !first;
      first = false;
      // Tiles in the order group, tap, dense block, strided block: consecutive tiles read the same dense vectors.
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < tiles; ++i) {
        const std::int64_t sb = i % s_blocks, db = i / s_blocks % d_blocks, t = i / (s_blocks * d_blocks) % g.taps;
        const std::int64_t group = i / (s_blocks * d_blocks * g.taps);
        const auto first_run = static_cast<std::size_t>(runs.begin[static_cast<std::size_t>(t)]);
        WeightGradCall call;
        call.m = static_cast<int>(std::min(mr, g.csg - sb * mr));
        call.runs = static_cast<int>(runs.begin[static_cast<std::size_t>(t) + 1] - runs.begin[static_cast<std::size_t>(t)]);
        call.s = runs.s.data() + first_run;
        call.d = runs.d.data() + first_run;
        call.length = runs.length.data() + first_run;
        call.s_offset = group * g.csg + sb * mr;
        call.d_offset = group * g.cdg + db * nr;
        call.s_step = g.cs;
        call.d_step = g.stride[2] * g.cd;
        call.c = sums.data() + ((group * g.taps + t) * g.csg + sb * mr) * g.cdg + db * nr;
        call.c_stride = g.cdg;
        call.nr_valid = static_cast<int>(std::min(nr, g.cdg - db * nr));
        call.accumulate = accumulate;
        tile(call);
      }
    }
  }
  const WeightStrides to = weight_strides(p, g.taps);
  for (std::int64_t group = 0; group < p.groups; ++group)
    for (std::int64_t t = 0; t < g.taps; ++t)
      for (std::int64_t s = 0; s < g.csg; ++s) {
        const float* from = sums.data() + ((group * g.taps + t) * g.csg + s) * g.cdg;
        for (std::int64_t d = 0; d < g.cdg; ++d) {
          // weight_strides counts (input channel, output channel): a convolution's strided side is its output.
          diff_weights[conv ? to.at(group, d, s, t) : to.at(group, s, d, t)] = from[d];
        }
      }
  if (diff_bias != nullptr) bias_gradient(p, diff_dst, diff_bias);
}

}  // namespace tdconv::engine
