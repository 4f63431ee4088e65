// The SIMD engine: every supported problem becomes, per output row and per run of pixels with the same valid taps,
// calls of one register-tiled microkernel (see axis.hpp for the decomposition and kernels.hpp for the tile
// contract). Threads split output tiles only, and each output element is computed whole by one tile call, so
// results are bitwise identical for any thread count.
#include "engine/engine.hpp"

#include <algorithm>
#include <array>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "util/checked.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

constexpr std::int64_t kPixelsPerWorkItem = 256;

// An axis that does nothing: one output element reading one input element with one tap.
Axis trivial_axis() {
  Axis a;
  a.sequences.push_back({0, 1, 1, 0, 1, {{0, 0}}, {{0, 1, 0, 1}}});
  return a;
}

struct XBlock {
  int sequence;
  std::int64_t j_begin, j_end;
};

struct State final : PlanState {
  KernelSet kernels;
  bool depthwise = false;
  int vectors = 1, rows = 1, nr = 1;
  std::array<Axis, 3> axes;  // z, y, x; leading unused dimensions are trivial
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  std::int64_t groups = 1, icg = 1, ocg = 1, blocks = 1;  // blocks: NR-wide output-channel blocks per group
  std::vector<XBlock> xblocks;
};

struct Packed final : PackedData {
  std::vector<float> weights;
};

// Index of weight (g, input channel q of the group, output channel n of the group, kernel tap) in the user's layout.
std::int64_t weight_index(const Problem& p, std::int64_t g, std::int64_t q, std::int64_t n, std::int64_t tap,
                          std::int64_t taps) {
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const bool torch = p.weight_layout == WeightLayout::torch;
  if (p.op == Op::conv) {
    return torch ? ((g * ocg + n) * icg + q) * taps + tap : (tap * icg + q) * p.out_channels + g * ocg + n;
  }
  return torch ? ((g * icg + q) * ocg + n) * taps + tap : (tap * ocg + n) * p.in_channels + g * icg + q;
}

int depthwise_vectors(std::int64_t channels, int lanes) {
  for (int v = kMaxVectorsPerTile; v >= 1; --v) {
    if (channels % (v * lanes) == 0) return v;
  }
  return 0;
}

class Engine final : public detail::Implementation {
 public:
  explicit Engine(bool depthwise) : depthwise_(depthwise) {}

  std::string name() const override { return depthwise_ ? "depthwise_simd" : "gemm_simd"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.layout != Layout::channels_last) return "channels_first is not on the SIMD path yet";
    if (depthwise_) {
      if (p.in_channels != p.groups || p.out_channels != p.groups) return "not depthwise (one channel per group)";
      if (depthwise_vectors(p.groups, best_kernels().lanes) == 0) {
        return "channels not a multiple of the vector width";
      }
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    s->depthwise = depthwise_;
    const int lanes = s->kernels.lanes;
    s->groups = p.groups;
    s->icg = p.in_channels / p.groups;
    s->ocg = p.out_channels / p.groups;
    if (depthwise_) {
      s->vectors = depthwise_vectors(p.groups, lanes);
    } else {
      const std::int64_t needed = (s->ocg + lanes - 1) / lanes;
      s->vectors = static_cast<int>(std::min<std::int64_t>(needed, kMaxVectorsPerTile));
    }
    s->rows = s->kernels.mr[s->vectors];
    s->nr = s->vectors * lanes;
    const std::int64_t channels_per_block_owner = depthwise_ ? p.out_channels : s->ocg;
    s->blocks = (channels_per_block_owner + s->nr - 1) / s->nr;
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
    const auto& x = s->axes[2];
    for (int q = 0; q < static_cast<int>(x.sequences.size()); ++q) {
      for (std::int64_t j = 0; j < x.sequences[q].count; j += kPixelsPerWorkItem) {
        s->xblocks.push_back({q, j, std::min(j + kPixelsPerWorkItem, x.sequences[q].count)});
      }
    }
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
    auto packed = std::make_shared<Packed>();
    if (depthwise_) {
      // [tap][channel], channels padded to whole blocks.
      const std::int64_t width = s.blocks * s.nr;
      packed->weights.assign(static_cast<std::size_t>(taps * width), 0.0f);
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t c = 0; c < p.groups; ++c) packed->weights[t * width + c] = w[weight_index(p, c, 0, 0, t, taps)];
    } else {
      // [group][block][tap][input channel][NR output channels], output channels padded with zeros.
      packed->weights.assign(static_cast<std::size_t>(s.groups * s.blocks * taps * s.icg * s.nr), 0.0f);
      for (std::int64_t g = 0; g < s.groups; ++g)
        for (std::int64_t n = 0; n < s.ocg; ++n)
          for (std::int64_t t = 0; t < taps; ++t)
            for (std::int64_t q = 0; q < s.icg; ++q) {
              const std::int64_t block = n / s.nr, lane = n % s.nr;
              packed->weights[(((g * s.blocks + block) * taps + t) * s.icg + q) * s.nr + lane] =
                  w[weight_index(p, g, q, n, t, taps)];
            }
    }
    packed->bytes = packed->weights.size() * sizeof(float);
    return packed;
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t rows = p.batch * s.out[0] * s.out[1];
    const std::int64_t items = rows * static_cast<std::int64_t>(s.xblocks.size()) *
                               (depthwise_ ? 1 : s.groups) * s.blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < items; ++item) {
      run_item(p, s, packed, args, item);
    }
  }

  void backward_data(const Problem& p, const detail::BackwardDataArgs& a) const override {
    reference_->backward_data(p, a);
  }
  void backward_weights(const Problem& p, const detail::BackwardWeightsArgs& a) const override {
    reference_->backward_weights(p, a);
  }

 private:
  struct Tap {
    std::int64_t in_index;      // input element along the axis
    std::int64_t kernel_index;  // tap of the kernel along the axis
  };

  // The taps of output element o along an outer axis that land inside the input.
  static int outer_taps(const Axis& axis, std::int64_t o, Tap* out) {
    const Axis::Position pos = axis.locate(o);
    int n = 0;
    for (int t = pos.segment->tap_begin; t < pos.segment->tap_end; ++t) {
      const AxisTap& tap = pos.sequence->taps[t];
      out[n++] = {pos.sequence->in_first + pos.j * pos.sequence->in_step + tap.in_offset, tap.kernel_index};
    }
    return n;
  }

  void run_item(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args,
                std::int64_t item) const {
    // item = ((row * xblocks + xblock) * groups + g) * blocks + block
    const std::int64_t groups_here = depthwise_ ? 1 : s.groups;
    const std::int64_t block = item % s.blocks;
    const std::int64_t g = (item / s.blocks) % groups_here;
    const std::int64_t xb = (item / (s.blocks * groups_here)) % static_cast<std::int64_t>(s.xblocks.size());
    const std::int64_t row = item / (s.blocks * groups_here * static_cast<std::int64_t>(s.xblocks.size()));
    const std::int64_t oy = row % s.out[1], oz = (row / s.out[1]) % s.out[0], n = row / (s.out[1] * s.out[0]);

    thread_local std::vector<Tap> z_taps, y_taps;
    thread_local std::vector<const float*> a_ptrs, b_ptrs;
    thread_local std::vector<float> init_tail;
    z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(s.kernel[1]));
    const int nz = outer_taps(s.axes[0], oz, z_taps.data());
    const int ny = outer_taps(s.axes[1], oy, y_taps.data());
    const std::size_t max_taps = static_cast<std::size_t>(s.kernel[0] * s.kernel[1] * s.kernel[2]);
    a_ptrs.resize(max_taps);
    b_ptrs.resize(max_taps);

    const std::int64_t in_channels = p.in_channels, out_channels = p.out_channels;
    const std::int64_t channel0 = depthwise_ ? block * s.nr : g * s.ocg + block * s.nr;
    const int nr_valid = static_cast<int>(std::min<std::int64_t>(s.nr, (depthwise_ ? out_channels : s.ocg) -
                                                                           block * s.nr));
    const float* init = nullptr;
    if (args.bias != nullptr) {
      const float* bias = static_cast<const float*>(args.bias) + channel0;
      if (nr_valid == s.nr) {
        init = bias;
      } else {
        init_tail.assign(static_cast<std::size_t>(s.nr), 0.0f);
        std::copy(bias, bias + nr_valid, init_tail.begin());
        init = init_tail.data();
      }
    }
    const std::int64_t taps_total = s.kernel[0] * s.kernel[1] * s.kernel[2];
    const float* src = static_cast<const float*>(args.src);
    const float* wts = packed.weights.data();
    float* dst = static_cast<float*>(args.dst);
    const std::int64_t src_channel0 = depthwise_ ? channel0 : g * s.icg;
    const float* b_base = depthwise_ ? wts + block * s.nr
                                     : wts + (g * s.blocks + block) * taps_total * s.icg * s.nr;
    const std::int64_t b_tap_stride = depthwise_ ? s.blocks * s.nr : s.icg * s.nr;
    const TileFn tile = depthwise_ ? s.kernels.depthwise[s.vectors] : s.kernels.gemm[s.vectors];

    const XBlock& xblock = s.xblocks[static_cast<std::size_t>(xb)];
    const AxisSequence& seq = s.axes[2].sequences[static_cast<std::size_t>(xblock.sequence)];
    TileCall call;
    call.a = a_ptrs.data();
    call.b = b_ptrs.data();
    call.a_pixel_stride = seq.in_step * in_channels;
    call.k = s.icg;
    call.init = init;
    call.c_pixel_stride = seq.out_step * out_channels;
    call.nr_valid = nr_valid;
    const std::int64_t dst_row = ((n * s.out[0] + oz) * s.out[1] + oy) * s.out[2];
    for (const AxisSegment& seg : seq.segments) {
      const std::int64_t j_begin = std::max(seg.j_begin, xblock.j_begin);
      const std::int64_t j_end = std::min(seg.j_end, xblock.j_end);
      for (std::int64_t j = j_begin; j < j_end; j += s.rows) {
        call.m = static_cast<int>(std::min<std::int64_t>(s.rows, j_end - j));
        int t = 0;
        for (int zi = 0; zi < nz; ++zi)
          for (int yi = 0; yi < ny; ++yi) {
            const std::int64_t src_row = ((n * s.in[0] + z_taps[zi].in_index) * s.in[1] + y_taps[yi].in_index) * s.in[2];
            const std::int64_t k_row = (z_taps[zi].kernel_index * s.kernel[1] + y_taps[yi].kernel_index) * s.kernel[2];
            for (int xi = seg.tap_begin; xi < seg.tap_end; ++xi) {
              const AxisTap& tap = seq.taps[static_cast<std::size_t>(xi)];
              const std::int64_t ix = seq.in_first + j * seq.in_step + tap.in_offset;
              a_ptrs[t] = src + (src_row + ix) * in_channels + src_channel0;
              b_ptrs[t] = b_base + (k_row + tap.kernel_index) * b_tap_stride;
              ++t;
            }
          }
        call.ntaps = t;
        call.c = dst + (dst_row + seq.out_first + j * seq.out_step) * out_channels + channel0;
        tile(call);
      }
    }
  }

  bool depthwise_;
  std::shared_ptr<const detail::Implementation> reference_ = detail::reference_implementation();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_depthwise_engine() { return std::make_shared<Engine>(true); }
std::shared_ptr<const detail::Implementation> make_gemm_engine() { return std::make_shared<Engine>(false); }

}  // namespace tdconv::engine
