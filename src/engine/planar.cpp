// Depthwise convolutions on channels_first tensors, plane by plane. Each channel is its own problem: an output row
// is one run of pixels per sequence of the x axis (axis.hpp), and within a segment of a run every tap reads a run
// of consecutive pixels of one input row of the same channel. SIMD lanes are consecutive pixels, so nothing is
// copied into channels_last: the depthwise_simd path (channels as lanes) had to transpose the source and the
// destination, which for a memory-bound layer cost several times the convolution (dw_up2: 5.2 ms against oneDNN's
// 1.5 ms). A transposed convolution's phases are computed into small buffers and interleaved into the row.
#include "engine/planar.hpp"

#include <algorithm>
#include <array>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

// Output pixels per work item, at least: a plane of dw_up2 (16384) is one item; small planes share one.
constexpr std::int64_t kPixelsPerItem = 4096;
constexpr std::int64_t kMinItems = 32;

Axis trivial_axis() {
  Axis a;
  a.sequences.push_back({0, 1, 1, 0, 1, {{0, 0}}, {{0, 1, 0, 1}}});
  return a;
}

struct State final : PlanState {
  KernelSet kernels;
  std::array<Axis, 3> axes;  // z, y, x; leading unused dimensions are trivial
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  std::int64_t rows_per_item = 1;  // output rows (z, y) of one channel plane per work item
};

struct Packed final : PackedData {
  std::vector<float> weights;  // [channel][kernel tap]
};

class Planar final : public detail::Implementation {
 public:
  std::string name() const override { return "depthwise_planar"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.layout != Layout::channels_first) return "not channels_first";
    if (p.in_channels != p.groups || p.out_channels != p.groups) return "not depthwise (one channel per group)";
    // Pixels a run reads must be consecutive: every x sequence steps its input by 1.
    if (p.op == Op::conv && p.stride[p.spatial_dims - 1] != 1) return "strided along the last axis";
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
    const std::int64_t rows = s->out[0] * s->out[1];
    const std::int64_t planes = p.batch * p.groups;
    s->rows_per_item = std::clamp<std::int64_t>(kPixelsPerItem / s->out[2], 1, rows);
    while (s->rows_per_item > 1 && planes * ((rows + s->rows_per_item - 1) / s->rows_per_item) < kMinItems) {
      s->rows_per_item /= 2;
    }
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState*, const void* weights) const override {
    auto packed = std::make_shared<Packed>();
    const auto* w = static_cast<const float*>(weights);
    std::int64_t taps = 1;
    for (int d = 0; d < p.spatial_dims; ++d) taps *= p.kernel[d];
    const std::int64_t channels = p.groups;
    packed->weights.resize(static_cast<std::size_t>(taps * channels));
    // Depthwise weights hold one input and one output channel per group: torch's layouts are [channel][tap],
    // TensorFlow's [tap][channel], for convolutions and transposed ones alike.
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < taps; ++t) {
        packed->weights[static_cast<std::size_t>(c * taps + t)] =
            p.weight_layout == WeightLayout::torch ? w[c * taps + t] : w[t * channels + c];
      }
    packed->bytes = packed->weights.size() * sizeof(float);
    return packed;
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t rows = s.out[0] * s.out[1];
    const std::int64_t bands = (rows + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t items = p.batch * p.groups * bands;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < items; ++item) {
      const std::int64_t plane = item / bands, band = item % bands;  // plane = n * channels + c
      const std::int64_t c = plane % p.groups;
      const float* src = static_cast<const float*>(args.src) + plane * s.in[0] * s.in[1] * s.in[2];
      float* dst = static_cast<float*>(args.dst) + plane * rows * s.out[2];
      const float init = args.bias != nullptr ? static_cast<const float*>(args.bias)[c] : 0.0f;
      const float* w = packed.weights.data() + c * s.kernel[0] * s.kernel[1] * s.kernel[2];
      for (std::int64_t row = band * s.rows_per_item; row < std::min(rows, (band + 1) * s.rows_per_item); ++row) {
        run_row(s, src, w, init, row, dst + row * s.out[2]);
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
  // One output row of one channel: every x sequence's runs, then (several sequences) interleaved into `out`.
  static void run_row(const State& s, const float* src, const float* w, float init, std::int64_t row, float* out) {
    const std::int64_t oy = row % s.out[1], oz = row / s.out[1];
    thread_local std::vector<TapHit> z_taps, y_taps;
    thread_local std::vector<const float*> in;
    thread_local std::vector<float> tap_weights, phases;
    thread_local std::vector<const float*> part;
    z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(s.kernel[1]));
    const int nz = s.axes[0].taps_at(oz, z_taps.data());
    const int ny = s.axes[1].taps_at(oy, y_taps.data());
    const std::size_t max_taps = static_cast<std::size_t>(s.kernel[0] * s.kernel[1] * s.kernel[2]);
    in.resize(max_taps);
    tap_weights.resize(max_taps);

    const auto& sequences = s.axes[2].sequences;
    const auto parts = static_cast<int>(sequences.size());
    // Sequence q's pixels go to out[q + j * parts] (axis.hpp: phase q of a stride-`parts` transposed convolution);
    // with one sequence straight into the row.
    part.resize(static_cast<std::size_t>(parts));
    std::int64_t part_floats = 0;
    if (parts > 1) {
      part_floats = sequences[0].count;
      phases.resize(static_cast<std::size_t>(parts * part_floats));
    }
    for (int q = 0; q < parts; ++q) {
      const AxisSequence& seq = sequences[static_cast<std::size_t>(q)];
      float* run = parts > 1 ? phases.data() + q * part_floats : out;
      for (const AxisSegment& seg : seq.segments) {
        int t = 0;
        for (int zi = 0; zi < nz; ++zi)
          for (int yi = 0; yi < ny; ++yi) {
            const float* in_row = src + (z_taps[zi].in_index * s.in[1] + y_taps[yi].in_index) * s.in[2];
            const std::int64_t k_row = (z_taps[zi].kernel_index * s.kernel[1] + y_taps[yi].kernel_index) * s.kernel[2];
            for (int xi = seg.tap_begin; xi < seg.tap_end; ++xi, ++t) {
              const AxisTap& tap = seq.taps[static_cast<std::size_t>(xi)];
              in[t] = in_row + seq.in_first + seg.j_begin + tap.in_offset;  // in_step is 1 (see declines)
              tap_weights[t] = w[k_row + tap.kernel_index];
            }
          }
        s.kernels.planar_run(in.data(), tap_weights.data(), t, init, run + seg.j_begin, seg.j_end - seg.j_begin);
      }
      if (parts > 1) part[static_cast<std::size_t>(q)] = run;
    }
    if (parts > 1) s.kernels.interleave(part.data(), parts, out, s.out[2]);
  }

  std::shared_ptr<const detail::Implementation> reference_ = detail::reference_implementation();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_planar_engine() { return std::make_shared<Planar>(); }

}  // namespace tdconv::engine
