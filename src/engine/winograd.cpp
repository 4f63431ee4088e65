// Winograd F(2x2, 3x3) for 3x3 convolutions at stride 1 and any dilation (DeepLab, ASPP, context modules).
//
// Dilation d splits the output into d x d residue classes, each a dense stride-1 3x3 convolution of a sub-sampled
// input (DESIGN.md); a 2x2 tile of one class reads a 4x4 input patch whose pixels are d apart. Per batch of tiles:
// transform each patch (16 values per channel), multiply the 16 transformed planes by the transformed kernels with
// the gemm tile kernel (16 GEMMs of tiles x C_in x C_out), transform back to 2x2 outputs. 16 multiplications per
// 4 outputs instead of 36: 2.25x fewer, at an error measured within 1e-4 relative by the differential tests.
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
// channels_first: each image's source is copied into channels_last (at most this much scratch), and outputs are
// staged per pair of output rows (a tile's two rows) and transposed into the channel planes.
constexpr double kMaxImageBytes = 12.0 * 1024 * 1024;

// Multiply-adds per channel pair that the gemm path performs: (output, tap) pairs whose input is not padding.
double valid_taps(const Problem& p) {
  const Dims out = output_size(p);
  double taps = 1;
  for (int d = 0; d < 2; ++d) {
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

// Multiply-adds per channel pair of Winograd: 16 per 2x2 tile of each dilation residue class.
double winograd_products(const Problem& p) {
  const Dims out = output_size(p);
  double tiles = 1;
  for (int d = 0; d < 2; ++d) {
    std::int64_t count = 0;
    for (std::int64_t r = 0; r < std::min(p.dilation[d], out[d]); ++r) count += ((out[d] - r + p.dilation[d] - 1) / p.dilation[d] + 1) / 2;
    tiles *= static_cast<double>(count);
  }
  return 16 * tiles;
}

struct TileOrigin {
  std::int64_t oy, ox;  // output of tile element (0, 0); element (i, j) is at (oy + i*dy, ox + j*dx)
};

// channels_first: the tiles whose top row is oy, tiles [first, first + count) of State::tiles.
struct RowPair {
  std::int64_t oy, first, count;
};

struct State final : PlanState {
  KernelSet kernels;
  int rows = 1, vectors = 1;
  std::int64_t nr = 1, blocks = 1;
  std::vector<TileOrigin> tiles;
  std::vector<RowPair> row_pairs;  // channels_first only; tiles are then sorted by (oy, ox)
};

struct Packed final : PackedData {
  std::vector<float> u;  // [element e][block][input channel][nr output channels]
};

// G g G^T for one 3x3 kernel, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
std::array<float, 16> transform_kernel(const std::array<double, 9>& g) {
  auto apply_g = [](double a, double b, double c, double out[4]) {
    out[0] = a, out[1] = 0.5 * (a + b + c), out[2] = 0.5 * (a - b + c), out[3] = c;
  };
  double tmp[4][3];  // G g
  for (int col = 0; col < 3; ++col) {
    double v[4];
    apply_g(g[0 * 3 + col], g[1 * 3 + col], g[2 * 3 + col], v);
    for (int r = 0; r < 4; ++r) tmp[r][col] = v[r];
  }
  std::array<float, 16> u{};
  for (int r = 0; r < 4; ++r) {
    double v[4];
    apply_g(tmp[r][0], tmp[r][1], tmp[r][2], v);
    for (int c = 0; c < 4; ++c) u[r * 4 + c] = static_cast<float>(v[c]);
  }
  return u;
}

class Winograd final : public detail::Implementation {
 public:
  std::string name() const override { return "winograd_f2x3"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.op != Op::conv || p.spatial_dims != 2) return "not a 2D convolution";
    if (p.kernel[0] != 3 || p.kernel[1] != 3 || p.stride[0] != 1 || p.stride[1] != 1) {
      return "not a 3x3 kernel at stride 1";
    }
    if (p.dtype != DType::f32) return "not float32";
    if (p.layout == Layout::channels_first &&
        static_cast<double>(p.in_channels * p.input[0] * p.input[1]) * sizeof(float) > kMaxImageBytes) {
      return "channels_first with images over 12 MiB";
    }
    if (p.layout == Layout::channels_first &&
        static_cast<double>(p.out_channels * output_size(p)[1]) * sizeof(float) > kMaxImageBytes / 6) {
      return "channels_first with output rows over 2 MiB (each thread stages two)";
    }
    if (p.groups != 1) return "grouped";
    const int lanes = best_kernels().lanes;
    if (p.in_channels % lanes || p.out_channels % lanes) return "channels not a multiple of the vector width";
    if (p.in_channels < kMinChannels || p.out_channels < kMinChannels) return "fewer than " + std::to_string(kMinChannels) + " channels";
    if (valid_taps(p) < kMinMultiplicationRatio * winograd_products(p)) {
      return "saves too few multiplications over skipping the padded taps";
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    s->vectors = static_cast<int>(std::min<std::int64_t>(p.out_channels / s->kernels.lanes, kMaxVectorsPerTile));
    while (p.out_channels % (s->vectors * s->kernels.lanes) != 0) --s->vectors;
    s->rows = s->kernels.mr[s->vectors];
    s->nr = s->vectors * s->kernels.lanes;
    s->blocks = p.out_channels / s->nr;
    const Dims out = output_size(p);
    const std::int64_t dy = p.dilation[0], dx = p.dilation[1];
    for (std::int64_t ry = 0; ry < std::min(dy, out[0]); ++ry)
      for (std::int64_t rx = 0; rx < std::min(dx, out[1]); ++rx)
        for (std::int64_t oy = ry; oy < out[0]; oy += 2 * dy)
          for (std::int64_t ox = rx; ox < out[1]; ox += 2 * dx) s->tiles.push_back({oy, ox});
    if (p.layout == Layout::channels_first) {
      std::sort(s->tiles.begin(), s->tiles.end(),
                [](const TileOrigin& a, const TileOrigin& b) { return a.oy != b.oy ? a.oy < b.oy : a.ox < b.ox; });
      for (std::int64_t t = 0; t < static_cast<std::int64_t>(s->tiles.size()); ++t) {
        if (s->row_pairs.empty() || s->row_pairs.back().oy != s->tiles[static_cast<std::size_t>(t)].oy) {
          s->row_pairs.push_back({s->tiles[static_cast<std::size_t>(t)].oy, t, 0});
        }
        ++s->row_pairs.back().count;
      }
    }
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    auto packed = std::make_shared<Packed>();
    packed->u.assign(static_cast<std::size_t>(16 * ic * oc), 0.0f);
    for (std::int64_t o = 0; o < oc; ++o)
      for (std::int64_t q = 0; q < ic; ++q) {
        std::array<double, 9> g{};
        for (int t = 0; t < 9; ++t) {
          g[t] = p.weight_layout == WeightLayout::torch ? w[(o * ic + q) * 9 + t] : w[(t * ic + q) * oc + o];
        }
        const auto u = transform_kernel(g);
        for (int e = 0; e < 16; ++e) {
          packed->u[static_cast<std::size_t>(((e * s.blocks + o / s.nr) * ic + q) * s.nr + o % s.nr)] = u[e];
        }
      }
    packed->bytes = packed->u.size() * sizeof(float);
    return packed;
  }

  // Per thread: the transformed patches and products of one batch of tiles (run_batch), and for channels_first
  // the staged pair of output rows; per call, the channels_last copy of one image.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState*, int threads) const override {
    std::int64_t per_thread = 16 * kTilesPerBatch * (p.in_channels + p.out_channels);
    std::int64_t per_call = 0;
    if (p.layout == Layout::channels_first) {
      per_thread += 2 * output_size(p)[1] * p.out_channels;
      per_call = p.in_channels * p.input[0] * p.input[1];
    }
    return static_cast<std::size_t>(threads * per_thread + per_call) * sizeof(float);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    if (p.layout == Layout::channels_first) return forward_channels_first(p, s, packed, args);
    const auto tiles = static_cast<std::int64_t>(s.tiles.size());
    const std::int64_t batches = (tiles + kTilesPerBatch - 1) / kTilesPerBatch;
    const Dims out = output_size(p);
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < p.batch * batches; ++item) {
      const std::int64_t n = item / batches, first = (item % batches) * kTilesPerBatch;
      const float* src = static_cast<const float*>(args.src) + n * p.input[0] * p.input[1] * p.in_channels;
      float* dst = static_cast<float*>(args.dst) + n * out[0] * out[1] * p.out_channels;
      run_batch(p, s, packed, args.bias, src, first, std::min(kTilesPerBatch, static_cast<std::int64_t>(s.tiles.size()) - first),
                [&](std::int64_t y, std::int64_t x) { return dst + (y * out[1] + x) * p.out_channels; });
    }
  }

  // Image by image: the source copied into channels_last; per pair of output rows (the rows of the tiles with one
  // top row), the tiles' outputs staged in channels_last and transposed into the channel planes.
  void forward_channels_first(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args) const {
    const Dims out = output_size(p);
    const std::int64_t in_pixels = p.input[0] * p.input[1], out_pixels = out[0] * out[1];
    const std::int64_t ic = p.in_channels, oc = p.out_channels, dy = p.dilation[0];
    thread_local std::vector<float> src_last;
    src_last.resize(static_cast<std::size_t>(in_pixels * ic));
    float* last = src_last.data();
    for (std::int64_t n = 0; n < p.batch; ++n) {
      const float* src = static_cast<const float*>(args.src) + n * ic * in_pixels;
      float* dst = static_cast<float*>(args.dst) + n * oc * out_pixels;
      to_channels_last(s.kernels, src, last, 1, ic, in_pixels);
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t r = 0; r < static_cast<std::int64_t>(s.row_pairs.size()); ++r) {
        const RowPair& pair = s.row_pairs[static_cast<std::size_t>(r)];
        thread_local std::vector<float> staged;  // [row of the pair][x][output channel]
        staged.resize(static_cast<std::size_t>(2 * out[1] * oc));
        for (std::int64_t first = pair.first; first < pair.first + pair.count; first += kTilesPerBatch) {
          run_batch(p, s, packed, args.bias, last, first, std::min(kTilesPerBatch, pair.first + pair.count - first),
                    [&](std::int64_t y, std::int64_t x) { return staged.data() + ((y - pair.oy) / dy * out[1] + x) * oc; });
        }
        for (std::int64_t i = 0; i < 2 && pair.oy + i * dy < out[0]; ++i) {
          s.kernels.transpose(staged.data() + i * out[1] * oc, oc, dst + (pair.oy + i * dy) * out[1], out_pixels, oc,
                              out[1], false);
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
  // Tiles [first, first + count) of one image: src is the image in channels_last, out_at(y, x) where output pixel
  // (y, x) goes (oc consecutive floats).
  template <class OutAt>
  void run_batch(const Problem& p, const State& s, const Packed& packed, const void* bias_data, const float* src,
                 std::int64_t first, std::int64_t count, const OutAt& out_at) const {
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const std::int64_t h = p.input[0], w = p.input[1];
    const Dims out = output_size(p);
    const std::int64_t dy = p.dilation[0], dx = p.dilation[1];

    // Per-thread scratch: transformed patches and products, 16 planes each (grows once per thread).
    thread_local std::vector<float> v_buf, m_buf;
    v_buf.resize(static_cast<std::size_t>(16 * kTilesPerBatch * ic));
    m_buf.resize(static_cast<std::size_t>(16 * kTilesPerBatch * oc));
    const std::int64_t v_plane = kTilesPerBatch * ic, m_plane = kTilesPerBatch * oc;

    for (std::int64_t t = 0; t < count; ++t) {
      const TileOrigin& tile = s.tiles[static_cast<std::size_t>(first + t)];
      const float* patch[16];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          const std::int64_t y = tile.oy - p.pad_begin[0] + a * dy, x = tile.ox - p.pad_begin[1] + b * dx;
          patch[a * 4 + b] = (y >= 0 && y < h && x >= 0 && x < w) ? src + (y * w + x) * ic : nullptr;
        }
      s.kernels.winograd_input(patch, ic, v_buf.data() + t * ic, v_plane);
    }

    TileCall call;
    const float* a_ptr = nullptr;
    const float* b_ptr = nullptr;
    call.a = &a_ptr;
    call.b = &b_ptr;
    call.ntaps = 1;
    call.a_pixel_stride = ic;
    call.k = ic;
    call.c_pixel_stride = oc;
    call.nr_valid = static_cast<int>(s.nr);
    for (int e = 0; e < 16; ++e)
      for (std::int64_t block = 0; block < s.blocks; ++block) {
        b_ptr = packed.u.data() + (e * s.blocks + block) * ic * s.nr;
        for (std::int64_t t = 0; t < count; t += s.rows) {
          call.m = static_cast<int>(std::min<std::int64_t>(s.rows, count - t));
          a_ptr = v_buf.data() + e * v_plane + t * ic;
          call.c = m_buf.data() + e * m_plane + t * oc + block * s.nr;
          s.kernels.gemm[s.vectors](call);
        }
      }

    const float* bias = static_cast<const float*>(bias_data);
    for (std::int64_t t = 0; t < count; ++t) {
      const TileOrigin& tile = s.tiles[static_cast<std::size_t>(first + t)];
      float* outputs[4];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const std::int64_t y = tile.oy + i * dy, x = tile.ox + j * dx;
          outputs[i * 2 + j] = (y < out[0] && x < out[1]) ? out_at(y, x) : nullptr;
        }
      s.kernels.winograd_output(m_buf.data() + t * oc, m_plane, oc, bias, outputs);
    }
  }

  std::shared_ptr<const detail::Implementation> reference_ = detail::reference_implementation();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_winograd_engine() { return std::make_shared<Winograd>(); }

}  // namespace tdconv::engine
