// Depthwise convolutions on channels_first tensors, plane by plane. Each channel is its own problem: an output row
// is one run of pixels per sequence of the x axis (axis.hpp), and within a segment of a run every tap reads a run
// of consecutive pixels of one input row of the same channel. SIMD lanes are consecutive pixels, so nothing is
// copied into channels_last: the depthwise_simd path (channels as lanes) had to transpose the source and the
// destination, which for a memory-bound layer cost several times the convolution (dw_up2: 5.2 ms against oneDNN's
// 1.5 ms). A transposed convolution's phases are computed into small buffers and interleaved into the row.
#include "engine/planar.hpp"

#include <hwy/cache_control.h>

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
// A transposed convolution's phase buffers hold a row per thread: rows longer than this (4 MiB of floats) go to
// depthwise_simd, whose scratch does not grow with the row.
constexpr std::int64_t kMaxPhasedRow = 1 << 20;
// Outputs over this size have their interleaved rows streamed (as the gemm engine's, engine.cpp): dw_up2's 16 MiB
// output, timed in turns, 1.28-1.34x faster at 1 and 2 threads (its lines had been read from memory before being
// written).
constexpr double kStreamBytes = 4.0 * 1024 * 1024;

struct State final : PlanState {
  KernelSet kernels;
  std::array<Axis, 3> axes;  // z, y, x; leading unused dimensions are trivial
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  std::int64_t rows_per_item = 1;  // output rows (z, y) of one channel plane per work item
  bool stream = false;  // interleaved rows written with non-temporal stores (see kStreamBytes)
};

struct Packed final : PackedData {
  std::vector<float> weights;  // [channel][kernel tap]
};

class Planar final : public detail::ForwardOnlyImplementation {
 public:
  std::string name() const override { return "depthwise_planar"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.layout != Layout::channels_first) return "not channels_first";
    if (p.in_channels != p.groups || p.out_channels != p.groups) return "not depthwise (one channel per group)";
    // Pixels a run reads must be consecutive: every x sequence steps its input by 1.
    const int x = p.spatial_dims - 1;
    if (p.op == Op::conv && p.stride[x] != 1) return "strided along the last axis";
    if (p.op == Op::conv_transpose && p.stride[x] > 1 && output_size(p)[x] > kMaxPhasedRow) {
      return "transposed with output rows over 2^20 pixels";
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    Geometry geometry = make_geometry(p);
    s->axes = std::move(geometry.axes);
    s->kernel = geometry.kernel, s->in = geometry.in, s->out = geometry.out;
    const std::int64_t rows = s->out[0] * s->out[1];
    const std::int64_t planes = p.batch * p.groups;
    s->rows_per_item = std::clamp<std::int64_t>(kPixelsPerItem / s->out[2], 1, rows);
    s->stream = static_cast<double>(element_count(dst_shape(p), "dst")) * sizeof(float) > kStreamBytes;
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

  // Per thread: the Scratch of a work item.
  std::size_t forward_workspace_bytes(const Problem&, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto& sequences = s.axes[2].sequences;
    const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
    std::int64_t bytes = taps * static_cast<std::int64_t>(sizeof(const float*) + sizeof(float)) +
                         s.kernel[0] * static_cast<std::int64_t>(sizeof(TapHit)) +
                         static_cast<std::int64_t>(sequences.size() * sizeof(const float*));
    if (sequences.size() > 1) {
      bytes += static_cast<std::int64_t>(sequences.size()) * s.rows_per_item * sequences[0].count *
               static_cast<std::int64_t>(sizeof(float));
    }
    return static_cast<std::size_t>(threads * bytes);
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
      thread_local Scratch scratch;
      scratch.fit(s);
      run_band(s, scratch, src, w, init, band * s.rows_per_item, std::min(rows, (band + 1) * s.rows_per_item), dst);
      if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
    }
  }

 private:
  // Per-thread buffers, sized once per work item.
  struct Scratch {
    std::vector<TapHit> z_taps;
    std::vector<const float*> in, part;
    std::vector<float> tap_weights, phases;
    void fit(const State& s) {
      const auto& sequences = s.axes[2].sequences;
      const std::size_t max_taps = static_cast<std::size_t>(s.kernel[0] * s.kernel[1] * s.kernel[2]);
      z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
      in.resize(max_taps);
      tap_weights.resize(max_taps);
      part.resize(sequences.size());
      if (sequences.size() > 1) {
        phases.resize(sequences.size() * static_cast<std::size_t>(s.rows_per_item * sequences[0].count));
      }
    }
  };

  // Output rows [row_begin, row_end) (z x y) of one channel plane. One kernel call covers every row of a y
  // segment (rows of one y phase whose valid y taps are the same) for one x segment: per-call work was most of
  // dw_up2's instructions when each call covered one row. With several x sequences (a transposed convolution's
  // phases along x) the calls write per-phase buffers, interleaved into the rows at the end.
  static void run_band(const State& s, Scratch& scratch, const float* src, const float* w, float init,
                       std::int64_t row_begin, std::int64_t row_end, float* dst) {
    const auto& x_sequences = s.axes[2].sequences;
    const auto parts = static_cast<int>(x_sequences.size());
    const std::int64_t part_floats = x_sequences[0].count;  // the longest phase
    for (std::int64_t row = row_begin; row < row_end;) {
      const std::int64_t oz = row / s.out[1], y0 = row % s.out[1];
      const std::int64_t y1 = std::min(s.out[1], y0 + (row_end - row));
      const int nz = s.axes[0].taps_at(oz, scratch.z_taps.data());
      for (const AxisSequence& yseq : s.axes[1].sequences) {
        // The phase's pixels jy with output row out_first + jy * out_step in [y0, y1).
        const auto first_at = [&](std::int64_t o) {
          return std::clamp<std::int64_t>(ceil_div(o - yseq.out_first, yseq.out_step), 0, yseq.count);
        };
        const std::int64_t jb = first_at(y0), je = first_at(y1);
        for (const AxisSegment& yseg : yseq.segments) {
          const std::int64_t j0 = std::max(jb, yseg.j_begin), j1 = std::min(je, yseg.j_end);
          if (j0 >= j1) continue;
          const std::int64_t band_row = oz * s.out[1] + yseq.out_first + j0 * yseq.out_step - row_begin;
          for (int q = 0; q < parts; ++q) {
            const AxisSequence& xseq = x_sequences[static_cast<std::size_t>(q)];
            float* out = parts > 1 ? scratch.phases.data() + (q * s.rows_per_item + band_row) * part_floats
                                   : dst + (row_begin + band_row) * s.out[2];
            const std::int64_t out_row_stride = yseq.out_step * (parts > 1 ? part_floats : s.out[2]);
            for (const AxisSegment& xseg : xseq.segments) {
              int t = 0;
              for (int zi = 0; zi < nz; ++zi)
                for (int yt = yseg.tap_begin; yt < yseg.tap_end; ++yt) {
                  const AxisTap& ytap = yseq.taps[static_cast<std::size_t>(yt)];
                  const std::int64_t iy = yseq.in_first + j0 * yseq.in_step + ytap.in_offset;
                  const float* in_row = src + (scratch.z_taps[zi].in_index * s.in[1] + iy) * s.in[2];
                  const std::int64_t k_row =
                      (scratch.z_taps[zi].kernel_index * s.kernel[1] + ytap.kernel_index) * s.kernel[2];
                  for (int xt = xseg.tap_begin; xt < xseg.tap_end; ++xt, ++t) {
                    const AxisTap& xtap = xseq.taps[static_cast<std::size_t>(xt)];
                    // in_step along x is 1 (see declines).
                    scratch.in[static_cast<std::size_t>(t)] = in_row + xseq.in_first + xseg.j_begin + xtap.in_offset;
                    scratch.tap_weights[static_cast<std::size_t>(t)] = w[k_row + xtap.kernel_index];
                  }
                }
              s.kernels.planar_run(scratch.in.data(), yseq.in_step * s.in[2], scratch.tap_weights.data(), t, init,
                                   out + xseg.j_begin, out_row_stride, j1 - j0, xseg.j_end - xseg.j_begin);
            }
          }
        }
      }
      row += y1 - y0;
    }
    if (parts == 1) return;
    for (std::int64_t row = row_begin; row < row_end; ++row) {
      for (int q = 0; q < parts; ++q) {
        scratch.part[static_cast<std::size_t>(q)] =
            scratch.phases.data() + (q * s.rows_per_item + row - row_begin) * part_floats;
      }
      s.kernels.interleave(scratch.part.data(), parts, dst + row * s.out[2], s.out[2], s.stream);
    }
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_planar_engine() { return std::make_shared<Planar>(); }

}  // namespace tdconv::engine
