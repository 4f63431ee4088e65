// Dense convolutions on channels_first tensors with pixels as SIMD lanes: the gemm path's tile turned around
// (output channels broadcast, consecutive pixels of a row as vectors), so that nothing is transposed. The gemm
// path copies channels_first sources into channels_last and transposes its tiles back into planes, which cost
// 25-55% over its channels_last time on the suite's decoder layers (HiFi-GAN, WaveNet, 3D U-Net).
//
// A work item is one image's band of output rows (3D: a block of rows of a few planes, see Band; or a chunk of one
// long row) for one group, all of its output channels. Per pass over a chunk of input channels it copies the input
// rows the band reads, the window of columns its taps reach, into a panel: contiguous rows a few cache lines apart
// instead of planes a power of two apart (which share cache sets), read by every block of output channels and every
// tap. Rows and columns follow the axis decomposition (axis.hpp): taps in padding are never visited, and a
// transposed convolution's phases along x are computed into per-phase rows and interleaved into the destination.
#include "engine/planar_gemm.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <span>
#include <utility>

#include <hwy/cache_control.h>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

// Output pixels of one image per work item (times all output channels of the group).
constexpr std::int64_t kPixelsPerItem = 1024;
// ... and this many in 3D, whose items are blocks of rows (see Band): a block reads about (side / stride + 1)^2 input
// rows for side^2 output rows, so larger blocks copy each input row into fewer panels. vol_up_k3 channels_first
// (blocks of 8 x 8 rows instead of 4 x 4) ran 1.02-1.03x as fast at 1 thread and 1.04-1.06x at 2 (one comparison),
// in turns in one process (Intel Xeon); 3D U-Net's up-sampling 0.99-1.01x. At 8192 (11 x 11 rows, about 49 input
// rows of 64 channels: over kPanelBytes, so two passes) vol_up_k3 ran 0.78x: where these blocks would take more
// passes over the input channels than blocks of kPixelsPerItem, those are taken (make_state). The same layer with
// 128 input channels takes two passes in blocks of 8 x 8 rows: 1.20x as fast in blocks of 4 x 4 (one pass), 1.24x
// with 64 outputs.
constexpr std::int64_t kPixelsPerItem3D = 4096;
// ... where a row is longer than that, items are chunks of kRowChunkPixels of one row: WaveNet channels_first
// (1D, 16384 pixels) ran 1.17-1.34x as fast as with chunks of 1024 (128: 1.25x, 512: 1.17x) and HiFi-GAN up3
// 1.04x, paired in turns at full speed (Zen 3); bands of whole rows keep kPixelsPerItem (U-Net up4 and CycleGAN
// were 0.96-0.97x with 256).
constexpr std::int64_t kRowChunkPixels = 256;
// ... and at least this many times the span of the taps along x: a chunk's panel holds its pixels plus the span, so
// that WaveNet's chunks of 256 pixels at dilation 256 copied every input column twice. With 1024 (4 spans), in
// tdconv-bench against 256 (its peers' runs between, Intel Xeon): 1.02-1.08x as fast at 2 threads, 0.95-1.05x at 1.
// HiFi-GAN up3 (a span of 2) ran 0.95-1.01x with 1024 at 2 threads and keeps 256.
constexpr std::int64_t kChunkSpans = 4;
constexpr std::int64_t kMaxChunkPixels = 2048;  // whatever the span: the panel grows with both
constexpr std::int64_t kMinItems = 32;
// One pass's panel of input rows: in L2 while every block of output channels reads it.
constexpr std::int64_t kPanelBytes = 512 * 1024;
// Rows of a sequence shorter than this leave most lanes idle; the gemm path (pixels as tile rows) runs them.
constexpr std::int64_t kMinRun = 32;
constexpr std::int64_t kMinChannels = 8;
// A group's packed weights beyond this do not stay in L2 from one work item to the next, and every item reads them
// all (ASPP's 18 MiB: 1.4-1.8x slower than the gemm path, which reuses each pass's weights over many pixels).
constexpr double kMaxWeightBytes = 1024.0 * 1024;
// Outputs over this size are written with non-temporal stores where they are written once (as in engine.cpp).
constexpr double kStreamBytes = 4.0 * 1024 * 1024;
// winograd_planar: output channels per group at least. Its transforms cost a few operations per input element and
// per output element, against the multiply-adds it saves per input element and output channel (a quarter of the
// direct ones); nothing was measured below 64 (HiFi-GAN up3).
constexpr std::int64_t kMinWinogradOutputChannels = 32;
// ... and at most this many products in each of its sums (input channels per group x (z, y) taps): its transforms
// scale rounding errors up. Against the double-precision reference (inputs and weights uniform in [-1, 1]), the
// largest |error| / (1 + |y|) with kernel 4 at stride 2 was 1.2e-5, 3.3e-5 and 4.2e-5 on 64, 128 and 256 input
// channels in 1D (gemm_planar: 3.1e-6, 6.3e-6, 1.1e-5) and 3.2e-5 and 7.7e-5 on 64 and 128 in 2D (2 rows of taps),
// within the differential tests' 1e-4 (docs/design.md, "Winograd's accuracy").
constexpr std::int64_t kMaxWinogradSums = 256;
// ... and where it takes this many times fewer multiply-adds per useful lane than gemm_planar along x (group_cost).
constexpr double kMinWinogradSaving = 1.15;

// winograd_planar: Winograd F(n, r) along x for transposed convolutions (or convolutions) whose x phases (up to 2)
// have r = 1 or 2 taps, 2 on consecutive input columns, at least one with 2: the HiFi-GAN up-samplings' kernel 4
// at stride 2, CycleGAN's and the volumetric decoder's 3 at stride 2. Pixels nj + k (k < n) of a phase with 2 taps,
// y = wA x[f + nj + k] + wB x[f + nj + k + 1], come from n + 1 products per group instead of 2n: transformed rows
// (n + r - 1 per input row and phase, made by winograd_rows from x[f + nj + u], u < n + r - 1) times transformed
// weights (G (wA, wB); F(4, 2) for the points 0, 1, -1, 2 and infinity), summed over the input channels by the
// planar tiles, which combine the sums into the group's n pixels and store them interleaved
// (PlanarGemmCall::winograd). A phase with one tap runs F(n, 1): its rows deinterleaved, no saving. Groups of 4
// where they fill the vectors about as well as groups of 2 (group_cost). Its rounding error stays near the direct
// sum's (docs/design.md, "Winograd's accuracy"). Measured against gemm_planar on HiFi-GAN up3 channels_first (F(4,
// 2) against F(2, 2) too): docs/design.md.
// A convolution (or a transposed one at stride 1) whose 2 x taps are a dilation d apart (WaveNet's 256, up to a
// quarter of the row) takes the groups along the dilation instead
// (State::winograd_step): group h of a block of n d pixels is pixels h, h + d, .. h + (n - 1) d, from the input
// columns h + u d, so that a vector of consecutive groups reads and writes whole vectors of consecutive pixels, with
// nothing deinterleaved (d a multiple of the vector width; chunks of whole blocks). WaveNet channels_first, timed in
// turns against gemm_planar (Intel Xeon): 1.11-1.25x as fast at 1 thread, 1.11-1.13x at 2.
struct WinogradX {
  std::int64_t first = 0;  // f: the lower tap's input column for pixel 0 of the phase (in_first + its in_offset)
  int taps = 2;  // r
  std::int64_t lower = 0, upper = 0;  // kernel indices of the taps on columns f + u and f + u + 1 (r = 1: both)
};

// Multiply-adds along x per useful lane of every phase of a row of `run` pixels per phase in groups of n pixels
// (n + r - 1 per group of a phase with r taps), or with n = 1 as gemm_planar computes them (r per pixel); rows of
// one vector count at kOneVectorTiles of the speed (AVX-512, 1 thread, in turns against gemm_planar's two-vector
// tiles): the volumetric decoder layer (vol_up_k3, 32 pixels per phase: 16 groups of 2, 1.2x fewer multiplications)
// ran 0.87-0.89x as fast, a 2D 128 -> 128 channel layer (k4 s2, 64 pixels per phase: 16 groups of 4, 1.6x fewer)
// 1.15-1.2x: about 0.73-0.75 of the speed per multiplication.
constexpr double kOneVectorTiles = 0.75;
double group_cost(const std::vector<AxisSequence>& xs, std::int64_t run, int n, std::int64_t lanes) {
  const std::int64_t groups = (run + n - 1) / n;
  const double lanes_used = static_cast<double>(groups) / static_cast<double>((groups + lanes - 1) / lanes * lanes) *
                            (groups <= lanes ? kOneVectorTiles : 1.0);
  double products = 0;
  for (const AxisSequence& seq : xs) {
    const auto r = static_cast<int>(seq.taps.size());
    products += n == 1 ? r : static_cast<double>(n + r - 1) / n;
  }
  return products / lanes_used;
}

// Pixels [j_begin, j_end) of every x sequence, whose taps read input columns [lo, hi).
struct XChunk {
  std::int64_t j_begin = 0, j_end = 0, lo = 0, hi = 0;
};

struct State final : PlanState {
  KernelSet kernels;
  std::array<Axis, 3> axes;  // z, y, x
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  int vectors = 1, mr = 1;  // pixel vectors and output channels of a tile
  std::int64_t icg = 1, ocg = 1, blocks = 1, taps = 1;
  std::int64_t rows_per_item = 1;  // band_z x band_y
  std::int64_t band_z = 1, band_y = 1;  // see Band
  std::vector<XChunk> chunks;
  std::int64_t k_chunk = 1;    // input channels per pass
  std::int64_t max_slots = 1;  // distinct input rows one item reads
  std::int64_t panel_stride = 0;  // floats from one (row, channel) of the panel to the next
  int parts = 1;  // x sequences, interleaved when more than one
  std::int64_t phase_stride = 0;  // floats per output channel, row and phase in the phase buffer
  bool stream = false;  // see kStreamBytes
  // Whether each row of a phase is one run over all of the phase's taps, reading zeros past the input's edges,
  // instead of one run per segment of pixels with the same valid taps (see padding_x_pays).
  bool padded_x = false;
  // Phases computed together and interleaved as they are stored (PlanarGemmCall::parts), with no phase rows: when
  // every phase runs whole (padded_x) in one pass.
  bool fused_phases = false;
  // winograd_planar (see WinogradX): every x phase's pixels in groups from transformed rows, fused as above.
  bool winograd = false;
  std::int64_t group_stride = 0;     // floats per transformed row (groups of a chunk, whole vectors)
  std::int64_t transformed_stride = 0;  // floats from one (row, channel) of the transformed panel to the next
  std::array<WinogradX, 2> winograd_x;  // per phase
  std::int64_t winograd_step = 0;  // d: groups along x's dilation (dilated_x_step), blocks of n d pixels; or 0
  int group = 4;  // pixels per group: F(group, r)
  std::array<int, 2> x_taps{};  // r per phase (PlanarGemmCall::part_x_taps)
  std::array<int, 3> stream_offset{};  // per phase, its first transformed row of an input row; [parts]: all of them
  double winograd_saving = 1;  // gemm_planar's group_cost over Winograd's
  int streams(int part) const { return group + x_taps[static_cast<std::size_t>(part)] - 1; }
  std::int64_t packed_taps = 1;  // taps of the packed weights: the kernel's, or stream_offset[parts] per (z, y) tap
};

struct Packed final : PackedData {
  util::AlignedFloats weights;  // [group][block][tap][input channel][mr]
};

std::int64_t round_up(std::int64_t a, std::int64_t b) { return (a + b - 1) / b * b; }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Groups along a dilation (State::winograd_step) of a chunk of `pixels` pixels: d per block of n d pixels.
std::int64_t dilated_groups(const State& s, std::int64_t pixels) {
  return ceil_div(pixels, s.group * s.winograd_step) * s.winograd_step;
}

// The output rows of one work item: band_z output planes (z) by band_y rows (y), fewer at the ends; 1D and 2D
// problems have one plane, so a band is band_y consecutive rows. 3D bands are blocks rather than runs of rows of
// one plane because a plane of input rows is read by several output planes (3 with 3 taps at stride 2): a band of
// 16 rows of one plane of the volumetric decoder layer (vol_up_k3) read 18 input rows into its panel, a block of 4 x 4
// rows 9, so each input row is copied half as often.
struct Band {
  std::int64_t z0 = 0, nz = 1, y0 = 0, ny = 1, out_y = 1;
  std::int64_t rows() const { return nz * ny; }
  std::int64_t row(std::int64_t r) const { return (z0 + r / ny) * out_y + y0 + r % ny; }  // z * out_y + y
};

std::int64_t band_count(const State& s) {
  return (s.out[0] + s.band_z - 1) / s.band_z * ((s.out[1] + s.band_y - 1) / s.band_y);
}

Band band_at(const State& s, std::int64_t b) {
  const std::int64_t per_plane = (s.out[1] + s.band_y - 1) / s.band_y;
  Band band;
  band.z0 = b / per_plane * s.band_z, band.y0 = b % per_plane * s.band_y;
  band.nz = std::min(s.band_z, s.out[0] - band.z0), band.ny = std::min(s.band_y, s.out[1] - band.y0);
  band.out_y = s.out[1];
  return band;
}

// A tile loads its NV vectors of pixels of each channel from the panel (L2) and uses each for its rows of output
// channels: below this many rows, those loads, not the multiply-adds, set its pace. With 16 registers (AVX2) the
// four-vector tile has 2 rows, and it took 1.3-1.7x the time of the 6 x 2 tile on HiFi-GAN up3, WaveNet, CycleGAN
// and 3D U-Net (Zen 1, 1 thread); AVX-512's tiles all have 6 rows or more. Tiles of a convolution (one part) have
// full reuse from 4 rows: AVX2's 4 x 3 tile (7 loads for 12 multiply-adds, against the 6 x 2 tile's 8) ran WaveNet
// 1.04-1.05x as fast as 6 x 2 in turns. A transposed layer's fused-phase tile of that size runs out of registers
// (GCC spills an accumulator and reloads the pixel vectors for every multiply-add): 0.92-0.97x on CycleGAN,
// U-Net and HiFi-GAN.
constexpr std::int64_t kMinReuseRows = 6;
constexpr std::int64_t kMinReuseRowsOnePart = 4;
// ... and a convolution's tile (one part) that does fewer than this many multiply-adds per load (its rows x
// vectors per rows + vectors) counts in proportion: AVX-512's 6 x 4 tile (2.4) ran WaveNet channels_first 1.05x
// as fast as its 8 x 2 one (1.6) at 1 and 2 threads, in turns (Intel Xeon); AVX2's 4 x 3 tile (1.7) had beaten
// its 6 x 2 (1.5) likewise (see above).
constexpr double kBalancedProductsPerLoad = 2.0;

// Vectors of pixels per tile: the most lanes doing useful work over runs of `run` pixels and ocg output channels
// in blocks of planar_mr[v]; one-vector tiles wait on their loads more than they compute, so they count 15% less,
// tiles of fewer than kMinReuseRows (kMinReuseRowsOnePart) rows count in proportion to their rows, and one-part
// tiles below kBalancedProductsPerLoad in proportion to their multiply-adds per load.
int choose_vectors(const KernelSet& k, std::int64_t run, std::int64_t ocg, bool one_part) {
  const std::int64_t min_reuse_rows = one_part ? kMinReuseRowsOnePart : kMinReuseRows;
  int best = 1;
  double best_use = 0;
  for (int v = 1; v <= kMaxVectorsPerTile; ++v) {
    const std::int64_t width = v * k.lanes, rows = k.planar_mr[v];
    const double lanes_used = static_cast<double>(run) / static_cast<double>(round_up(run, width));
    const double rows_used = static_cast<double>(ocg) / static_cast<double>(round_up(ocg, rows));
    const double reuse = std::min(1.0, static_cast<double>(rows) / static_cast<double>(min_reuse_rows));
    const double products_per_load = static_cast<double>(rows * v) / static_cast<double>(rows + v);
    const double balance = one_part ? std::min(1.0, products_per_load / kBalancedProductsPerLoad) : 1.0;
    const double use = lanes_used * rows_used * reuse * balance * (v == 1 ? 0.85 : 1.0);
    if (use > best_use * 1.02) best = v, best_use = use;
  }
  return best;
}

// Whether a row computes fewer vector-taps as one run per phase over all its taps (zeros past the input's edges)
// than as one run per segment over its valid taps: segments of a pixel or two at the edges of short rows cost a
// whole tile each (3D U-Net's 32-pixel phases: 31 + 1 pixels, 3 vectors instead of 2), while in small, strongly
// dilated rows most taps of most pixels land in padding (ASPP's 33 columns at dilation 18).
bool padding_x_pays(const State& s, std::int64_t chunk_len) {
  const std::int64_t lanes = s.kernels.lanes;
  std::int64_t segmented = 0, padded = 0;
  for (const AxisSequence& seq : s.axes[2].sequences) {
    for (std::int64_t j0 = 0; j0 < seq.count; j0 += chunk_len) {
      const std::int64_t j1 = std::min(seq.count, j0 + chunk_len);
      padded += (j1 - j0 + lanes - 1) / lanes * static_cast<std::int64_t>(seq.taps.size());
      for (const AxisSegment& seg : seq.segments) {
        const std::int64_t jb = std::max(seg.j_begin, j0), je = std::min(seg.j_end, j1);
        if (jb < je) segmented += (je - jb + lanes - 1) / lanes * std::max(1, seg.tap_end - seg.tap_begin);
      }
    }
  }
  return padded <= segmented;  // a tie: whole runs, which fused_phases needs
}

// The dilation of a convolution's 2 taps along x (one sequence), if they are more than a column apart: Winograd's
// groups then run along it (WinogradX, PlanarGemmCall::winograd_step); else 0.
std::int64_t dilated_x_step(const Axis& axis) {
  if (axis.sequences.size() != 1 || axis.sequences[0].taps.size() != 2) return 0;
  const std::int64_t gap = std::abs(axis.sequences[0].taps[0].in_offset - axis.sequences[0].taps[1].in_offset);
  return gap > 1 ? gap : 0;
}

// Why winograd_planar does not take x phases like these, if it does not (see WinogradX).
std::optional<std::string> winograd_x_declines(const Axis& axis, std::int64_t lanes) {
  if (axis.sequences.size() > 2) return "more than 2 phases along the last axis";
  if (const std::int64_t step = dilated_x_step(axis); step > 0) {
    if (step % lanes != 0) return "2 taps along the last axis a dilation apart that is not a multiple of the vectors";
    // Blocks of n d pixels (n = 4, or 2): a dilation past a quarter of the row would compute mostly pixels past its
    // end, in panels that grow with the dilation rather than the row.
    if (step > axis.sequences[0].count / 4) {
      return "2 taps along the last axis a dilation apart over a quarter of the row";
    }
    return std::nullopt;
  }
  bool two = false;
  for (const AxisSequence& seq : axis.sequences) {
    if (seq.taps.empty() || seq.taps.size() > 2 ||
        (seq.taps.size() == 2 && std::abs(seq.taps[0].in_offset - seq.taps[1].in_offset) != 1)) {
      return "a phase along the last axis without 1 tap or 2 on consecutive input columns";
    }
    two = two || seq.taps.size() == 2;
  }
  if (!two) return "no phase along the last axis with 2 taps";
  return std::nullopt;
}

// gemm_planar, and winograd_planar: the same work items, panels and tiles with Winograd's groups along x (WinogradX).
class PlanarGemm final : public detail::ForwardOnlyImplementation {
 public:
  explicit PlanarGemm(bool winograd) : winograd_(winograd) {}

  std::string name() const override { return winograd_ ? "winograd_planar" : "gemm_planar"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (auto reason = planar_declines(p)) return reason;
    if (!winograd_) return std::nullopt;
    if (auto reason = winograd_x_declines(make_axis(p, p.spatial_dims - 1), best_kernels().lanes)) return reason;
    if (p.out_channels / p.groups < kMinWinogradOutputChannels) {
      return "fewer than " + std::to_string(kMinWinogradOutputChannels) + " output channels per group";
    }
    std::int64_t row_taps = 1;  // (z, y) taps of an output row at most
    for (int d = 0; d + 1 < p.spatial_dims; ++d) {
      std::size_t most = 0;
      for (const AxisSequence& seq : make_axis(p, d).sequences) most = std::max(most, seq.taps.size());
      row_taps *= static_cast<std::int64_t>(most);
    }
    if (p.in_channels / p.groups * row_taps > kMaxWinogradSums) {
      return "over " + std::to_string(kMaxWinogradSums) + " input channels per group x taps along z and y";
    }
    const auto s = make_state(p);
    if (!s->fused_phases) return "input channels in more than one pass of the panel";
    if (s->winograd_saving < kMinWinogradSaving) return "saves too few multiplications along x";
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override { return make_state(p); }

 private:
  bool winograd_;

  static std::optional<std::string> planar_declines(const Problem& p) {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.layout != Layout::channels_first) return "not channels_first";
    const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
    if (icg < kMinChannels || ocg < kMinChannels) return "fewer than 8 input or output channels per group";
    std::int64_t taps = 1;
    for (int d = 0; d < p.spatial_dims; ++d) taps *= p.kernel[d];
    if (static_cast<double>(icg * ocg * taps) * sizeof(float) > kMaxWeightBytes) {
      return "weights of a group over 1 MiB";
    }
    const int x = p.spatial_dims - 1;
    if (p.op == Op::conv && p.stride[x] != 1) return "strided along the last axis";
    const Axis axis = make_axis(p, x);
    const auto parts = static_cast<std::int64_t>(axis.sequences.size());
    if (parts > 4) return "more than 4 phases along the last axis";
    std::int64_t longest = 0;
    for (std::int64_t q = 0; q < parts; ++q) {
      const AxisSequence& seq = axis.sequences[static_cast<std::size_t>(q)];
      // The phases interleave into the row: sequence q holds columns q, q + parts, ...
      if (seq.in_step != 1 || seq.out_first != q || seq.out_step != parts) return "phases do not tile the row";
      longest = std::max(longest, seq.count);
    }
    if (longest < kMinRun) return "rows of fewer than 32 pixels per phase";
    return std::nullopt;
  }

  // The plan; winograd_planar's groups of 4 or 2 pixels as group_cost prefers (`group` 0), or as given. Where the
  // preferred groups' transformed panel takes two passes, the other size, if its panel takes one. 3D items of
  // `pixels_3d` output pixels, or of kPixelsPerItem where those take more passes over the input channels.
  std::shared_ptr<State> make_state(const Problem& p, int group = 0,
                                    std::int64_t pixels_3d = kPixelsPerItem3D) const {
    auto s = std::make_shared<State>();
    s->winograd = winograd_;
    s->kernels = best_kernels();
    Geometry geometry = make_geometry(p);
    s->axes = std::move(geometry.axes);
    s->kernel = geometry.kernel, s->in = geometry.in, s->out = geometry.out;
    s->icg = p.in_channels / p.groups, s->ocg = p.out_channels / p.groups;
    s->taps = s->kernel[0] * s->kernel[1] * s->kernel[2];
    const auto& xs = s->axes[2].sequences;
    s->parts = static_cast<int>(xs.size());
    const std::int64_t seq_len = xs[0].count;  // the longest phase
    const std::int64_t rows = s->out[0] * s->out[1];

    // Work items: bands of whole rows, or chunks of one row when a row is longer than an item.
    std::int64_t chunk_len = seq_len;
    if (s->out[2] > kPixelsPerItem) {
      std::int64_t span = 0;  // from the first column a pixel's taps read to the last
      for (const AxisSequence& seq : xs) {
        if (seq.taps.empty()) continue;
        std::int64_t lo = seq.taps.front().in_offset, hi = lo;
        for (const AxisTap& tap : seq.taps) lo = std::min(lo, tap.in_offset), hi = std::max(hi, tap.in_offset);
        span = std::max(span, hi - lo);
      }
      const std::int64_t pixels =
          std::max(kRowChunkPixels / s->parts, std::min(kMaxChunkPixels / s->parts, kChunkSpans * span));
      chunk_len = std::min(seq_len, round_up(pixels, 4 * s->kernels.lanes));
    } else {
      const std::int64_t pixels = s->out[0] > 1 ? pixels_3d : kPixelsPerItem;
      s->rows_per_item = std::clamp<std::int64_t>(pixels / s->out[2], 1, rows);
    }
    const std::int64_t per_band = p.batch * p.groups * ((seq_len + chunk_len - 1) / chunk_len);
    while (s->rows_per_item > 1 && per_band * ((rows + s->rows_per_item - 1) / s->rows_per_item) < kMinItems) {
      s->rows_per_item /= 2;
    }
    if (s->out[0] > 1) {  // 3D: square blocks of rows (see Band)
      const std::int64_t side = std::llround(std::sqrt(static_cast<double>(s->rows_per_item)));
      s->band_y = std::clamp<std::int64_t>(side, 1, s->out[1]);
      s->band_z = std::clamp<std::int64_t>(s->rows_per_item / s->band_y, 1, s->out[0]);
    } else {
      s->band_y = s->rows_per_item;
    }
    s->rows_per_item = s->band_z * s->band_y;
    // Winograd's tiles are vectors of groups of pixels, of every phase (PlanarGemmCall::winograd): groups of 4
    // unless groups of 2 cost less (group_cost; with 16 lanes, rows of 32 pixels per phase fill half a vector with
    // groups of 4).
    const std::int64_t run = std::min(chunk_len, seq_len);
    if (s->winograd) {
      const double four = group_cost(xs, run, 4, s->kernels.lanes), two = group_cost(xs, run, 2, s->kernels.lanes);
      s->group = group != 0 ? group : (four <= two ? 4 : 2);
      s->winograd_saving = group_cost(xs, run, 1, s->kernels.lanes) / (s->group == 4 ? four : two);
      s->winograd_step = dilated_x_step(s->axes[2]);
      // Along a dilation, whole blocks of n d pixels are computed, the last one partly past the row.
      if (s->winograd_step > 0) {
        s->winograd_saving *= static_cast<double>(seq_len) /
                              static_cast<double>(round_up(seq_len, s->group * s->winograd_step));
      }
    }
    const std::int64_t step = s->winograd_step;
    if (step > 0) chunk_len = round_up(chunk_len, s->group * step);  // chunks of whole blocks
    s->vectors = s->winograd ? choose_vectors(s->kernels, ceil_div(run, s->group), s->ocg, false)
                             : choose_vectors(s->kernels, run, s->ocg, s->parts == 1);
    while (step > 0 && step % (s->vectors * s->kernels.lanes) != 0) --s->vectors;  // tiles within a block
    s->mr = s->kernels.planar_mr[s->vectors];
    s->blocks = (s->ocg + s->mr - 1) / s->mr;

    // Each chunk's window of input columns: what the valid taps of its pixels read, in every sequence. With
    // padded_x, every tap of every pixel: the columns outside the input are zeros in the panel.
    s->padded_x = s->winograd || padding_x_pays(*s, chunk_len);
    const std::int64_t lanes = s->kernels.lanes;
    s->group_stride = step > 0 ? dilated_groups(*s, chunk_len) : round_up(ceil_div(chunk_len, s->group), lanes);
    for (std::size_t q = 0; s->winograd && q < xs.size(); ++q) {
      const AxisTap& a = xs[q].taps.front();
      const AxisTap& b = xs[q].taps.back();  // a, if the phase has one tap
      const bool a_first = a.in_offset <= b.in_offset;
      s->winograd_x[q] = {xs[q].in_first + std::min(a.in_offset, b.in_offset), static_cast<int>(xs[q].taps.size()),
                          a_first ? a.kernel_index : b.kernel_index, a_first ? b.kernel_index : a.kernel_index};
      s->x_taps[q] = s->winograd_x[q].taps;
      s->stream_offset[q + 1] = s->stream_offset[q] + s->streams(static_cast<int>(q));
    }
    std::int64_t widest = 1;
    for (std::int64_t j0 = 0; j0 < seq_len; j0 += chunk_len) {
      XChunk c{j0, std::min(seq_len, j0 + chunk_len), s->in[2], 0};
      if (s->winograd) {  // what winograd_rows reads for the chunk's groups (deinterleaved: whole vectors of them)
        const std::int64_t groups = round_up(ceil_div(c.j_end - j0, s->group), lanes);
        for (int q = 0; q < s->parts; ++q) {
          const std::int64_t first = j0 + s->winograd_x[static_cast<std::size_t>(q)].first;
          c.lo = std::min(c.lo, first);
          c.hi = std::max(c.hi, step > 0 ? first + dilated_groups(*s, c.j_end - j0) * s->group + step
                                         : first + s->group * (groups + 1));
        }
        widest = std::max(widest, c.hi - c.lo);
        s->chunks.push_back(c);
        continue;
      }
      for (const AxisSequence& seq : xs) {
        for (const AxisSegment& seg : seq.segments) {
          const std::int64_t jb = std::max(seg.j_begin, c.j_begin), je = std::min(seg.j_end, c.j_end);
          const int t0 = s->padded_x ? 0 : seg.tap_begin;
          const int t1 = s->padded_x ? static_cast<int>(seq.taps.size()) : seg.tap_end;
          for (int t = t0; jb < je && t < t1; ++t) {
            const std::int64_t offset = seq.in_first + seq.taps[static_cast<std::size_t>(t)].in_offset;
            c.lo = std::min(c.lo, offset + jb);
            c.hi = std::max(c.hi, offset + je);
          }
        }
      }
      if (c.lo >= c.hi) c.lo = c.hi = 0;  // no taps: bias only
      widest = std::max(widest, c.hi - c.lo);
      s->chunks.push_back(c);
    }
    // Panel rows a whole number of vectors apart, and an odd number of cache lines (64 bytes) so that consecutive
    // channels do not share cache sets.
    const std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(float));
    s->panel_stride = round_up(widest, line);
    if ((s->panel_stride / line) % 2 == 0) s->panel_stride += line;
    s->phase_stride = round_up(chunk_len, s->kernels.lanes);

    // The most input rows one band reads, for the panel's size.
    std::vector<std::int64_t> keys;
    std::vector<TapHit> z_taps(static_cast<std::size_t>(s->kernel[0])), y_taps(static_cast<std::size_t>(s->kernel[1]));
    for (std::int64_t b = 0; b < band_count(*s); ++b) {
      keys.clear();
      const Band band = band_at(*s, b);
      for (std::int64_t i = 0; i < band.rows(); ++i) {
        const std::int64_t r = band.row(i);
        const int nz = s->axes[0].taps_at(r / s->out[1], z_taps.data());
        const int ny = s->axes[1].taps_at(r % s->out[1], y_taps.data());
        for (int zi = 0; zi < nz; ++zi)
          for (int yi = 0; yi < ny; ++yi) keys.push_back(z_taps[zi].in_index * s->in[1] + y_taps[yi].in_index);
      }
      std::sort(keys.begin(), keys.end());
      s->max_slots = std::max<std::int64_t>(
          s->max_slots, std::unique(keys.begin(), keys.end()) - keys.begin());
    }
    if (s->winograd) {
      s->transformed_stride = round_up(s->stream_offset[static_cast<std::size_t>(s->parts)] * s->group_stride, line);
      if ((s->transformed_stride / line) % 2 == 0) s->transformed_stride += line;
    }
    // What the tiles read while every block of output channels passes over it: the panel, or Winograd's transformed
    // panel (its panel, where there is one, is read once by winograd_rows right after it is written).
    const std::int64_t read_stride = s->winograd ? s->transformed_stride : s->panel_stride;
    const std::int64_t row_bytes = s->max_slots * read_stride * static_cast<std::int64_t>(sizeof(float));
    s->k_chunk = std::clamp<std::int64_t>(kPanelBytes / row_bytes, kMinChannels, s->icg);
    const std::int64_t passes = (s->icg + s->k_chunk - 1) / s->k_chunk;
    s->k_chunk = (s->icg + passes - 1) / passes;  // equal passes
    s->stream = static_cast<double>(element_count(dst_shape(p), "dst")) * sizeof(float) > kStreamBytes;
    s->fused_phases = (s->parts > 1 || s->winograd) && s->padded_x && s->k_chunk == s->icg;
    s->packed_taps =
        s->winograd ? s->kernel[0] * s->kernel[1] * s->stream_offset[static_cast<std::size_t>(s->parts)] : s->taps;
    if (s->out[0] > 1 && pixels_3d > kPixelsPerItem && s->k_chunk < s->icg) {
      auto smaller = make_state(p, group, kPixelsPerItem);
      if (smaller->k_chunk > s->k_chunk) return smaller;
    }
    if (s->winograd && group == 0 && !s->fused_phases) {
      auto other = make_state(p, s->group == 4 ? 2 : 4, pixels_3d);
      if (other->fused_phases) return other;
    }
    return s;
  }

 public:

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    auto packed = std::make_shared<Packed>();
    const auto* w = static_cast<const float*>(weights);
    packed->weights.assign(static_cast<std::size_t>(p.groups * s.blocks * s.packed_taps * s.icg * s.mr), 0.0f);
    if (s.winograd) {
      pack_winograd_weights(p, s, w, packed->weights);
      packed->bytes = packed->weights.size() * sizeof(float);
      return packed;
    }
    for (std::int64_t g = 0; g < p.groups; ++g)
      for (std::int64_t n = 0; n < s.ocg; ++n)
        for (std::int64_t t = 0; t < s.taps; ++t)
          for (std::int64_t q = 0; q < s.icg; ++q) {
            const std::int64_t at = (((g * s.blocks + n / s.mr) * s.taps + t) * s.icg + q) * s.mr + n % s.mr;
            packed->weights[static_cast<std::size_t>(at)] = w[weight_index(p, g, q, n, t, s.taps)];
          }
    packed->bytes = packed->weights.size() * sizeof(float);
    return packed;
  }

  // Winograd's transformed weights (WinogradX): per (z, y) tap and phase G (wA, wB) (G w for one tap), as taps
  // kernel_row * stream_offset[parts] + stream_offset[phase] + s.
  static void pack_winograd_weights(const Problem& p, const State& s, const float* w, util::AlignedFloats& out) {
    const std::int64_t rows = s.kernel[0] * s.kernel[1];
    const int streams = s.stream_offset[static_cast<std::size_t>(s.parts)];
    for (std::int64_t g = 0; g < p.groups; ++g)
      for (std::int64_t n = 0; n < s.ocg; ++n)
        for (std::int64_t row = 0; row < rows; ++row)
          for (int part = 0; part < s.parts; ++part) {
            const WinogradX& x = s.winograd_x[static_cast<std::size_t>(part)];
            for (std::int64_t q = 0; q < s.icg; ++q) {
              const float lower = w[weight_index(p, g, q, n, row * s.kernel[2] + x.lower, s.taps)];
              const float upper = w[weight_index(p, g, q, n, row * s.kernel[2] + x.upper, s.taps)];
              // F(4, 2) with the factors that winograd_rows' rows were scaled by divided out; F(2, 2); F(n, 1).
              const float four[] = {lower / 2, (lower + upper) / 2, (lower - upper) / 6, (lower + 2 * upper) / 6,
                                    upper};
              const float two[] = {lower, lower + upper, upper};
              for (int k = 0; k < s.streams(part); ++k) {
                const std::int64_t tap = row * streams + s.stream_offset[static_cast<std::size_t>(part)] + k;
                const std::int64_t block = g * s.blocks + n / s.mr;
                out[static_cast<std::size_t>(((block * s.packed_taps + tap) * s.icg + q) * s.mr + n % s.mr)] =
                    x.taps == 1 ? lower : (s.group == 4 ? four[k] : two[k]);
              }
            }
          }
  }

  // Per thread: the panel (and Winograd's transformed one), the phase rows, the tap lists (this item's and the
  // next one's) and the panel's slots.
  std::size_t forward_workspace_bytes(const Problem&, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    const std::int64_t floats = panel_floats(s) + transformed_floats(s) + phase_floats(s);
    const auto word = static_cast<std::int64_t>(sizeof(std::int64_t));
    const std::int64_t row_taps = s.rows_per_item * (s.kernel[0] * s.kernel[1] * 2 + 1) * word + s.max_slots * word;
    const std::int64_t others = s.packed_taps * 2 * static_cast<std::int64_t>(sizeof(const float*)) +
                                (s.parts + 1) * static_cast<std::int64_t>(sizeof(int)) + 2 * row_taps +
                                (s.kernel[0] + s.kernel[1]) * static_cast<std::int64_t>(sizeof(TapHit)) +
                                s.max_slots * static_cast<std::int64_t>(sizeof(const float*));
    return static_cast<std::size_t>(threads * (floats * static_cast<std::int64_t>(sizeof(float)) + others));
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t items = item_count(p, s);
    // Items are handed out one at a time, as with schedule(dynamic, 1), but each thread claims its next item when it
    // starts one, so that it can fetch the next item's input rows while it computes (AheadRows). Which thread runs an
    // item changes nothing in its outputs.
    std::atomic<std::int64_t> next_item{0};
#pragma omp parallel
    {
      thread_local Scratch scratch;
      std::int64_t item = next_item.fetch_add(1, std::memory_order_relaxed);
      if (item < items) list_row_taps(s, item_at(p, s, item).band, scratch, scratch.taps);
      while (item < items) {
        const std::int64_t following = next_item.fetch_add(1, std::memory_order_relaxed);
        const Item it = item_at(p, s, item);
        if (following < items) {
          const Item next = item_at(p, s, following);
          list_row_taps(s, next.band, scratch, scratch.ahead);
          run_item(p, s, packed, args, it, &next, scratch);
          std::swap(scratch.taps, scratch.ahead);  // the next item's, listed once
        } else {
          run_item(p, s, packed, args, it, nullptr, scratch);
        }
        if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
        item = following;
      }
    }
  }

 private:
  struct Item {
    std::int64_t n = 0, g = 0;
    Band band;
    const XChunk* chunk = nullptr;
  };

  static std::int64_t item_count(const Problem& p, const State& s) {
    return p.batch * p.groups * band_count(s) * static_cast<std::int64_t>(s.chunks.size());
  }
  static Item item_at(const Problem& p, const State& s, std::int64_t item) {
    const auto chunks = static_cast<std::int64_t>(s.chunks.size());
    const std::int64_t bands = band_count(s);
    Item it;
    it.chunk = &s.chunks[static_cast<std::size_t>(item % chunks)];
    it.band = band_at(s, item / chunks % bands);
    it.g = item / (chunks * bands) % p.groups;
    it.n = item / (chunks * bands * p.groups);
    return it;
  }

  // One valid (z, y) tap of an output row: which panel row it reads, which kernel row it is.
  struct RowTap {
    std::int64_t slot, kernel_row;
  };

  // The input rows an item's band reads (its panel's slots) and, per output row, its valid (z, y) taps.
  struct RowTaps {
    std::vector<std::int64_t> slot_keys;  // z * in_y + y of each slot
    std::vector<RowTap> row_taps;
    std::vector<std::int64_t> row_tap_begin;  // per row of the band, into row_taps (and one past the last)
  };

  struct Scratch {
    util::AlignedFloats panel, transformed, phases;
    RowTaps taps, ahead;  // this item's, and the next one's (AheadRows)
    std::vector<const float*> slot_rows;  // where each slot's first panel row starts in the source
    std::vector<TapHit> z_taps, y_taps;
    std::vector<const float*> a, b, part;
    std::vector<int> part_taps;
    std::vector<std::int64_t> group_first;  // per phase: column of the window where winograd_rows starts
  };

  // The kernels read up to a tile's width past a run's last pixel, and one row more: GCC's code for the scalar
  // target loads the next channel's row a turn ahead of the loop's test (an unused movhps; valgrind showed it reading
  // past the panel of a 33-channel layer, and in one CI run the page after it was unmapped: a segfault).
  static std::int64_t panel_floats(const State& s) {
    return (s.max_slots * s.k_chunk + 1) * s.panel_stride + kMaxVectorsPerTile * s.kernels.lanes;
  }
  // Winograd's transformed panel: slot-major, then channel, then the transformed rows of each phase
  // (State::stream_offset). The tile reads it through the loop that reads the panel, so it keeps the same spare row
  // (valgrind found no read past it on the SCALAR target, where the panel's was seen: kept as the panel's rule).
  static std::int64_t transformed_floats(const State& s) {
    return s.winograd ? (s.max_slots * s.k_chunk + 1) * s.transformed_stride + kMaxVectorsPerTile * s.kernels.lanes
                      : 0;
  }
  static std::int64_t phase_floats(const State& s) {
    return s.parts > 1 && !s.fused_phases ? s.ocg * s.rows_per_item * s.parts * s.phase_stride : 0;
  }

  // The input rows each output row of a band reads.
  static void list_row_taps(const State& s, const Band& band, Scratch& sc, RowTaps& out) {
    sc.z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
    sc.y_taps.resize(static_cast<std::size_t>(s.kernel[1]));
    out.slot_keys.clear(), out.row_taps.clear(), out.row_tap_begin.clear();
    for (std::int64_t i = 0; i < band.rows(); ++i) {
      const std::int64_t r = band.row(i);
      out.row_tap_begin.push_back(static_cast<std::int64_t>(out.row_taps.size()));
      const int nz = s.axes[0].taps_at(r / s.out[1], sc.z_taps.data());
      const int ny = s.axes[1].taps_at(r % s.out[1], sc.y_taps.data());
      for (int zi = 0; zi < nz; ++zi)
        for (int yi = 0; yi < ny; ++yi) {
          const std::int64_t key = sc.z_taps[zi].in_index * s.in[1] + sc.y_taps[yi].in_index;
          auto found = std::find(out.slot_keys.begin(), out.slot_keys.end(), key);
          if (found == out.slot_keys.end()) found = out.slot_keys.insert(found, key);
          out.row_taps.push_back({found - out.slot_keys.begin(),
                                  sc.z_taps[zi].kernel_index * s.kernel[1] + sc.y_taps[yi].kernel_index});
        }
    }
    out.row_tap_begin.push_back(static_cast<std::int64_t>(out.row_taps.size()));
  }

  // The columns of a chunk's window that lie inside the input: `inside` of them after `zeros_before` (padded_x only
  // has columns outside, which are zeros in the panel).
  struct Window {
    std::int64_t width = 0, zeros_before = 0, inside = 0;
  };
  static Window window_of(const State& s, const XChunk& chunk) {
    Window w;
    w.width = chunk.hi - chunk.lo;
    w.zeros_before = std::clamp<std::int64_t>(-chunk.lo, 0, w.width);
    w.inside = std::max<std::int64_t>(0, std::min(chunk.hi, s.in[2]) - chunk.lo - w.zeros_before);
    return w;
  }

  // The source rows of an item's first pass over its input channels, fetched into L2 a share at a time while the
  // item before it computes (upto). The panel copy had waited on each of them: they are planes apart, beyond what
  // the hardware prefetchers follow, and the copy's own prefetches, a few rows ahead, hid little of the time to
  // memory (PanelRows was 10% of 3D U-Net's up-sampling channels_first, 7% of U-Net up4's, 1 thread).
  class AheadRows {
   public:
    AheadRows() = default;
    AheadRows(const State& s, const Problem& p, const float* src_all, const Item& it, const RowTaps& taps) {
      const Window w = window_of(s, *it.chunk);
      if (w.inside == 0) return;
      in_plane_ = s.in[0] * s.in[1] * s.in[2], in_x_ = s.in[2];
      src_ = src_all + (it.n * p.in_channels + it.g * s.icg) * in_plane_ + it.chunk->lo + w.zeros_before;
      keys_ = taps.slot_keys.data();
      channels_ = std::min(s.k_chunk, s.icg);
      row_bytes_ = w.inside * static_cast<std::int64_t>(sizeof(float));
      rows_ = static_cast<std::int64_t>(taps.slot_keys.size()) * channels_;
      lines_ = std::min(rows_ * ((row_bytes_ + kLine - 1) / kLine), kMaxAheadBytes / kLine);
    }
    // Fetches the share done / total of the lines.
    void upto(std::int64_t done, std::int64_t total) {
      const std::int64_t target = lines_ * done / total;
      for (; issued_ < target && row_ < rows_; ++issued_) {
        if (at_ == nullptr) {
          const char* row = reinterpret_cast<const char*>(src_ + row_ % channels_ * in_plane_ +
                                                          keys_[row_ / channels_] * in_x_);
          at_ = row - reinterpret_cast<std::uintptr_t>(row) % kLine, end_ = row + row_bytes_;
        }
        __builtin_prefetch(at_, 0, 2);  // 2: into L2, not L1
        at_ += kLine;
        if (at_ >= end_) ++row_, at_ = nullptr;
      }
    }

   private:
    static constexpr std::int64_t kLine = 64;
    // At most this much: with the item's own panel and weights, within L2 (512 KiB on older cores).
    static constexpr std::int64_t kMaxAheadBytes = 256 * 1024;
    const float* src_ = nullptr;
    const std::int64_t* keys_ = nullptr;
    std::int64_t in_plane_ = 0, in_x_ = 0, channels_ = 1, row_bytes_ = 0, rows_ = 0, lines_ = 0;
    std::int64_t row_ = 0, issued_ = 0;  // the next row, and the lines fetched so far
    const char *at_ = nullptr, *end_ = nullptr;  // the next line of row_ and its end (null: not started)
  };

  // Every phase of one output row in one call (fused_phases): each phase over the chunk with all its taps, stored
  // interleaved into the destination row (dst_row: column 0).
  static void run_fused_row(const State& s, Scratch& sc, PlanarGemmCall& call, const float* b_group,
                            const XChunk& chunk, std::int64_t kc, std::int64_t tb, std::int64_t te, float* dst_row) {
    int t = 0;
    for (int part = 0; part < s.parts; ++part) {
      sc.part_taps[static_cast<std::size_t>(part)] = t;
      const AxisSequence& seq = s.axes[2].sequences[static_cast<std::size_t>(part)];
      for (std::int64_t rt = tb; rt < te; ++rt) {
        const RowTap& row_tap = sc.taps.row_taps[static_cast<std::size_t>(rt)];
        const float* panel_row = sc.panel.data() + row_tap.slot * kc * s.panel_stride;
        for (const AxisTap& tap : seq.taps) {
          sc.a[static_cast<std::size_t>(t)] = panel_row + seq.in_first + chunk.j_begin + tap.in_offset - chunk.lo;
          sc.b[static_cast<std::size_t>(t)] =
              b_group + (row_tap.kernel_row * s.kernel[2] + tap.kernel_index) * s.icg * s.mr;
          ++t;
        }
      }
    }
    sc.part_taps[static_cast<std::size_t>(s.parts)] = t;
    PlanarGemmCall fused = call;
    fused.parts = s.parts;
    fused.part_taps = sc.part_taps.data();
    fused.shared_parts = s.parts == 2 && t == 2 * sc.part_taps[1] &&
                         std::equal(sc.a.begin(), sc.a.begin() + sc.part_taps[1], sc.a.begin() + sc.part_taps[1]);
    fused.ntaps = t;
    fused.c = dst_row + chunk.j_begin * s.parts;
    fused.count = std::min(s.out[2], chunk.j_end * s.parts) - chunk.j_begin * s.parts;
    s.kernels.planar_gemm[s.vectors](fused);
  }

  // Winograd's row (WinogradX): per phase, the transformed rows of each (z, y) tap, a tap each.
  static void run_winograd_row(const State& s, Scratch& sc, const PlanarGemmCall& call, const float* b_group,
                               const XChunk& chunk, std::int64_t kc, std::int64_t tb, std::int64_t te, float* dst_row) {
    int t = 0;
    for (int part = 0; part < s.parts; ++part) {
      sc.part_taps[static_cast<std::size_t>(part)] = t;
      for (std::int64_t rt = tb; rt < te; ++rt) {
        const RowTap& row_tap = sc.taps.row_taps[static_cast<std::size_t>(rt)];
        const auto first_stream = s.stream_offset[static_cast<std::size_t>(part)];
        const float* rows =
            sc.transformed.data() + row_tap.slot * kc * s.transformed_stride + first_stream * s.group_stride;
        for (int k = 0; k < s.streams(part); ++k, ++t) {
          sc.a[static_cast<std::size_t>(t)] = rows + k * s.group_stride;
          sc.b[static_cast<std::size_t>(t)] =
              b_group + (row_tap.kernel_row * s.stream_offset[static_cast<std::size_t>(s.parts)] + first_stream + k) *
                            s.icg * s.mr;
        }
      }
    }
    sc.part_taps[static_cast<std::size_t>(s.parts)] = t;
    PlanarGemmCall groups = call;
    groups.parts = s.parts;
    groups.part_taps = sc.part_taps.data();
    groups.ntaps = t;
    groups.winograd = s.group;
    groups.part_x_taps = s.x_taps.data();
    groups.winograd_step = s.winograd_step;
    groups.c = dst_row + chunk.j_begin * s.parts;
    groups.count = std::min(s.out[2], chunk.j_end * s.parts) - chunk.j_begin * s.parts;
    s.kernels.planar_gemm[s.vectors](groups);
  }

  // Winograd's transformed rows of the chunk's window (WinogradX), straight from the source rows (sc.slot_rows)
  // where the window lies inside the input, else from a panel with its zeros: copying every window into the panel
  // first had taken 7% of HiFi-GAN up3's time (1 thread), over the 10% of the copy itself.
  static void make_transformed_panel(const State& s, Scratch& sc, const XChunk& chunk, std::int64_t slots,
                                     std::int64_t kc, std::int64_t in_plane, std::int64_t zeros_before,
                                     std::int64_t inside, std::int64_t window) {
    for (int part = 0; part < s.parts; ++part) {
      sc.group_first[static_cast<std::size_t>(part)] =
          chunk.j_begin + s.winograd_x[static_cast<std::size_t>(part)].first - chunk.lo;
    }
    const std::int64_t pixels = chunk.j_end - chunk.j_begin;
    const std::int64_t groups = s.winograd_step > 0 ? dilated_groups(s, pixels) : ceil_div(pixels, s.group);
    if (zeros_before == 0 && inside == window) {
      for (std::int64_t slot = 0; slot < slots; ++slot) {
        s.kernels.winograd_rows(sc.slot_rows[static_cast<std::size_t>(slot)], in_plane, kc, sc.group_first.data(),
                                s.x_taps.data(), s.parts, s.group, groups,
                                sc.transformed.data() + slot * kc * s.transformed_stride, s.transformed_stride,
                                s.group_stride, s.winograd_step);
      }
      return;
    }
    s.kernels.panel_rows(sc.slot_rows.data(), slots, in_plane, sc.panel.data(), s.panel_stride, kc, zeros_before,
                         inside, window);
    s.kernels.winograd_rows(sc.panel.data(), s.panel_stride, slots * kc, sc.group_first.data(), s.x_taps.data(),
                            s.parts, s.group, groups, sc.transformed.data(), s.transformed_stride, s.group_stride,
                            s.winograd_step);
  }

  // One work item, whose row taps sc.taps holds (and sc.ahead those of `following`, if any: see forward).
  void run_item(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args, const Item& it,
                const Item* following, Scratch& sc) const {
    const XChunk& chunk = *it.chunk;
    AheadRows ahead;
    if (following != nullptr) ahead = AheadRows(s, p, static_cast<const float*>(args.src), *following, sc.ahead);
    sc.panel.resize(static_cast<std::size_t>(panel_floats(s)));
    sc.transformed.resize(static_cast<std::size_t>(transformed_floats(s)));
    sc.phases.resize(static_cast<std::size_t>(phase_floats(s)));
    sc.a.resize(static_cast<std::size_t>(s.packed_taps));
    sc.b.resize(static_cast<std::size_t>(s.packed_taps));
    sc.group_first.resize(static_cast<std::size_t>(s.parts));
    sc.part_taps.resize(static_cast<std::size_t>(s.parts + 1));
    const std::int64_t in_plane = s.in[0] * s.in[1] * s.in[2], out_plane = s.out[0] * s.out[1] * s.out[2];
    const float* src = static_cast<const float*>(args.src) + (it.n * p.in_channels + it.g * s.icg) * in_plane;
    float* dst = static_cast<float*>(args.dst) + (it.n * p.out_channels + it.g * s.ocg) * out_plane;
    const float* bias = args.bias != nullptr ? static_cast<const float*>(args.bias) + it.g * s.ocg : nullptr;
    const bool phased = s.parts > 1;
    const std::int64_t band_rows = it.band.rows();
    const Window w = window_of(s, chunk);
    const std::int64_t window = w.width, zeros_before = w.zeros_before, inside = w.inside;
    const auto slots = static_cast<std::int64_t>(sc.taps.slot_keys.size());
    sc.slot_rows.resize(sc.taps.slot_keys.size());
    const std::int64_t passes = ceil_div(s.icg, s.k_chunk);

    PlanarGemmCall call;
    call.a = sc.a.data();
    call.b = sc.b.data();
    call.a_channel_stride = s.winograd ? s.transformed_stride : s.panel_stride;
    call.b_stride = s.mr;
    call.c_channel_stride = phased && !s.fused_phases ? s.rows_per_item * s.parts * s.phase_stride : out_plane;
    for (std::int64_t c0 = 0; c0 < s.icg; c0 += s.k_chunk) {
      const std::int64_t kc = std::min(s.k_chunk, s.icg - c0);
      const bool first = c0 == 0;
      // The panel: slot-major, then channel, then the chunk's window of columns.
      for (std::int64_t slot = 0; slot < slots; ++slot) {
        sc.slot_rows[static_cast<std::size_t>(slot)] = src + c0 * in_plane +
                                                       sc.taps.slot_keys[static_cast<std::size_t>(slot)] * s.in[2] +
                                                       chunk.lo + zeros_before;
      }
      if (s.winograd) {
        make_transformed_panel(s, sc, chunk, slots, kc, in_plane, zeros_before, inside, window);
      } else {
        s.kernels.panel_rows(sc.slot_rows.data(), slots, in_plane, sc.panel.data(), s.panel_stride, kc,
                             zeros_before, inside, window);
      }
      call.k = kc;
      call.accumulate = !first;
      // Streamed only where stored once: one pass, straight into the destination.
      call.stream = s.stream && (!phased || s.fused_phases) && kc == s.icg;
      // One call per row, phase and run computes every block of output channels, a tile of pixels at a time (see
      // PlanarGemm in kernels.cpp).
      const float* b_group = packed.weights.data() + (it.g * s.blocks * s.packed_taps * s.icg + c0) * s.mr;
      call.blocks = static_cast<int>(s.blocks);
      call.b_block_stride = s.packed_taps * s.icg * s.mr;
      call.m = static_cast<int>(s.ocg - (s.blocks - 1) * s.mr);
      call.init = first ? bias : nullptr;
      for (std::int64_t r = 0; r < band_rows; ++r) {
        ahead.upto(c0 / s.k_chunk * band_rows + r, passes * band_rows);
        const std::int64_t row = it.band.row(r);
        const std::int64_t tb = sc.taps.row_tap_begin[static_cast<std::size_t>(r)];
        const std::int64_t te = sc.taps.row_tap_begin[static_cast<std::size_t>(r + 1)];
        if (s.winograd) {
          run_winograd_row(s, sc, call, b_group, chunk, kc, tb, te, dst + row * s.out[2]);
          continue;
        }
        if (s.fused_phases) {
          run_fused_row(s, sc, call, b_group, chunk, kc, tb, te, dst + row * s.out[2]);
          continue;
        }
        for (int part = 0; part < s.parts; ++part) {
          const AxisSequence& seq = s.axes[2].sequences[static_cast<std::size_t>(part)];
          // Phase rows start at the chunk's first pixel; destination rows at column 0.
          float* c_row = phased ? sc.phases.data() + (r * s.parts + part) * s.phase_stride : dst + row * s.out[2];
          // One run per segment, or with padded_x one run over the chunk with every tap.
          const AxisSegment whole{0, seq.count, 0, static_cast<int>(seq.taps.size())};
          const std::span<const AxisSegment> runs =
              s.padded_x ? std::span<const AxisSegment>(&whole, 1) : std::span<const AxisSegment>(seq.segments);
          for (const AxisSegment& seg : runs) {
            const std::int64_t jb = std::max(seg.j_begin, chunk.j_begin), je = std::min(seg.j_end, chunk.j_end);
            if (jb >= je) continue;
            int t = 0;
            for (std::int64_t rt = tb; rt < te; ++rt) {
              const RowTap& row_tap = sc.taps.row_taps[static_cast<std::size_t>(rt)];
              const float* panel_row = sc.panel.data() + row_tap.slot * kc * s.panel_stride;
              for (int xt = seg.tap_begin; xt < seg.tap_end; ++xt, ++t) {
                const AxisTap& tap = seq.taps[static_cast<std::size_t>(xt)];
                sc.a[static_cast<std::size_t>(t)] = panel_row + seq.in_first + jb + tap.in_offset - chunk.lo;
                sc.b[static_cast<std::size_t>(t)] =
                    b_group + (row_tap.kernel_row * s.kernel[2] + tap.kernel_index) * s.icg * s.mr;
              }
            }
            if (t == 0 && !first) continue;  // no taps: the first pass stored the bias
            call.ntaps = t;
            call.c = c_row + (phased ? jb - chunk.j_begin : seq.out_first + jb * seq.out_step);
            call.count = je - jb;
            s.kernels.planar_gemm[s.vectors](call);
          }
        }
      }
    }
    if (!phased || s.fused_phases) return;
    const std::int64_t x0 = chunk.j_begin * s.parts;
    const std::int64_t count = std::min(s.out[2], chunk.j_end * s.parts) - x0;
    sc.part.resize(static_cast<std::size_t>(s.parts));
    for (std::int64_t co = 0; co < s.ocg; ++co)
      for (std::int64_t r = 0; r < band_rows; ++r) {
        for (int part = 0; part < s.parts; ++part) {
          sc.part[static_cast<std::size_t>(part)] =
              sc.phases.data() + ((co * s.rows_per_item + r) * s.parts + part) * s.phase_stride;
        }
        s.kernels.interleave(sc.part.data(), s.parts, dst + co * out_plane + it.band.row(r) * s.out[2] + x0,
                             count, s.stream);
      }
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_planar_gemm_engine() {
  return std::make_shared<PlanarGemm>(false);
}

std::shared_ptr<const detail::Implementation> make_planar_winograd_engine() {
  return std::make_shared<PlanarGemm>(true);
}

}  // namespace tdconv::engine
