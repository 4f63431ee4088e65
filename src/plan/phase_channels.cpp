// diff_dst's stride phases as channels (see phase_channels.hpp).
#include "plan/phase_channels.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::detail {
namespace {

// Z's source within this many bytes per call: with the plan's own scratch, a few MiB per image batch rather than a
// copy of the whole diff_dst (DCGAN g4's training step: 19 MiB in one, 4.7 MiB in calls of 16 images).
constexpr double kMaxPhaseSourceBytes = 8.0 * 1024 * 1024;

// The axes as z, y, x (leading axes of 1D and 2D problems of size 1, stride 1, one tap).
struct Axes {
  std::array<std::int64_t, 3> dy{1, 1, 1};      // diff_dst's size (p's output)
  std::array<std::int64_t, 3> z{1, 1, 1};       // Z's size (q's input)
  std::array<std::int64_t, 3> stride{1, 1, 1};  // phases per axis
  std::array<std::int64_t, 3> taps{1, 1, 1};    // r: q's kernel
  std::array<std::int64_t, 3> kernel{1, 1, 1};  // p's kernel
  std::array<std::int64_t, 3> pad{0, 0, 0};     // p's pad_begin
  std::int64_t phases() const { return stride[0] * stride[1] * stride[2]; }
};

Axes axes_of(const Problem& p) {
  Axes a;
  const Dims out = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const auto i = static_cast<std::size_t>(3 - p.spatial_dims + d);
    a.dy[i] = out[d];
    a.stride[i] = p.stride[d];
    a.kernel[i] = p.kernel[d];
    a.taps[i] = p.kernel[d] / p.stride[d];
    a.z[i] = p.input[d] + a.taps[i] - 1;
    a.pad[i] = p.pad_begin[d];
  }
  return a;
}

// Bytes of Z per image.
double source_bytes_per_image(const Problem& p) {
  const Axes a = axes_of(p);
  return static_cast<double>(a.z[0] * a.z[1] * a.z[2]) * static_cast<double>(p.out_channels * a.phases()) *
         sizeof(float);
}

}  // namespace

std::optional<Problem> phase_channels_problem(const Problem& p, std::int64_t images) {
  if (p.op != Op::conv_transpose || p.dtype != DType::f32 || p.groups != 1) return std::nullopt;
  // channels_first: Winograd stages its channels_first sources and outputs in channels_last, and with Z copied
  // besides, DCGAN g4's data gradient ran no faster (40.8 against 40.5 ms, 1 thread; 21.7 against 21.5 at 2).
  if (p.layout != Layout::channels_last) return std::nullopt;
  if (images < 1 || p.batch % images != 0) return std::nullopt;
  bool strided = false;
  std::int64_t r = 0;
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t k = p.kernel[d], s = p.stride[d];
    if (p.dilation[d] != 1 || k % s != 0) return std::nullopt;
    if (r == 0) r = k / s;
    if (k / s != r || (r != 2 && r != 3)) return std::nullopt;
    strided = strided || s > 1;
  }
  if (!strided) return std::nullopt;
  std::int64_t phases = 1;
  for (int d = 0; d < p.spatial_dims; ++d) phases *= p.stride[d];
  Problem q = p;
  q.op = Op::conv;
  q.batch = images;
  q.in_channels = p.out_channels * phases;
  q.out_channels = p.in_channels;
  for (int d = 0; d < p.spatial_dims; ++d) {
    q.input[d] = p.input[d] + r - 1;
    q.kernel[d] = r;
    q.stride[d] = 1;
    q.pad_begin[d] = q.pad_end[d] = q.output_padding[d] = 0;
  }
  validate(q);
  return q;
}

std::int64_t phase_channels_images(const Problem& p) {
  const double per_image = source_bytes_per_image(p);
  for (std::int64_t images = p.batch; images > 1; --images) {
    if (p.batch % images == 0 && static_cast<double>(images) * per_image <= kMaxPhaseSourceBytes) return images;
  }
  return 1;
}

void phase_channels_weights(const Problem& p, const Problem& q, const float* w, float* out) {
  const Axes a = axes_of(p);
  const std::int64_t p_taps = a.kernel[0] * a.kernel[1] * a.kernel[2], q_taps = a.taps[0] * a.taps[1] * a.taps[2];
  const engine::WeightStrides from = engine::weight_strides(p, p_taps), to = engine::weight_strides(q, q_taps);
  const std::int64_t channels = p.out_channels;
  for (std::int64_t t = 0; t < p_taps; ++t) {
    // p's tap k = s u + rho per axis: q's tap u of phase rho (the kernel is r strides, so every tap has one).
    const std::array<std::int64_t, 3> k{t / (a.kernel[1] * a.kernel[2]), t / a.kernel[2] % a.kernel[1],
                                        t % a.kernel[2]};
    std::int64_t rho = 0, u = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      rho = rho * a.stride[i] + k[i] % a.stride[i];
      u = u * a.taps[i] + k[i] / a.stride[i];
    }
    for (std::int64_t n = 0; n < p.in_channels; ++n)
      for (std::int64_t c = 0; c < channels; ++c) out[to.at(0, rho * channels + c, n, u)] = w[from.at(0, n, c, t)];
  }
}

void phase_channels_source(const Problem& p, const Problem& q, const float* dy, std::int64_t n0, float* z) {
  const Axes a = axes_of(p);
  const std::int64_t channels = p.out_channels, phases = a.phases();
  const std::int64_t dy_pixels = a.dy[0] * a.dy[1] * a.dy[2], z_pixels = a.z[0] * a.z[1] * a.z[2];
  // dy's index along axis i of Z's m in phase rho, or -1 outside dy.
  auto at = [&](std::size_t i, std::int64_t m, std::int64_t rho) {
    const std::int64_t j = a.stride[i] * m + rho - a.pad[i];
    return j >= 0 && j < a.dy[i] ? j : -1;
  };
  const std::int64_t rows = q.batch * a.z[0] * a.z[1];  // (image, z, y) rows of Z, each all phases along x
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t image = row / (a.z[0] * a.z[1]), mz = row / a.z[1] % a.z[0], my = row % a.z[1];
    const float* dy_image = dy + (n0 + image) * channels * dy_pixels;
    float* z_image = z + image * channels * phases * z_pixels;
    for (std::int64_t rz = 0; rz < a.stride[0]; ++rz)
      for (std::int64_t ry = 0; ry < a.stride[1]; ++ry) {
        const std::int64_t jz = at(0, mz, rz), jy = at(1, my, ry);
        const std::int64_t z_row = (mz * a.z[1] + my) * a.z[2];
        for (std::int64_t rx = 0; rx < a.stride[2]; ++rx) {
          const std::int64_t rho = (rz * a.stride[1] + ry) * a.stride[2] + rx;
          for (std::int64_t mx = 0; mx < a.z[2]; ++mx) {  // one copy (or zeros) of the channels per pixel and phase
            const std::int64_t jx = at(2, mx, rx);
            float* to = z_image + ((z_row + mx) * phases + rho) * channels;
            if (jz >= 0 && jy >= 0 && jx >= 0) {
              const float* from = dy_image + ((jz * a.dy[1] + jy) * a.dy[2] + jx) * channels;
              std::memcpy(to, from, static_cast<std::size_t>(channels) * sizeof(float));
            } else {
              std::fill(to, to + channels, 0.0f);
            }
          }
        }
      }
  }
}

}  // namespace tdconv::detail
