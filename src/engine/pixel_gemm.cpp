// Convolutions on channels_first tensors with the pixels of an output row as SIMD lanes: per tile, m output
// channels x NR consecutive pixels, each tap a run of consecutive pixels of one input row per channel (so the stride
// along x must be 1). Each output channel's row is stored as whole vectors, and nothing is copied into
// channels_last: the gemm path's copies of the source and staging of the destination cost WaveNet's layer as much
// as the convolution itself.
//
// Work item: one image, group, band of output rows (z, y) and column of up to kColumnPixels pixels. Per tile of NR
// pixels, the input of every tap and channel is first copied into a contiguous block, which every output channel
// tile of the group then reads from L2 (read in place, channels a plane apart, power-of-two planes such as
// 128 x 128 put every channel's line in the same cache set). Each tile sums all its products at once: partial sums
// kept in the destination between passes, rows a plane apart, thrashed the same cache sets (3-10x slower).
#include "engine/pixel_gemm.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

constexpr std::int64_t kColumnPixels = 256;
// Input of one tile of pixels (taps x channels x NR floats) at most: it is read from L2 by every output channel tile.
constexpr double kMaxBlockBytes = 256.0 * 1024;
// Output rows narrower than this leave most lanes empty: the gemm path (channels as lanes) does better.
constexpr std::int64_t kMinRowPixels = 32;
constexpr std::int64_t kMinChannelsPerGroup = 8;
// Every work item reads all of its group's weights: beyond this they come from memory, item after item, and the gemm
// path, which reuses them over more pixels, is faster (ASPP's 18 MiB ran 10x slower here).
constexpr double kMaxWeightBytes = 1024.0 * 1024;
// Output pixels per work item (a band of rows), while at least kMinItems items remain for the threads.
constexpr std::int64_t kItemPixels = 1024;
constexpr std::int64_t kMinItems = 16;

Axis trivial_axis() {
  Axis a;
  a.sequences.push_back({0, 1, 1, 0, 1, {{0, 0}}, {{0, 1, 0, 1}}});
  return a;
}

struct State final : PlanState {
  KernelSet kernels;
  TileFn tile = nullptr;
  int vectors = 1, mr = 1;
  std::int64_t nr = 1;  // pixels per tile
  std::array<Axis, 3> axes;
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  std::int64_t icg = 1, ocg = 1, taps = 1;
  std::int64_t columns = 1;
  std::int64_t rows_per_item = 1;
};

struct Packed final : PackedData {
  std::vector<float> weights;  // [group][tap][input channel][output channel of the group]
};

class PixelGemm final : public detail::Implementation {
 public:
  std::string name() const override { return "gemm_pixels"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.layout != Layout::channels_first) return "not channels_first";
    if (p.op != Op::conv) return "transposed (its phases interleave along x)";
    // Measured on the suite (1 thread): WaveNet's 1D layer 11.5 -> 8 ms, TCN's even; but 2D and 3D layers, whose
    // taps read rows of several planes a power of two apart, lost to the gemm path (context_d16 2x slower).
    if (p.spatial_dims != 1) return "not 1D";
    const int x = p.spatial_dims - 1;
    if (p.stride[x] != 1) return "strided along the last axis";
    if (output_size(p)[x] < kMinRowPixels) return "output rows shorter than 32 pixels";
    if (p.out_channels / p.groups < kMinChannelsPerGroup) return "fewer than 8 output channels per group";
    const double weights = static_cast<double>(element_count(weights_shape(p), "weights")) / p.groups * sizeof(float);
    if (weights > kMaxWeightBytes) return "more than 1 MiB of weights per group";
    const double block = static_cast<double>(weights) / (p.out_channels / p.groups) * 4 * best_kernels().lanes;
    if (block > kMaxBlockBytes) return "more than 256 KiB of input per tile of pixels (taps x channels)";
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    const int lead = kMaxSpatialDims - p.spatial_dims;
    for (int d = 0; d < kMaxSpatialDims; ++d) {
      if (d < lead) {
        s->axes[d] = trivial_axis();
        continue;
      }
      s->axes[d] = make_axis(p, d - lead);
      s->kernel[d] = p.kernel[d - lead];
      s->in[d] = s->axes[d].input;
      s->out[d] = s->axes[d].output;
    }
    const int lanes = s->kernels.lanes;
    s->vectors = static_cast<int>(std::clamp<std::int64_t>((s->out[2] + lanes - 1) / lanes, 1, kMaxVectorsPerTile));
    s->tile = s->kernels.gemm[s->vectors];
    s->mr = s->kernels.mr[s->vectors];
    s->nr = s->vectors * lanes;
    s->icg = p.in_channels / p.groups, s->ocg = p.out_channels / p.groups;
    s->taps = s->kernel[0] * s->kernel[1] * s->kernel[2];
    s->columns = (s->out[2] + kColumnPixels - 1) / kColumnPixels;
    const std::int64_t rows = s->out[0] * s->out[1];
    const std::int64_t width = std::min(s->out[2], kColumnPixels);
    s->rows_per_item = std::clamp<std::int64_t>(kItemPixels / width, 1, rows);
    const auto items = [&] { return p.batch * p.groups * s->columns * ((rows + s->rows_per_item - 1) / s->rows_per_item); };
    while (s->rows_per_item > 1 && items() < kMinItems) s->rows_per_item /= 2;
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    auto packed = std::make_shared<Packed>();
    packed->weights.resize(static_cast<std::size_t>(p.groups * s.taps * s.icg * s.ocg));
    const bool torch = p.weight_layout == WeightLayout::torch;
    for (std::int64_t g = 0; g < p.groups; ++g)
      for (std::int64_t n = 0; n < s.ocg; ++n)
        for (std::int64_t q = 0; q < s.icg; ++q)
          for (std::int64_t t = 0; t < s.taps; ++t) {
            const std::int64_t from = torch ? ((g * s.ocg + n) * s.icg + q) * s.taps + t
                                            : (t * s.icg + q) * p.out_channels + g * s.ocg + n;
            packed->weights[static_cast<std::size_t>(((g * s.taps + t) * s.icg + q) * s.ocg + n)] = w[from];
          }
    packed->bytes = packed->weights.size() * sizeof(float);
    return packed;
  }

  // Per thread: the tap lists and the packed input of run_item.
  std::size_t forward_workspace_bytes(const Problem&, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    const std::int64_t bytes = s.taps * 3 * static_cast<std::int64_t>(sizeof(const float*)) +
                               (s.kernel[0] + s.kernel[1]) * static_cast<std::int64_t>(sizeof(TapHit)) +
                               s.taps * s.icg * s.nr * static_cast<std::int64_t>(sizeof(float));
    return static_cast<std::size_t>(threads * bytes);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t rows = s.out[0] * s.out[1];
    const std::int64_t bands = (rows + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t items = p.batch * p.groups * bands * s.columns;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < items; ++item) run_item(p, s, packed, args, item);
  }

  void backward_data(const Problem& p, const detail::BackwardDataArgs& a) const override {
    reference_->backward_data(p, a);
  }
  void backward_weights(const Problem& p, const detail::BackwardWeightsArgs& a) const override {
    reference_->backward_weights(p, a);
  }

 private:
  void run_item(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args,
                std::int64_t item) const {
    const std::int64_t rows = s.out[0] * s.out[1];
    const std::int64_t bands = (rows + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t column = item % s.columns;
    const std::int64_t band = (item / s.columns) % bands;
    const std::int64_t g = (item / (s.columns * bands)) % p.groups;
    const std::int64_t n = item / (s.columns * bands * p.groups);
    const std::int64_t x_begin = column * kColumnPixels, x_end = std::min(s.out[2], x_begin + kColumnPixels);
    const std::int64_t row_begin = band * s.rows_per_item, row_end = std::min(rows, row_begin + s.rows_per_item);

    thread_local std::vector<TapHit> z_taps, y_taps;
    thread_local std::vector<const float*> a_base, a_ptrs, b_ptrs;  // a_base: output channel 0 of the group
    thread_local std::vector<float> block;  // the input of one tile of pixels: [tap][channel][NR pixels]
    z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(s.kernel[1]));
    a_base.resize(static_cast<std::size_t>(s.taps));
    a_ptrs.resize(static_cast<std::size_t>(s.taps));
    b_ptrs.resize(static_cast<std::size_t>(s.taps));
    block.resize(static_cast<std::size_t>(s.taps * s.icg * s.nr));

    const std::int64_t in_plane = s.in[0] * s.in[1] * s.in[2], out_plane = s.out[0] * s.out[1] * s.out[2];
    const float* src = static_cast<const float*>(args.src) + (n * p.in_channels + g * s.icg) * in_plane;
    float* dst_image = static_cast<float*>(args.dst) + (n * p.out_channels + g * s.ocg) * out_plane;
    const float* bias = args.bias != nullptr ? static_cast<const float*>(args.bias) + g * s.ocg : nullptr;
    const float* weights = packed.weights.data() + g * s.taps * s.icg * s.ocg;

    // The gemm tile with the operands' roles swapped (kernels.hpp): rows are output channels (weights
    // broadcast), columns the packed input's pixels.
    TileCall call;
    call.init_rows = true;
    call.a = a_ptrs.data();
    call.b = b_ptrs.data();
    call.a_pixel_stride = 1;
    call.a_channel_stride = s.ocg;
    call.c_pixel_stride = out_plane;
    call.c_channel_stride = 1;

    const AxisSequence& seq = s.axes[2].sequences[0];  // a convolution has one x sequence, out_step 1, in_step 1
    call.k = s.icg;
    for (std::int64_t row = row_begin; row < row_end; ++row) {
      const std::int64_t oy = row % s.out[1], oz = row / s.out[1];
      const int nz = s.axes[0].taps_at(oz, z_taps.data());
      const int ny = s.axes[1].taps_at(oy, y_taps.data());
      float* dst = dst_image + row * s.out[2];
      for (const AxisSegment& seg : seq.segments) {
        const std::int64_t j_begin = std::max(seg.j_begin, x_begin), j_end = std::min(seg.j_end, x_end);
        for (std::int64_t j = j_begin; j < j_end; j += s.nr) {
          const std::int64_t valid = std::min(s.nr, j_end - j);
          int t = 0;
          for (int zi = 0; zi < nz; ++zi)
            for (int yi = 0; yi < ny; ++yi) {
              const std::int64_t src_row = (z_taps[zi].in_index * s.in[1] + y_taps[yi].in_index) * s.in[2];
              const std::int64_t k_row = (z_taps[zi].kernel_index * s.kernel[1] + y_taps[yi].kernel_index) * s.kernel[2];
              for (int xi = seg.tap_begin; xi < seg.tap_end; ++xi, ++t) {
                const AxisTap& tap = seq.taps[static_cast<std::size_t>(xi)];
                float* to = block.data() + t * s.icg * s.nr;
                pack_input(src + src_row + seq.in_first + j + tap.in_offset, in_plane, s.icg, valid, s.nr, to);
                b_ptrs[static_cast<std::size_t>(t)] = to;
                a_base[static_cast<std::size_t>(t)] = weights + (k_row + tap.kernel_index) * s.icg * s.ocg;
              }
            }
          call.ntaps = t;
          call.nr_valid = static_cast<int>(valid);
          // Every output channel tile of the group on these pixels, while their input is in cache.
          for (std::int64_t o = 0; o < s.ocg; o += s.mr) {
            call.m = static_cast<int>(std::min<std::int64_t>(s.mr, s.ocg - o));
            call.init = bias != nullptr ? bias + o : nullptr;
            call.c = dst + o * out_plane + j;
            for (std::size_t i = 0; i < static_cast<std::size_t>(t); ++i) a_ptrs[i] = a_base[i] + o;
            s.tile(call);
          }
        }
      }
    }
  }

  // `channels` runs of `valid` pixels, a plane apart, into rows of nr floats (zeros past `valid`).
  static void pack_input(const float* from, std::int64_t plane, std::int64_t channels, std::int64_t valid,
                         std::int64_t nr, float* to) {
    for (std::int64_t q = 0; q < channels; ++q) {
      const float* __restrict row = from + q * plane;
      float* __restrict out = to + q * nr;
      std::int64_t i = 0;
      for (; i < valid; ++i) out[i] = row[i];
      for (; i < nr; ++i) out[i] = 0.0f;
    }
  }

  std::shared_ptr<const detail::Implementation> reference_ = detail::reference_implementation();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_pixel_gemm_engine() { return std::make_shared<PixelGemm>(); }

}  // namespace tdconv::engine
