// Depthwise convolutions on channels_first tensors, plane by plane. Each channel is its own problem, and SIMD lanes
// are consecutive pixels of an output row, so nothing is copied into channels_last: the depthwise_simd path
// (channels as lanes) had to transpose the source and the destination, which for a memory-bound layer cost several
// times the convolution (dw_up2: 5.2 ms against oneDNN's 1.5 ms, AVX-512).
//
// A work item (a band of output rows of one plane, or a chunk of a long row) first copies the input rows it reads
// into slots padded with zeros on both sides, so that every tap of every output pixel reads inside its slot. An
// output row is then one kernel call over all its valid (z, y) taps and every x tap, with no edge segments: a
// transposed convolution's x phases are computed side by side and stored interleaved. Per-segment runs with
// masked edge vectors, each phase through a row buffer and interleaved afterwards, had run dw_up2 at a third of
// oneDNN's speed on Zen 1 (AVX2), where masked loads and stores are slow. Taps in x padding now multiply zeros:
// few, since depthwise kernels are small.
#include "engine/planar.hpp"

#include <hwy/cache_control.h>

#include <algorithm>
#include <array>
#include <optional>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

// Output pixels per work item: bands of whole rows up to kPixelsPerItem (a plane of dw_up2, 16384, is one item;
// smaller planes are one item each, handed out in groups: items_per_grab), rows longer than kChunkPixels in chunks.
// dw_up2 (channels_first) in quarter planes had built 18 expanded input rows for every 16 and paid each item's setup
// four times per plane: whole planes ran it 1.14x as fast at 1 thread and 1.17x at 2, timed in turns.
constexpr std::int64_t kPixelsPerItem = 16384;
constexpr std::int64_t kChunkPixels = 4096;
constexpr std::int64_t kMaxPhases = 64;  // x phases of a transposed convolution (see declines)
constexpr std::int64_t kMinItems = 32;
// Outputs over this size are written with non-temporal stores (as the gemm engine's, engine.cpp): dw_up2's 16 MiB
// output, timed in turns, 1.28-1.34x faster at 1 and 2 threads (its lines had been read from memory before being
// written).
constexpr double kStreamBytes = 4.0 * 1024 * 1024;
// Per thread, the zero-padded input rows of a work item at most (see declines).
constexpr std::int64_t kMaxSlotBytes = 2 * 1024 * 1024;
// Flat planes' mask tables at most (see plan_flat): a plane of 65536 pixels with 9 taps holds 72 KiB. Building one
// visits every pixel for every tap, twice per plan (declines, prepare): 3 ms at this size (a 1D plane of 115000 pixels
// and 9 taps), 6 ms at 256 KiB.
constexpr std::int64_t kMaxFlatMaskBytes = 128 * 1024;

// Rows [j0, j1) of a y sequence within one of its segments (the rows' valid y taps), in a work item.
struct YRun {
  const AxisSequence* seq;
  const AxisSegment* seg;
  std::int64_t j0, j1;
  bool done = false;  // computed (with expanded rows: alone or paired)
};

struct State final : PlanState {
  KernelSet kernels;
  std::array<Axis, 3> axes;  // z, y, x; leading unused dimensions are trivial
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  std::int64_t rows_per_item = 1;  // output rows (y) of one z level of one channel plane per work item
  // Pixels j of every x sequence per work item (whole rows unless a row is longer than an item), and items per row.
  std::int64_t chunk_len = 0, chunks = 1;
  // Slots: input column x_begin + lo + i of a chunk is slot element i, for i < slot_len (zeros outside the input),
  // where lo is the least in_first + in_offset over the x sequences and taps, and x_begin the chunk's first j.
  std::int64_t lo = 0, slot_len = 0;
  std::int64_t max_y_rows = 1;  // input rows (y) one item reads per z tap: a range, so that rows step evenly
  std::int64_t max_call_taps = 1;  // z taps x y taps x the x taps of every sequence
  bool stream = false;  // output rows written with non-temporal stores (see kStreamBytes)
  // Expanded rows (see plan_expanded): the x phases computed as one row with a weight per lane.
  bool expanded = false;
  std::vector<std::int64_t> phase_base;  // per part q: the slot element (see lo) its pixel 0 reads first
  std::vector<std::int64_t> shifts;      // the distinct offsets of the parts' taps past their phase_base
  std::vector<int> lane_taps;            // [shift][part]: the part's tap at that shift (its index), or -1: none
  std::int64_t expanded_len = 0;         // floats per expanded row
  // Flat planes (see plan_flat): every kernel tap's offset in the flattened input plane, and the masks of
  // KernelSet::depthwise_flat.
  bool flat = false;
  std::vector<std::int64_t> flat_offsets;
  std::vector<std::uint8_t> flat_masks;
};

struct Packed final : PackedData {
  util::AlignedFloats weights;  // [channel][kernel tap]
  // With expanded rows: the weight vectors of each (z, y) tap, [channel][kz][ky][shift][lane] (see lane_weight).
  util::AlignedFloats lane_weights;
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
    // A chunk computes lanes-wide runs of every x phase: kChunkPixels / kMaxPhases pixels of each at the least.
    if (p.op == Op::conv_transpose && std::min(p.stride[x], output_size(p)[x]) > kMaxPhases) {
      return "more than " + std::to_string(kMaxPhases) + " phases along the last axis (stride)";
    }
    // The slots hold a range of input rows per z tap: with a large dilation along y most of them are never read.
    const auto state = make_state(p);
    if (!state->flat && slot_bytes(*state) > kMaxSlotBytes) {
      return "input rows of a work item over 2 MiB (dilation along y)";
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override { return make_state(p); }

 private:
  // The zero-padded input rows of a work item, or their expanded rows.
  static std::int64_t slot_bytes(const State& s) {
    return s.kernel[0] * s.max_y_rows * (s.expanded ? s.expanded_len : s.slot_len) *
           static_cast<std::int64_t>(sizeof(float));
  }

  // A transposed convolution's x phases as one row: when every part's taps read the same offsets past a base of its
  // own (with zero weights where a part lacks one), the expanded row B[parts * i + q] = slot[i + phase_base[q]] holds
  // every tap's operand at the output pixel's own position, shifted by parts * shift:
  //   out[parts * j + q] = sum over shifts k of w(q, k) * B[parts * (j + shifts[k]) + q].
  // A vector of consecutive outputs then needs one load and one multiply-add per shift with a weight per lane
  // (lanes a multiple of parts, so lane l is phase l % parts), where the phases computed apart took two interleaving
  // shuffles per output vector and loads at odd offsets: dw_up2's kernel on Zen 1 (AVX2) 12.7 -> 7.1 cycles per
  // output vector, timed alone on its data. Building the expanded rows costs one interleave per input row, which
  // feeds kh / stride output rows. The whole layer, timed in turns with the phases computed apart: 1.08x at
  // 1 thread, 0.95-1.0x at 2 (bound by memory there). Not taken where the zero weights would add more than one
  // multiply-add per part.
  static void plan_expanded(State& s) {
    const auto& xs = s.axes[2].sequences;
    const auto parts = static_cast<std::int64_t>(xs.size());
    const std::int64_t lanes = s.kernels.lanes;
    if (parts < 2 || lanes % parts != 0) return;
    std::vector<std::int64_t> base;
    std::vector<std::int64_t> shifts;
    std::int64_t x_taps = 0;
    for (std::int64_t q = 0; q < parts; ++q) {
      const AxisSequence& seq = xs[static_cast<std::size_t>(q)];
      if (seq.taps.empty() || seq.out_first != q || seq.out_step != parts || seq.in_step != 1) return;
      std::int64_t b = seq.in_first + seq.taps[0].in_offset - s.lo;
      for (const AxisTap& tap : seq.taps) b = std::min(b, seq.in_first + tap.in_offset - s.lo);
      for (const AxisTap& tap : seq.taps) shifts.push_back(seq.in_first + tap.in_offset - s.lo - b);
      base.push_back(b);
      x_taps += static_cast<std::int64_t>(seq.taps.size());
    }
    std::sort(shifts.begin(), shifts.end());
    shifts.erase(std::unique(shifts.begin(), shifts.end()), shifts.end());
    if (static_cast<std::int64_t>(shifts.size()) * parts > x_taps + parts) return;
    s.lane_taps.assign(shifts.size() * static_cast<std::size_t>(parts), -1);
    for (std::size_t k = 0; k < shifts.size(); ++k)
      for (std::int64_t q = 0; q < parts; ++q) {
        const AxisSequence& seq = xs[static_cast<std::size_t>(q)];
        for (std::size_t t = 0; t < seq.taps.size(); ++t) {
          if (seq.in_first + seq.taps[t].in_offset - s.lo - base[static_cast<std::size_t>(q)] == shifts[k]) {
            s.lane_taps[k * static_cast<std::size_t>(parts) + static_cast<std::size_t>(q)] = static_cast<int>(t);
          }
        }
      }
    // The kernel reads B up to the chunk's outputs rounded up to vectors, plus the largest shift; B's element
    // parts * i + q comes from slot element i + phase_base[q].
    const std::int64_t reach = (s.chunk_len * parts + lanes - 1) / lanes * lanes + parts * shifts.back();
    s.expanded_len = (reach + lanes * parts - 1) / (lanes * parts) * (lanes * parts);  // whole vectors of each part
    s.phase_base = std::move(base);
    s.shifts = std::move(shifts);
    s.max_call_taps = std::max<std::int64_t>(1, s.kernel[0] * s.kernel[1] * static_cast<std::int64_t>(s.shifts.size()));
    s.expanded = true;
  }

  // Flat planes: where every axis has one sequence reading its input at the output's own position plus a tap offset
  // (stride 1) and the input and output extents agree ("same" padding), output pixel o of a plane reads input pixel
  // o + offset(tap) of the flattened plane wherever the tap lands inside the input. A whole plane is then one kernel
  // call over vectors of consecutive pixels that run across row ends, each tap a masked load, with no zero-padded
  // copy and no per-row setup. dw_atrous_r12 (2048 planes of 33 x 33, rows of two vectors and one pixel) had spent
  // half its time copying rows into slots and gathering each row run's taps, and a third of its multiply-adds on
  // the rows' one-pixel last vectors. Planes whose mask table outgrows kMaxFlatMaskBytes keep the rows. Outputs are
  // stored plainly even where large: streaming the whole vectors (a mask table per alignment of a plane's start)
  // measured 0.92-1.0x at 1 thread and within noise at 2 on dw_atrous_r12, caches evicted between runs.
  static void plan_flat(State& s) {
    if (s.kernels.depthwise_flat == nullptr) return;
    for (int a = 0; a < 3; ++a) {
      const Axis& axis = s.axes[static_cast<std::size_t>(a)];
      if (axis.sequences.size() != 1 || axis.input != axis.output) return;
      const AxisSequence& seq = axis.sequences[0];
      if (seq.out_first != 0 || seq.out_step != 1 || seq.in_step != 1) return;
      if (static_cast<std::int64_t>(seq.taps.size()) != s.kernel[static_cast<std::size_t>(a)]) return;
    }
    const std::int64_t plane = s.out[0] * s.out[1] * s.out[2];
    const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
    const std::int64_t lanes = s.kernels.lanes, mask_bytes = (lanes + 7) / 8;
    const std::int64_t group = kFlatGroupVectors * lanes;
    const std::int64_t groups = (plane + group - 1) / group;
    if (groups * taps * kFlatGroupVectors * mask_bytes > kMaxFlatMaskBytes) return;
    // The axis offset of kernel tap k: where output pixel j's tap k reads, minus j.
    std::array<std::vector<std::int64_t>, 3> offset;
    for (std::size_t a = 0; a < 3; ++a) {
      const AxisSequence& seq = s.axes[a].sequences[0];
      offset[a].assign(static_cast<std::size_t>(s.kernel[a]), 0);
      for (const AxisTap& tap : seq.taps) {
        offset[a][static_cast<std::size_t>(tap.kernel_index)] = seq.in_first + tap.in_offset;
      }
    }
    s.flat_offsets.clear();
    s.flat_masks.assign(static_cast<std::size_t>(groups * taps * kFlatGroupVectors * mask_bytes), 0);
    std::int64_t t = 0;
    for (std::int64_t kz = 0; kz < s.kernel[0]; ++kz)
      for (std::int64_t ky = 0; ky < s.kernel[1]; ++ky)
        for (std::int64_t kx = 0; kx < s.kernel[2]; ++kx, ++t) {
          const std::int64_t dz = offset[0][static_cast<std::size_t>(kz)], dy = offset[1][static_cast<std::size_t>(ky)];
          const std::int64_t dx = offset[2][static_cast<std::size_t>(kx)];
          s.flat_offsets.push_back((dz * s.in[1] + dy) * s.in[2] + dx);
          // Output pixel (z, y, x) is lane l of vector u of group g, counted along as the pixels go (with a
          // division or two per pixel, a mask table near its size limit took tens of milliseconds to plan).
          const auto inside = [](std::int64_t i, std::int64_t n) { return i >= 0 && i < n; };
          std::int64_t g = 0, u = 0, l = 0;
          for (std::int64_t z = 0; z < s.out[0]; ++z)
            for (std::int64_t y = 0; y < s.out[1]; ++y) {
              const bool rows_inside = inside(z + dz, s.in[0]) && inside(y + dy, s.in[1]);
              for (std::int64_t x = 0; x < s.out[2]; ++x) {
                if (rows_inside && inside(x + dx, s.in[2])) {
                  const std::int64_t byte = ((g * taps + t) * kFlatGroupVectors + u) * mask_bytes + l / 8;
                  s.flat_masks[static_cast<std::size_t>(byte)] |= static_cast<std::uint8_t>(1u << (l % 8));
                }
                if (++l == lanes) l = 0, u = (u + 1) % kFlatGroupVectors, g += u == 0 ? 1 : 0;
              }
            }
        }
    s.flat = true;
  }

  static std::shared_ptr<State> make_state(const Problem& p) {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    Geometry geometry = make_geometry(p);
    s->axes = std::move(geometry.axes);
    s->kernel = geometry.kernel, s->in = geometry.in, s->out = geometry.out;
    const auto& xs = s->axes[2].sequences;
    const auto parts = static_cast<std::int64_t>(xs.size());
    const std::int64_t lanes = s->kernels.lanes;
    const std::int64_t seq_len = xs[0].count;  // the longest sequence
    const std::int64_t planes = p.batch * p.groups;
    if (s->out[2] > kChunkPixels) {
      s->chunk_len = std::min(seq_len, (kChunkPixels / parts + lanes - 1) / lanes * lanes);
    } else {
      s->chunk_len = seq_len;
      s->rows_per_item = std::clamp<std::int64_t>(kPixelsPerItem / s->out[2], 1, s->out[1]);
    }
    s->chunks = (seq_len + s->chunk_len - 1) / s->chunk_len;
    while (s->rows_per_item > 1 &&
           planes * s->out[0] * s->chunks * ((s->out[1] + s->rows_per_item - 1) / s->rows_per_item) < kMinItems) {
      s->rows_per_item /= 2;
    }
    // Every x tap of every pixel j < chunk_len (rounded up to vectors: the kernel computes whole ones) reads
    // column x_begin + in_first + j + in_offset (in_step is 1, see declines).
    std::int64_t lo = 0, hi = 0, x_taps = 0;
    bool first = true;
    for (const AxisSequence& seq : xs) {
      for (const AxisTap& tap : seq.taps) {
        const std::int64_t offset = seq.in_first + tap.in_offset;
        lo = first ? offset : std::min(lo, offset), hi = first ? offset : std::max(hi, offset);
        first = false;
      }
      x_taps += static_cast<std::int64_t>(seq.taps.size());
    }
    s->lo = lo;
    s->slot_len = (s->chunk_len + lanes - 1) / lanes * lanes + (hi - lo);
    s->max_call_taps = std::max<std::int64_t>(1, s->kernel[0] * s->kernel[1] * x_taps);
    for (std::int64_t y0 = 0; y0 < s->out[1]; y0 += s->rows_per_item) {
      const auto [y_lo, y_hi] = input_rows(*s, y0, std::min(s->out[1], y0 + s->rows_per_item));
      s->max_y_rows = std::max(s->max_y_rows, y_hi - y_lo);
    }
    plan_expanded(*s);
    plan_flat(*s);
    s->stream = static_cast<double>(element_count(dst_shape(p), "dst")) * sizeof(float) > kStreamBytes;
    return s;
  }


 public:
  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
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
    const auto& s = static_cast<const State&>(*state);
    if (s.expanded) {
      const std::int64_t zy_taps = s.kernel[0] * s.kernel[1], lanes = s.kernels.lanes;
      const auto shifts = static_cast<std::int64_t>(s.shifts.size());
      packed->lane_weights.resize(static_cast<std::size_t>(channels * zy_taps * shifts * lanes));
      float* to = packed->lane_weights.data();
      for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t zy = 0; zy < zy_taps; ++zy)
          for (std::int64_t k = 0; k < shifts; ++k)
            for (std::int64_t lane = 0; lane < lanes; ++lane) {
              *to++ = lane_weight(s, packed->weights.data() + (c * zy_taps + zy) * s.kernel[2], k, lane);
            }
    }
    packed->bytes = (packed->weights.size() + packed->lane_weights.size()) * sizeof(float);
    return packed;
  }

  // The weight that lane `lane` of an expanded row's vectors takes for shift k: that of the tap of phase
  // lane % parts at that shift, from the kernel's x row k_row, or zero where the phase has none.
  static float lane_weight(const State& s, const float* k_row, std::int64_t k, std::int64_t lane) {
    const auto& xs = s.axes[2].sequences;
    const auto parts = static_cast<std::int64_t>(xs.size());
    const std::int64_t q = lane % parts;
    const int tap = s.lane_taps[static_cast<std::size_t>(k * parts + q)];
    return tap < 0 ? 0.0f : k_row[xs[static_cast<std::size_t>(q)].taps[static_cast<std::size_t>(tap)].kernel_index];
  }

  // Work items a thread takes at a time: small planes (one item each) in groups of about kPixelsPerItem outputs,
  // leaving at least kMinItems groups. dw_atrous_r12 (channels_first: 2048 planes of 33 x 33, 0.7 us each) had
  // spent longer handing out items one at a time than computing them at 2 threads: 1.36-1.49 ms one at a time,
  // 0.76-0.91 ms in groups (the benchmark, in turns; 1 thread unchanged). Items stay independent, so the result
  // does not depend on the grouping. `pixels`: the outputs of one item.
  static int items_per_grab(std::int64_t pixels, std::int64_t items) {
    const std::int64_t most = std::max<std::int64_t>(1, items / kMinItems);
    return static_cast<int>(std::clamp<std::int64_t>(kPixelsPerItem / std::max<std::int64_t>(pixels, 1), 1, most));
  }

  // Per thread: the Scratch of a work item (flat planes need none: their masks are the plan's).
  std::size_t forward_workspace_bytes(const Problem&, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    if (s.flat) return 0;
    const std::int64_t bytes =
        slot_bytes(s) +
        s.max_call_taps * static_cast<std::int64_t>(sizeof(const float*) + 2 * s.kernels.lanes * sizeof(float)) +
        static_cast<std::int64_t>((s.axes[2].sequences.size() + 1) * sizeof(int)) +
        s.kernel[0] * static_cast<std::int64_t>(sizeof(TapHit));
    return static_cast<std::size_t>(threads * bytes);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    if (s.flat) return forward_flat(p, s, packed, args);
    const std::int64_t bands = (s.out[1] + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t per_plane = s.out[0] * bands * s.chunks;
    const std::int64_t items = p.batch * p.groups * per_plane;
    const std::int64_t item_pixels =
        s.rows_per_item * s.chunk_len * static_cast<std::int64_t>(s.axes[2].sequences.size());
    [[maybe_unused]] const int grain = items_per_grab(item_pixels, items);  // unused without OpenMP (the TSan build)
#pragma omp parallel for schedule(dynamic, grain)
    for (std::int64_t item = 0; item < items; ++item) {
      const std::int64_t plane = item / per_plane;  // plane = n * channels + c
      const std::int64_t oz = item % per_plane / (bands * s.chunks);
      const std::int64_t band = item / s.chunks % bands, chunk = item % s.chunks;
      const std::int64_t c = plane % p.groups;
      const float* src = static_cast<const float*>(args.src) + plane * s.in[0] * s.in[1] * s.in[2];
      float* dst = static_cast<float*>(args.dst) + (plane * s.out[0] + oz) * s.out[1] * s.out[2];
      const float init = args.bias != nullptr ? static_cast<const float*>(args.bias)[c] : 0.0f;
      const float* w = s.expanded ? packed.lane_weights.data() + c * s.kernel[0] * s.kernel[1] *
                                                                     static_cast<std::int64_t>(s.shifts.size()) *
                                                                     s.kernels.lanes
                                  : packed.weights.data() + c * s.kernel[0] * s.kernel[1] * s.kernel[2];
      thread_local Scratch scratch;
      scratch.fit(s);
      run_item(s, scratch, src, w, init, oz, band * s.rows_per_item,
               std::min(s.out[1], (band + 1) * s.rows_per_item), chunk * s.chunk_len, dst);
      if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
    }
  }

 private:
  // Flat planes (plan_flat): a kernel call per plane, planes handed out in groups as items_per_grab's.
  static void forward_flat(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args) {
    const std::int64_t in_plane = s.in[0] * s.in[1] * s.in[2], out_plane = s.out[0] * s.out[1] * s.out[2];
    const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
    const std::int64_t planes = p.batch * p.groups;
    [[maybe_unused]] const int grain = items_per_grab(out_plane, planes);  // unused without OpenMP (the TSan build)
#pragma omp parallel for schedule(dynamic, grain)
    for (std::int64_t plane = 0; plane < planes; ++plane) {  // plane = n * channels + c
      const std::int64_t c = plane % p.groups;
      const float init = args.bias != nullptr ? static_cast<const float*>(args.bias)[c] : 0.0f;
      s.kernels.depthwise_flat(static_cast<const float*>(args.src) + plane * in_plane, packed.weights.data() + c * taps,
                               s.flat_offsets.data(), static_cast<int>(taps), s.flat_masks.data(), out_plane, init,
                               static_cast<float*>(args.dst) + plane * out_plane);
    }
  }

  // Per-thread buffers, sized once per work item.
  struct Scratch {
    std::vector<TapHit> z_taps;
    // [z tap][input row - y_lo][slot_len], or with expanded rows [z tap][input row - y_lo][expanded_len]; both
    // buffers start on a cache line (the expanded rows and lane weights are read as aligned vectors).
    util::AlignedFloats slots;
    std::vector<const float*> in;
    util::AlignedFloats tap_weights;  // a weight per tap, or with expanded rows a vector per tap
    std::vector<int> part_taps;
    std::vector<YRun> runs;  // the y runs of an item with expanded rows
    void fit(const State& s) {
      z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
      slots.resize(static_cast<std::size_t>(slot_bytes(s) / static_cast<std::int64_t>(sizeof(float))));
      in.resize(static_cast<std::size_t>(s.max_call_taps));
      // With expanded rows: the lane weights of both rows of a pair.
      tap_weights.resize(static_cast<std::size_t>(2 * s.max_call_taps * s.kernels.lanes));
      part_taps.resize(s.axes[2].sequences.size() + 1);
      std::size_t segments = 0;
      for (const AxisSequence& seq : s.axes[1].sequences) segments += seq.segments.size();
      runs.reserve(segments);
    }
  };

  // The input rows [y_lo, y_hi) that the valid y taps of output rows [y0, y1) read (empty: none).
  static std::pair<std::int64_t, std::int64_t> input_rows(const State& s, std::int64_t y0, std::int64_t y1) {
    std::int64_t y_lo = s.in[1], y_hi = 0;
    for (const AxisSequence& seq : s.axes[1].sequences) {
      const auto [jb, je] = pixels_in(seq, y0, y1);
      for (const AxisSegment& seg : seq.segments) {
        const std::int64_t j0 = std::max(jb, seg.j_begin), j1 = std::min(je, seg.j_end);
        for (int t = seg.tap_begin; j0 < j1 && t < seg.tap_end; ++t) {
          const std::int64_t at = seq.in_first + seq.taps[static_cast<std::size_t>(t)].in_offset;
          y_lo = std::min(y_lo, at + j0 * seq.in_step);
          y_hi = std::max(y_hi, at + (j1 - 1) * seq.in_step + 1);
        }
      }
    }
    return {y_lo, std::max(y_lo, y_hi)};
  }

  // Calls run(yseq, yseg, j0, j1) for every y segment that output rows [y0, y1) reach: pixels [j0, j1) of the y
  // sequence yseq, whose rows have the valid y taps of yseg, in one kernel call.
  template <class Run>
  static void for_each_y_run(const State& s, std::int64_t y0, std::int64_t y1, const Run& run) {
    for (const AxisSequence& yseq : s.axes[1].sequences) {
      const auto [jb, je] = pixels_in(yseq, y0, y1);
      for (const AxisSegment& yseg : yseq.segments) {
        const std::int64_t j0 = std::max(jb, yseg.j_begin), j1 = std::min(je, yseg.j_end);
        if (j0 < j1) run(yseq, yseg, j0, j1);
      }
    }
  }

  // Input row `row` into a slot: element i is column x_begin + lo + i, zero outside the input.
  static void fill_slot(const State& s, const float* row, std::int64_t x_begin, float* slot) {
    const std::int64_t first = x_begin + s.lo;  // the input column of slot element 0
    const std::int64_t inside_begin = std::clamp<std::int64_t>(-first, 0, s.slot_len);
    const std::int64_t inside_end = std::clamp<std::int64_t>(s.in[2] - first, inside_begin, s.slot_len);
    std::fill(slot, slot + inside_begin, 0.0f);
    std::copy(row + first + inside_begin, row + first + inside_end, slot + inside_begin);
    std::fill(slot + inside_end, slot + s.slot_len, 0.0f);
  }

  // Output rows [y0, y1) of z level oz of one channel plane (dst: the level's first row), pixels
  // [x_begin, x_begin + chunk_len) of each x sequence. One kernel call covers every row of a y segment (rows of one
  // y phase whose valid y taps are the same): their input rows are slots a fixed step apart.
  static void run_item(const State& s, Scratch& scratch, const float* src, const float* w, float init,
                       std::int64_t oz, std::int64_t y0, std::int64_t y1, std::int64_t x_begin, float* dst) {
    const int nz = s.axes[0].taps_at(oz, scratch.z_taps.data());
    if (s.expanded) return run_item_expanded(s, scratch, nz, src, w, init, y0, y1, x_begin, dst);
    const auto& xs = s.axes[2].sequences;
    const auto parts = static_cast<std::int64_t>(xs.size());
    // Named variables, not a structured binding: the lambda below captures them (clang 14 cannot capture bindings).
    const std::pair<std::int64_t, std::int64_t> in_rows = input_rows(s, y0, y1);
    const std::int64_t y_lo = in_rows.first, y_hi = in_rows.second;
    for (int zi = 0; zi < nz; ++zi)
      for (std::int64_t iy = y_lo; iy < y_hi; ++iy) {
        fill_slot(s, src + (scratch.z_taps[zi].in_index * s.in[1] + iy) * s.in[2], x_begin,
                  scratch.slots.data() + (zi * (y_hi - y_lo) + iy - y_lo) * s.slot_len);
      }
    const std::int64_t out_begin = x_begin * parts;
    const std::int64_t count = std::min(s.out[2], (x_begin + s.chunk_len) * parts) - out_begin;
    for_each_y_run(s, y0, y1, [&](const AxisSequence& yseq, const AxisSegment& yseg, std::int64_t j0,
                                  std::int64_t j1) {
      int t = 0;
      scratch.part_taps[0] = 0;
      for (std::int64_t q = 0; q < parts; ++q) {
        const AxisSequence& xseq = xs[static_cast<std::size_t>(q)];
        for (int zi = 0; zi < nz; ++zi)
          for (int yt = yseg.tap_begin; yt < yseg.tap_end; ++yt) {
            const AxisTap& ytap = yseq.taps[static_cast<std::size_t>(yt)];
            const std::int64_t iy = yseq.in_first + j0 * yseq.in_step + ytap.in_offset;
            const float* slot_row = scratch.slots.data() + (zi * (y_hi - y_lo) + iy - y_lo) * s.slot_len;
            const float* k_row =
                w + (scratch.z_taps[zi].kernel_index * s.kernel[1] + ytap.kernel_index) * s.kernel[2];
            for (const AxisTap& xtap : xseq.taps) {
              scratch.in[static_cast<std::size_t>(t)] = slot_row + xseq.in_first - s.lo + xtap.in_offset;
              scratch.tap_weights[static_cast<std::size_t>(t++)] = k_row[xtap.kernel_index];
            }
          }
        scratch.part_taps[static_cast<std::size_t>(q + 1)] = t;
      }
      float* const out = dst + (yseq.out_first + j0 * yseq.out_step) * s.out[2] + out_begin;
      const std::int64_t out_row_stride = yseq.out_step * s.out[2];
      s.kernels.planar_rows(scratch.in.data(), yseq.in_step * s.slot_len, scratch.tap_weights.data(),
                            scratch.part_taps.data(), static_cast<int>(parts), init, out, out_row_stride, j1 - j0,
                            count, stream_rows(s, out, out_row_stride));
    });
  }

  // run_item with expanded rows (plan_expanded): each input row through one zero-padded slot into its expanded
  // row, then one kernel call per y segment over every (z, y) tap and shift, with a weight per lane (w: the
  // channel's packed lane weights), or one per pair of y segments whose rows read the same input rows (pair_offset).
  static void run_item_expanded(const State& s, Scratch& scratch, int nz, const float* src, const float* w,
                                float init, std::int64_t y0, std::int64_t y1, std::int64_t x_begin, float* dst) {
    const auto parts = static_cast<std::int64_t>(s.axes[2].sequences.size());
    const auto [y_lo, y_hi] = input_rows(s, y0, y1);
    float* const rows = scratch.slots.data();  // [z tap][input row - y_lo][expanded_len]
    for (int zi = 0; zi < nz; ++zi)
      for (std::int64_t iy = y_lo; iy < y_hi; ++iy) {
        s.kernels.expand_row(src + (scratch.z_taps[zi].in_index * s.in[1] + iy) * s.in[2], s.in[2], x_begin + s.lo,
                             s.phase_base.data(), static_cast<int>(parts),
                             rows + (zi * (y_hi - y_lo) + iy - y_lo) * s.expanded_len, s.expanded_len / parts);
      }
    const std::int64_t out_begin = x_begin * parts;
    const ExpandedItem item{s,    scratch, nz, w, init, rows, y_lo, y_hi - y_lo, dst + out_begin,
                            std::min(s.out[2], (x_begin + s.chunk_len) * parts) - out_begin};
    scratch.runs.clear();  // within the capacity fit() reserved: one run per y segment at most
    for_each_y_run(s, y0, y1, [&](const AxisSequence& yseq, const AxisSegment& yseg, std::int64_t j0,
                                  std::int64_t j1) { scratch.runs.push_back({&yseq, &yseg, j0, j1}); });
    for (std::size_t a = 0; a < scratch.runs.size(); ++a) {
      YRun& run_a = scratch.runs[a];
      for (std::size_t b = a + 1; b < scratch.runs.size() && !run_a.done; ++b) {
        YRun& run_b = scratch.runs[b];
        const std::optional<RowPair> pair = run_b.done ? std::nullopt : pair_offset(s, nz, run_a, run_b);
        if (!pair) continue;
        const std::int64_t delta = pair->delta;
        const std::int64_t j0 = std::max(run_a.j0, run_b.j0 - delta), j1 = std::min(run_a.j1, run_b.j1 - delta);
        if (j0 >= j1) continue;
        item.pair(run_a, run_b, *pair, j0, j1);
        // What either run has outside the pair, alone.
        item.single(run_a, run_a.j0, j0), item.single(run_a, j1, run_a.j1);
        item.single(run_b, run_b.j0, j0 + delta), item.single(run_b, j1 + delta, run_b.j1);
        run_a.done = run_b.done = true;
      }
      if (!run_a.done) item.single(run_a, run_a.j0, run_a.j1);
    }
  }

  // The y taps of a run's segment in the order of the input rows they read (at most kMaxPairedLaneTaps).
  static int sorted_y_taps(const YRun& run, int (&order)[kMaxPairedLaneTaps]) {
    const int n = std::min(run.seg->tap_end - run.seg->tap_begin, kMaxPairedLaneTaps);
    const auto offset = [&](int tap) { return run.seq->taps[static_cast<std::size_t>(tap)].in_offset; };
    for (int i = 0; i < n; ++i) {  // insertion sort (std::sort on the little array trips GCC 12's -Warray-bounds)
      int k = i;
      for (; k > 0 && offset(order[k - 1]) > offset(run.seg->tap_begin + i); --k) order[k] = order[k - 1];
      order[k] = run.seg->tap_begin + i;
    }
    return n;
  }

  // Row pairs: where row j of run a reads the same input rows as row j + delta of run b (a transposed
  // convolution's y phases: with a 4-tap kernel at stride 2, output rows 2m + 1 and 2m + 2 both read input rows m
  // and m + 1), both are computed in one pass that loads each input vector once (planar_lane_row_pairs): dw_up2
  // (channels_first) 1.15-1.21x as fast at 1 thread and 1.12x at 2, timed in turns with every row alone. Returns
  // delta with both runs' y taps in the order of their rows, or nothing where they do not pair (or the taps of a call
  // would be too many to keep in registers).
  struct RowPair {
    std::int64_t delta;
    int order_a[kMaxPairedLaneTaps], order_b[kMaxPairedLaneTaps];  // see sorted_y_taps
  };
  static std::optional<RowPair> pair_offset(const State& s, int nz, const YRun& a, const YRun& b) {
    const AxisSequence &sa = *a.seq, &sb = *b.seq;
    const int ny = a.seg->tap_end - a.seg->tap_begin;
    // No taps (a z level that no tap reaches, or rows wholly in padding): the rows are their bias, alone.
    if (&sa == &sb || sa.in_step != sb.in_step || sa.out_step != sb.out_step || nz < 1 || ny < 1 ||
        ny != b.seg->tap_end - b.seg->tap_begin ||
        nz * ny * static_cast<std::int64_t>(s.shifts.size()) > kMaxPairedLaneTaps) {
      return std::nullopt;
    }
    RowPair pair{};
    sorted_y_taps(a, pair.order_a), sorted_y_taps(b, pair.order_b);
    const int* order_a = pair.order_a;
    const int* order_b = pair.order_b;
    // Input rows read at pixel j: in_first + j * in_step + in_offset.
    const auto row = [](const AxisSequence& seq, int tap) {
      return seq.in_first + seq.taps[static_cast<std::size_t>(tap)].in_offset;
    };
    const std::int64_t shift = row(sa, order_a[0]) - row(sb, order_b[0]);  // delta * in_step
    if (shift % sa.in_step != 0) return std::nullopt;
    // The phases' valid taps read rows in steps of the dilation, so the first row decides; the rest is checked so
    // that this stays right whatever the axes' sequences become.
    for (int i = 1; i < ny; ++i) {
      if (row(sa, order_a[i]) - row(sb, order_b[i]) != shift) return std::nullopt;
    }
    pair.delta = shift / sa.in_step;
    return pair;
  }

  // The output rows of a work item with expanded rows, computed by runs of rows alone or in pairs.
  struct ExpandedItem {
    const State& s;
    Scratch& scratch;
    int nz;
    const float* w;  // the channel's packed lane weights
    float init;
    const float* rows;  // expanded rows [z tap][input row - y_lo][expanded_len]
    std::int64_t y_lo, y_rows;
    float* dst;  // the item's z level, its first output column
    std::int64_t count;  // outputs per row

    // The (z, y) taps of `run` at pixel j, each with every shift: their expanded rows into scratch.in and their
    // lane weights into `weights`, y taps in `order` (null: the segment's). Returns how many.
    int gather_taps(const YRun& run, const int* order, std::int64_t j, float* weights) const {
      const auto parts = static_cast<std::int64_t>(s.axes[2].sequences.size());
      const auto shifts = static_cast<std::int64_t>(s.shifts.size());
      const std::int64_t lanes = s.kernels.lanes;
      const int ny = run.seg->tap_end - run.seg->tap_begin;
      int t = 0;
      for (int zi = 0; zi < nz; ++zi)
        for (int i = 0; i < ny; ++i) {
          const AxisTap& ytap = run.seq->taps[static_cast<std::size_t>(order ? order[i] : run.seg->tap_begin + i)];
          const std::int64_t iy = run.seq->in_first + j * run.seq->in_step + ytap.in_offset;
          const float* row = rows + (zi * y_rows + iy - y_lo) * s.expanded_len;
          const float* zy_weights =
              w + (scratch.z_taps[zi].kernel_index * s.kernel[1] + ytap.kernel_index) * shifts * lanes;
          std::copy(zy_weights, zy_weights + shifts * lanes, weights + t * lanes);
          for (std::int64_t k = 0; k < shifts; ++k, ++t) {
            scratch.in[static_cast<std::size_t>(t)] = row + parts * s.shifts[static_cast<std::size_t>(k)];
          }
        }
      return t;
    }

    float* out_row(const YRun& run, std::int64_t j) const {
      return dst + (run.seq->out_first + j * run.seq->out_step) * s.out[2];
    }
    float* weights_a() const { return scratch.tap_weights.data(); }
    float* weights_b() const { return weights_a() + s.max_call_taps * s.kernels.lanes; }

    // Rows [j0, j1) of `run`.
    void single(const YRun& run, std::int64_t j0, std::int64_t j1) const {
      if (j0 >= j1) return;
      const int taps = gather_taps(run, nullptr, j0, weights_a());
      float* const out = out_row(run, j0);
      const std::int64_t out_row_stride = run.seq->out_step * s.out[2];
      s.kernels.planar_lane_rows(scratch.in.data(), run.seq->in_step * s.expanded_len, weights_a(), taps, init, out,
                                 out_row_stride, j1 - j0, count, stream_rows(s, out, out_row_stride));
    }

    // Rows [j0, j1) of run a with rows [j0 + delta, j1 + delta) of run b (see pair_offset).
    void pair(const YRun& a, const YRun& b, const RowPair& rows_pair, std::int64_t j0, std::int64_t j1) const {
      gather_taps(a, rows_pair.order_a, j0, weights_a());
      // The same input rows, in the same order.
      const int taps = gather_taps(b, rows_pair.order_b, j0 + rows_pair.delta, weights_b());
      float* const out_a = out_row(a, j0);
      float* const out_b = out_row(b, j0 + rows_pair.delta);
      const std::int64_t out_row_stride = a.seq->out_step * s.out[2];
      s.kernels.planar_lane_row_pairs(scratch.in.data(), a.seq->in_step * s.expanded_len, weights_a(), weights_b(),
                                      taps, init, out_a, out_b, out_row_stride, j1 - j0, count,
                                      stream_rows(s, out_a, out_row_stride) && stream_rows(s, out_b, out_row_stride));
    }
  };

  // Whether rows from out, out_row_stride apart, are written with non-temporal stores (vector-aligned only).
  static bool stream_rows(const State& s, const float* out, std::int64_t out_row_stride) {
    const auto lanes = static_cast<std::uintptr_t>(s.kernels.lanes);
    return s.stream && reinterpret_cast<std::uintptr_t>(out) % (lanes * sizeof(float)) == 0 &&
           static_cast<std::uintptr_t>(out_row_stride) % lanes == 0;
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_planar_engine() { return std::make_shared<Planar>(); }

}  // namespace tdconv::engine
