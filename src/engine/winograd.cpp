// Winograd F(2, 3) along every axis for convolutions with 3 taps per axis at stride 1 and any dilation, in 1D
// (TCN), 2D (DeepLab, ASPP, context modules) and 3D (volumetric segmentation).
//
// Dilation d splits each axis's outputs into d residue classes, each a dense stride-1 convolution of a sub-sampled
// input (DESIGN.md); a tile of one class, 2 outputs per axis, reads an input patch of 4 pixels per axis, d apart.
// Per batch of tiles: transform each patch (4^D values per channel), multiply the 4^D transformed planes by the
// transformed kernels with the gemm tile kernel (4^D GEMMs of tiles x C_in x C_out), transform back to 2^D outputs.
// Per output 2^D multiplications instead of 3^D: 1.5x fewer in 1D, 2.25x in 2D, 3.4x in 3D, at an error measured
// within 1e-4 relative by the differential tests.
#include "engine/winograd.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "engine/kernels.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

constexpr std::int64_t kTilesPerBatch = 36;
// Measured on the suite (AVX-512) with the two paths timed in turns, run by run (the machine's speed drifts too much
// for anything else): Winograd beat the gemm path on DeepLab's res5 (512 channels, 1.69x fewer multiplications
// than the valid taps), on the 64-channel context module at rate 16 (1.89x fewer; 1.2-1.3x faster at 1 and 2
// threads, both layouts) and on ASPP rate 6 (1.46x fewer; 1.04-1.16x faster). ASPP rate 18 (fewer products than
// Winograd's) stays on the gemm path. Below 64 channels nothing was measured.
constexpr double kMinMultiplicationRatio = 1.4;
constexpr std::int64_t kMinChannels = 64;
// channels_first: chunks of images are copied into channels_last (at most this much scratch), and each tile row's
// outputs (the up to 2 x 2 output rows of the tiles with one top row) are staged per thread, at most
// kMaxStagedBytes, and transposed into the channel planes.
constexpr double kMaxImageBytes = 12.0 * 1024 * 1024;
constexpr double kMaxStagedBytes = 2.0 * 1024 * 1024;
// Transformed input channels per gemm call: the packed weights of one call, kPassChannels x 64 floats, stay in L1
// for all the batch's tiles (+2-8% on DeepLab's res5 and ASPP rate 6, timed in turns against whole rows of 512
// and 2048 channels; 64 and 256 channels were no better).
constexpr std::int64_t kPassChannels = 128;

// The problem's axes as z, y, x: a 1D or 2D problem's leading axes are trivial (size 1, one tap, not transformed).
struct Axes {
  int dims = 0;  // transformed axes: the last `dims` of the three
  std::array<std::int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, dil{1, 1, 1}, pad{0, 0, 0};
  bool active(int a) const { return a >= 3 - dims; }
};

Axes axes_of(const Problem& p) {
  Axes g;
  g.dims = p.spatial_dims;
  const Dims out = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const int a = 3 - p.spatial_dims + d;
    g.in[a] = p.input[d], g.out[a] = out[d], g.dil[a] = p.dilation[d], g.pad[a] = p.pad_begin[d];
  }
  return g;
}

// Multiply-adds per channel pair that the gemm path performs: (output, tap) pairs whose input is not padding.
double valid_taps(const Problem& p) {
  const Dims out = output_size(p);
  double taps = 1;
  for (int d = 0; d < p.spatial_dims; ++d) {
    std::int64_t count = 0;
    for (std::int64_t k = 0; k < p.kernel[d]; ++k) {  // outputs o with 0 <= o + k*dil - pad < input
      const std::int64_t lo = std::max<std::int64_t>(0, p.pad_begin[d] - k * p.dilation[d]);
      const std::int64_t hi = std::min<std::int64_t>(out[d], p.input[d] + p.pad_begin[d] - k * p.dilation[d]);
      count += std::max<std::int64_t>(0, hi - lo);
    }
    taps *= static_cast<double>(count);
  }
  return taps;
}

// Multiply-adds per channel pair of Winograd: 4 per axis per tile (2 outputs per axis) of each residue class.
double winograd_products(const Problem& p) {
  const Dims out = output_size(p);
  double products = 1;
  for (int d = 0; d < p.spatial_dims; ++d) {
    std::int64_t tiles = 0;
    for (std::int64_t r = 0; r < std::min(p.dilation[d], out[d]); ++r) {
      tiles += ((out[d] - r + p.dilation[d] - 1) / p.dilation[d] + 1) / 2;
    }
    products *= 4.0 * static_cast<double>(tiles);
  }
  return products;
}

// Output bytes one tile row stages in channels_first (see forward_channels_first).
double staged_bytes(const Problem& p) {
  const Dims out = output_size(p);
  const double rows = p.spatial_dims == 1 ? 1 : (p.spatial_dims == 2 ? 2 : 4);
  return rows * static_cast<double>(out[p.spatial_dims - 1] * p.out_channels) * sizeof(float);
}

// Images per chunk of a channels_first source copied into channels_last: a divisor of the batch within
// kMaxImageBytes (0 if one image is larger).
std::int64_t chunk_images(const Problem& p) {
  const double image = static_cast<double>(element_count(src_shape(p), "src") / p.batch) * sizeof(float);
  if (image > kMaxImageBytes) return 0;
  std::int64_t n = std::min<std::int64_t>(p.batch, static_cast<std::int64_t>(kMaxImageBytes / image));
  while (p.batch % n != 0) --n;
  return n;
}

struct TileOrigin {
  std::array<std::int64_t, 3> o;  // output of tile element 0; element (i, j, k) at o + (i, j, k) * dilation
};

// channels_first: the tiles whose first output row (z, y) is the same, tiles [first, first + count) of
// State::tiles.
struct TileRow {
  std::int64_t oz, oy, first, count;
};

struct State final : PlanState {
  KernelSet kernels;
  Axes axes;
  int elements = 16, outputs = 4;  // per tile: 4^dims transformed elements, 2^dims outputs
  int rows = 1, vectors = 1;
  std::int64_t nr = 1, blocks = 1;
  std::vector<TileOrigin> tiles;
  std::vector<TileRow> tile_rows;  // channels_first only; tiles are then sorted by (oz, oy, ox)
  std::int64_t images = 1;  // channels_first: images per chunk copied into channels_last
};

struct Packed final : PackedData {
  std::vector<float> u;  // [element e][block][input channel][nr output channels]
};

// G g G^T along every axis of one kernel of 3^dims taps (row-major), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]:
// 4^dims values, row-major.
std::vector<float> transform_kernel(std::vector<double> g, int dims) {
  static constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  std::array<std::int64_t, 3> shape{3, 3, 3};
  for (int axis = 0; axis < dims; ++axis) {
    std::int64_t outer = 1, inner = 1;
    for (int a = 0; a < axis; ++a) outer *= shape[static_cast<std::size_t>(a)];
    for (int a = axis + 1; a < dims; ++a) inner *= shape[static_cast<std::size_t>(a)];
    std::vector<double> next(static_cast<std::size_t>(outer * 4 * inner), 0.0);
    for (std::int64_t o = 0; o < outer; ++o)
      for (int i = 0; i < 4; ++i)
        for (std::int64_t j = 0; j < inner; ++j) {
          double sum = 0;
          for (int k = 0; k < 3; ++k) sum += kG[i][k] * g[static_cast<std::size_t>((o * 3 + k) * inner + j)];
          next[static_cast<std::size_t>((o * 4 + i) * inner + j)] = sum;
        }
    g = std::move(next);
    shape[static_cast<std::size_t>(axis)] = 4;
  }
  return {g.begin(), g.end()};
}

class Winograd final : public detail::Implementation {
 public:
  std::string name() const override { return "winograd_f2x3"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.op != Op::conv) return "not a convolution";
    for (int d = 0; d < p.spatial_dims; ++d) {
      if (p.kernel[d] != 3 || p.stride[d] != 1) return "not 3 taps at stride 1 along every axis";
    }
    if (p.dtype != DType::f32) return "not float32";
    if (p.layout == Layout::channels_first && chunk_images(p) == 0) return "channels_first with images over 12 MiB";
    if (p.layout == Layout::channels_first && staged_bytes(p) > kMaxStagedBytes) {
      return "channels_first with tile rows over 2 MiB of output (each thread stages one)";
    }
    if (p.groups != 1) return "grouped";
    const int lanes = best_kernels().lanes;
    if (p.in_channels % lanes || p.out_channels % lanes) return "channels not a multiple of the vector width";
    if (p.in_channels < kMinChannels || p.out_channels < kMinChannels) {
      return "fewer than " + std::to_string(kMinChannels) + " channels";
    }
    if (valid_taps(p) < kMinMultiplicationRatio * winograd_products(p)) {
      return "saves too few multiplications over skipping the padded taps";
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    s->axes = axes_of(p);
    s->elements = 1 << (2 * p.spatial_dims), s->outputs = 1 << p.spatial_dims;
    s->vectors = static_cast<int>(std::min<std::int64_t>(p.out_channels / s->kernels.lanes, kMaxVectorsPerTile));
    while (p.out_channels % (s->vectors * s->kernels.lanes) != 0) --s->vectors;
    s->rows = s->kernels.mr[s->vectors];
    s->nr = s->vectors * s->kernels.lanes;
    s->blocks = p.out_channels / s->nr;
    // Tiles of each residue class (r along each axis): outputs r, r + 2d, r + 4d, ...
    const Axes& g = s->axes;
    auto classes = [&](int a) { return g.active(a) ? std::min(g.dil[a], g.out[a]) : 1; };
    auto step = [&](int a) { return g.active(a) ? 2 * g.dil[a] : 1; };
    for (std::int64_t rz = 0; rz < classes(0); ++rz)
      for (std::int64_t ry = 0; ry < classes(1); ++ry)
        for (std::int64_t rx = 0; rx < classes(2); ++rx)
          for (std::int64_t oz = rz; oz < g.out[0]; oz += step(0))
            for (std::int64_t oy = ry; oy < g.out[1]; oy += step(1))
              for (std::int64_t ox = rx; ox < g.out[2]; ox += step(2)) s->tiles.push_back({{oz, oy, ox}});
    if (p.layout == Layout::channels_first) {
      s->images = chunk_images(p);
      std::sort(s->tiles.begin(), s->tiles.end(),
                [](const TileOrigin& a, const TileOrigin& b) { return a.o < b.o; });
      for (std::int64_t t = 0; t < static_cast<std::int64_t>(s->tiles.size()); ++t) {
        const auto& o = s->tiles[static_cast<std::size_t>(t)].o;
        if (s->tile_rows.empty() || s->tile_rows.back().oz != o[0] || s->tile_rows.back().oy != o[1]) {
          s->tile_rows.push_back({o[0], o[1], t, 0});
        }
        ++s->tile_rows.back().count;
      }
    }
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const int taps = p.spatial_dims == 1 ? 3 : (p.spatial_dims == 2 ? 9 : 27);
    auto packed = std::make_shared<Packed>();
    packed->u.assign(static_cast<std::size_t>(s.elements * ic * oc), 0.0f);
    std::vector<double> g(static_cast<std::size_t>(taps));
    for (std::int64_t o = 0; o < oc; ++o)
      for (std::int64_t q = 0; q < ic; ++q) {
        for (int t = 0; t < taps; ++t) {
          g[static_cast<std::size_t>(t)] =
              p.weight_layout == WeightLayout::torch ? w[(o * ic + q) * taps + t] : w[(t * ic + q) * oc + o];
        }
        const std::vector<float> u = transform_kernel(g, p.spatial_dims);
        for (int e = 0; e < s.elements; ++e) {
          packed->u[static_cast<std::size_t>(((e * s.blocks + o / s.nr) * ic + q) * s.nr + o % s.nr)] =
              u[static_cast<std::size_t>(e)];
        }
      }
    packed->bytes = packed->u.size() * sizeof(float);
    return packed;
  }

  // Per thread: the transformed patches and products of one batch of tiles (run_batch), and for channels_first
  // the staged tile row; per call, the channels_last copy of a chunk of images.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    std::int64_t per_thread = s.elements * kTilesPerBatch * (p.in_channels + p.out_channels);
    std::int64_t per_call = 0;
    if (p.layout == Layout::channels_first) {
      per_thread += static_cast<std::int64_t>(staged_bytes(p) / sizeof(float));
      per_call = s.images * element_count(src_shape(p), "src") / p.batch;
    }
    return static_cast<std::size_t>(threads * per_thread + per_call) * sizeof(float);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    if (p.layout == Layout::channels_first) return forward_channels_first(p, s, packed, args);
    const auto tiles = static_cast<std::int64_t>(s.tiles.size());
    const std::int64_t batches = (tiles + kTilesPerBatch - 1) / kTilesPerBatch;
    const Axes& g = s.axes;
    const std::int64_t src_image = g.in[0] * g.in[1] * g.in[2] * p.in_channels;
    const std::int64_t dst_image = g.out[0] * g.out[1] * g.out[2] * p.out_channels;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < p.batch * batches; ++item) {
      const std::int64_t n = item / batches, first = (item % batches) * kTilesPerBatch;
      const float* src = static_cast<const float*>(args.src) + n * src_image;
      float* dst = static_cast<float*>(args.dst) + n * dst_image;
      run_batch(p, s, packed, args.bias, src, first, std::min(kTilesPerBatch, tiles - first),
                [&](std::int64_t z, std::int64_t y, std::int64_t x) {
                  return dst + ((z * g.out[1] + y) * g.out[2] + x) * p.out_channels;
                });
    }
  }

  // A chunk of images at a time: the source copied into channels_last; per image and tile row (the tiles with one
  // top row), the tiles' outputs staged in channels_last and transposed into the channel planes.
  void forward_channels_first(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args) const {
    const Axes& g = s.axes;
    const std::int64_t in_pixels = g.in[0] * g.in[1] * g.in[2], out_pixels = g.out[0] * g.out[1] * g.out[2];
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const std::int64_t ny = g.active(1) ? 2 : 1;  // staged rows per staged plane (z)
    const auto rows = static_cast<std::int64_t>(s.tile_rows.size());
    thread_local std::vector<float> src_last;
    src_last.resize(static_cast<std::size_t>(s.images * in_pixels * ic));
    for (std::int64_t n0 = 0; n0 < p.batch; n0 += s.images) {
      to_channels_last(s.kernels, static_cast<const float*>(args.src) + n0 * ic * in_pixels, src_last.data(),
                       s.images, ic, in_pixels);
      const float* last = src_last.data();
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t item = 0; item < s.images * rows; ++item) {
        const std::int64_t i = item / rows;
        const TileRow& row = s.tile_rows[static_cast<std::size_t>(item % rows)];
        float* dst = static_cast<float*>(args.dst) + (n0 + i) * oc * out_pixels;
        thread_local std::vector<float> staged;  // [z of the row][y of the row][x][output channel]
        staged.resize(static_cast<std::size_t>(staged_bytes(p) / sizeof(float)));
        for (std::int64_t first = row.first; first < row.first + row.count; first += kTilesPerBatch) {
          run_batch(p, s, packed, args.bias, last + i * in_pixels * ic, first,
                    std::min(kTilesPerBatch, row.first + row.count - first),
                    [&](std::int64_t z, std::int64_t y, std::int64_t x) {
                      return staged.data() + (((z - row.oz) / g.dil[0] * ny + (y - row.oy) / g.dil[1]) * g.out[2] + x) * oc;
                    });
        }
        for (std::int64_t jz = 0; jz < (g.active(0) ? 2 : 1); ++jz)
          for (std::int64_t jy = 0; jy < ny; ++jy) {
            const std::int64_t z = row.oz + jz * g.dil[0], y = row.oy + jy * g.dil[1];
            if (z >= g.out[0] || y >= g.out[1]) continue;
            s.kernels.transpose(staged.data() + (jz * ny + jy) * g.out[2] * oc, oc,
                                dst + (z * g.out[1] + y) * g.out[2], out_pixels, oc, g.out[2], false);
          }
      }
    }
  }

  void backward_data(const Problem& p, const detail::BackwardDataArgs& a) const override {
    reference_->backward_data(p, a);
  }
  void backward_weights(const Problem& p, const detail::BackwardWeightsArgs& a) const override {
    reference_->backward_weights(p, a);
  }

 private:
  // Tiles [first, first + count) of one image: src is the image in channels_last, out_at(z, y, x) where output
  // pixel (z, y, x) goes (oc consecutive floats).
  template <class OutAt>
  void run_batch(const Problem& p, const State& s, const Packed& packed, const void* bias_data, const float* src,
                 std::int64_t first, std::int64_t count, const OutAt& out_at) const {
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const Axes& g = s.axes;

    // Per-thread scratch: transformed patches and products, one plane per element (grows once per thread).
    thread_local std::vector<float> v_buf, m_buf;
    v_buf.resize(static_cast<std::size_t>(s.elements * kTilesPerBatch * ic));
    m_buf.resize(static_cast<std::size_t>(s.elements * kTilesPerBatch * oc));
    const std::int64_t v_plane = kTilesPerBatch * ic, m_plane = kTilesPerBatch * oc;

    // Patch element e (4 per transformed axis, row-major) and output j (2 per axis) as offsets along z, y, x.
    const auto digit = [&](int index, int base, int a) {
      int place = 1;
      for (int b = 2; b > a; --b) place *= g.active(b) ? base : 1;
      return g.active(a) ? (index / place) % base : 0;
    };
    std::array<const float*, 64> patch{};
    std::array<float*, 8> outputs{};
    for (std::int64_t t = 0; t < count; ++t) {
      const TileOrigin& tile = s.tiles[static_cast<std::size_t>(first + t)];
      for (int e = 0; e < s.elements; ++e) {
        std::int64_t at = 0;
        bool inside = true;
        for (int a = 0; a < 3; ++a) {
          const std::int64_t i = tile.o[a] - g.pad[a] + digit(e, 4, a) * g.dil[a];
          inside = inside && i >= 0 && i < g.in[a];
          at = at * g.in[a] + i;
        }
        patch[static_cast<std::size_t>(e)] = inside ? src + at * ic : nullptr;
      }
      s.kernels.winograd_input[g.dims](patch.data(), ic, v_buf.data() + t * ic, v_plane);
    }

    TileCall call;
    const float* a_ptr = nullptr;
    const float* b_ptr = nullptr;
    call.a = &a_ptr;
    call.b = &b_ptr;
    call.ntaps = 1;
    call.a_pixel_stride = ic;
    call.c_pixel_stride = oc;
    call.nr_valid = static_cast<int>(s.nr);
    for (int e = 0; e < s.elements; ++e)
      for (std::int64_t block = 0; block < s.blocks; ++block)
        for (std::int64_t c0 = 0; c0 < ic; c0 += kPassChannels) {
          b_ptr = packed.u.data() + ((e * s.blocks + block) * ic + c0) * s.nr;
          call.k = std::min(kPassChannels, ic - c0);
          call.accumulate = c0 > 0;
          for (std::int64_t t = 0; t < count; t += s.rows) {
            call.m = static_cast<int>(std::min<std::int64_t>(s.rows, count - t));
            a_ptr = v_buf.data() + e * v_plane + t * ic + c0;
            call.c = m_buf.data() + e * m_plane + t * oc + block * s.nr;
            s.kernels.gemm[s.vectors](call);
          }
        }

    const float* bias = static_cast<const float*>(bias_data);
    for (std::int64_t t = 0; t < count; ++t) {
      const TileOrigin& tile = s.tiles[static_cast<std::size_t>(first + t)];
      for (int j = 0; j < s.outputs; ++j) {
        std::array<std::int64_t, 3> o{};
        bool inside = true;
        for (int a = 0; a < 3; ++a) {
          o[static_cast<std::size_t>(a)] = tile.o[a] + digit(j, 2, a) * g.dil[a];
          inside = inside && o[static_cast<std::size_t>(a)] < g.out[a];
        }
        outputs[static_cast<std::size_t>(j)] = inside ? out_at(o[0], o[1], o[2]) : nullptr;
      }
      s.kernels.winograd_output[g.dims](m_buf.data() + t * oc, m_plane, oc, bias, outputs.data());
    }
  }

  std::shared_ptr<const detail::Implementation> reference_ = detail::reference_implementation();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_winograd_engine() { return std::make_shared<Winograd>(); }

}  // namespace tdconv::engine
