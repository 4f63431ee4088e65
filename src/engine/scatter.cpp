// Transposed convolution with few output channels (FSRCNN's 56 -> 1, DCGAN's 64 -> 3): one dense GEMM per input row,
//   P[ix][tap, oc] = sum over input channels of src[iy][ix][ic] * w[tap][ic][oc],
// whose N = taps x C_out fills the SIMD lanes that C_out alone would leave empty, then a scatter-add of P into the
// output (each input element's scaled kernel, as in the definition). Output rows are split into bands owned by one
// thread; each band adds the rows of P that reach it in ascending input order, so results do not depend on the
// thread count. Scratch is one tile of P per thread.
//
// channels_first sources take the GEMM turned around (planar_gemm's tile: pixels as lanes), P^T[tap, oc][ix], on
// the input row's channel rows where they are (or a copy where they end inside a vector), so that nothing is
// transposed; each row of P^T is then one tap's contribution to consecutive outputs sx apart, added with whole
// vectors into per-phase rows (output x = j * sx + q goes to phase q, element j) that are interleaved into the
// destination once no later input row reaches them. The channels_last GEMM on a transposed copy of each input row,
// then a scalar scatter-add, had spent a third of FSRCNN's time outside the GEMM; this way 1.35-1.45x faster (Zen 1,
// 1 thread). Rows whose phase rows would not stay in L2 still take that way.
#include "engine/scatter.hpp"

#include <algorithm>

#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

constexpr std::int64_t kMaxOutputChannels = 4;

// channels_first: input pixels per planar GEMM call, and the most floats of phase rows per thread (2 MiB) ...
constexpr std::int64_t kPlanarChunk = 512;
constexpr std::int64_t kMaxPhaseFloats = 512 * 1024;
// ... and, where the planar GEMM reads a channels_first source in place (reads_source), how many channels ahead its
// tiles prefetch their pixel vectors: DCGAN's 32 x 32 planes are 4 KiB apart, so all 64 channel rows of a tile share
// a few L1 sets and every block of columns reloaded them from L2 (a third of the GEMM's samples on the loads).
// Timed in turns against no prefetch (Zen 4): DCGAN's last layer 1.06-1.10x as fast at 1 thread and 1.10x at 2
// (4 channels ahead 1.04-1.07x, 12 and 16 about as 8), FSRCNN 1.03-1.04x.
constexpr std::int64_t kSourcePrefetchChannels = 8;
// ... and of the planar GEMM's products, a row per tap and output channel: a 1D kernel of 2806 taps had taken 17 MiB
// per thread (its chunk of 512 pixels).
constexpr std::int64_t kMaxPlanarProductFloats = 512 * 1024;

struct State final : PlanState {
  KernelSet kernels;
  int vectors = 1, rows = 1;
  std::int64_t nr = 1, blocks = 1, columns = 1;  // columns = taps x C_out
  std::int64_t band = 1;                         // output rows per work item
  Dims out{1, 1, 1};
  // channels_first (planar): tiles of `rows` columns x `vectors` vectors of pixels, `blocks` of them; phase rows
  // hold outputs j in [j_lo, j_lo + phase_len) of each phase, for ring_rows output rows (run_band_planar).
  bool planar = false;
  std::int64_t j_lo = 0, phase_len = 0, ring_rows = 1;
  // Input rows side by side in one planar GEMM call: rows narrower than a tile (DCGAN's 32 pixels on AVX-512's
  // 64-pixel tiles) had left its lanes half idle. With the scatter-add in whole vectors (KernelSet::add_row; the
  // compiler's loop had used SSE's, a sixth of the time), timed against both before in turns (Intel Xeon): DCGAN's
  // last layer channels_first 1.13x as fast at 1 thread and 1.10x at 2 (rows in pairs alone: 1.03-1.04x), FSRCNN
  // 1.09-1.12x in both layouts.
  std::int64_t row_group = 1;
};

struct Packed final : PackedData {
  // [block][input channel][nr columns], column = tap * C_out + oc; planar: [block][input channel][rows columns]
  util::AlignedFloats w;
};

// channels_first: the planar tile's rows are columns and its vectors pixels, so the columns pad its rows. Among
// tiles of at least 6 rows (fewer wait on their loads: planar_gemm.cpp, kMinReuseRows), the fewest loads per useful
// product as above: AVX2's 6 x 2, AVX-512's 6 x 4.
int planar_vectors(const KernelSet& k, std::int64_t columns) {
  int best = 0;
  std::int64_t best_loads = 0, best_products = 1;
  for (const std::int64_t min_rows : {6, 1}) {
    for (int v = 1; v <= kMaxVectorsPerTile; ++v) {
      const std::int64_t m = k.planar_mr[v];
      if (m < min_rows) continue;
      const std::int64_t loads = (m + v) * ((columns + m - 1) / m * m), products = m * v * columns;
      const std::int64_t lhs = loads * best_products, rhs = best_loads * products;
      if (best == 0 || lhs < rhs || (lhs == rhs && m > k.planar_mr[best])) {
        best = v, best_loads = loads, best_products = products;
      }
    }
    if (best != 0) return best;
  }
  return 1;
}

// Spatial sizes as (height, width): a 1D problem is one row.
std::int64_t height(const Problem& p, const Dims& v) { return p.spatial_dims == 2 ? v[0] : 1; }
std::int64_t width(const Problem& p, const Dims& v) { return v[p.spatial_dims - 1]; }
std::int64_t kernel_height(const Problem& p) { return p.spatial_dims == 2 ? p.kernel[0] : 1; }

// out[kx * tap_step + o * channel_step] += contribution[kx * OC + o] for taps [kx_lo, kx_hi).
template <int OC>
void add_taps(float* out, const float* contribution, std::int64_t kx_lo, std::int64_t kx_hi, std::int64_t tap_step,
              std::int64_t channel_step) {
  for (std::int64_t kx = kx_lo; kx < kx_hi; ++kx)
    for (int o = 0; o < OC; ++o) out[kx * tap_step + o * channel_step] += contribution[kx * OC + o];
}

// A 1D or 2D problem as rows of pixels (a 1D one is a single row): sizes, and along y and x the stride, dilation
// and leading padding.
struct BandGeometry {
  std::int64_t ih, iw, oh, ow, kh, kw, sy, sx, dy, dx, py, px;
  // The input rows whose scatter reaches output rows [oy0, oy1): iy * sy + ky * dy - py in range for some ky.
  std::int64_t first_input_row(std::int64_t oy0) const {
    return std::max<std::int64_t>(0, ceil_div(oy0 + py - (kh - 1) * dy, sy));
  }
  std::int64_t last_input_row(std::int64_t oy1) const {
    return std::min<std::int64_t>(ih - 1, floor_div(oy1 - 1 + py, sy));
  }
};

BandGeometry band_geometry(const Problem& p, const Dims& out) {
  const bool two_d = p.spatial_dims == 2;
  const int x = p.spatial_dims - 1;
  return {height(p, p.input), width(p, p.input), height(p, out), width(p, out), kernel_height(p), p.kernel[x],
          two_d ? p.stride[0] : 1, p.stride[x], two_d ? p.dilation[0] : 1, p.dilation[x],
          two_d ? p.pad_begin[0] : 0, p.pad_begin[x]};
}

// Where the taps of one input row land in an output row.
struct RowGeometry {
  std::int64_t kw, sx, dx, px, dst_unit, dst_channel;
};

// out_row[(ix * sx + kx * dx - px) * dst_unit + o * dst_channel] += tile_row[(ix - ix0) * row_stride + kx * OC + o]
// for the pixels ix in [begin, end), whose taps all land inside the row: tap by tap, pixels inner.
template <int OC>
void add_inner(float* out_row, const float* tile_row, std::int64_t ix0, std::int64_t begin, std::int64_t end,
               std::int64_t row_stride, const RowGeometry& g) {
  for (std::int64_t kx = 0; kx < g.kw; ++kx) {
    float* out = out_row + (begin * g.sx + kx * g.dx - g.px) * g.dst_unit;
    const float* contribution = tile_row + (begin - ix0) * row_stride + kx * OC;
    for (std::int64_t ix = begin; ix < end; ++ix, out += g.sx * g.dst_unit, contribution += row_stride)
      for (int o = 0; o < OC; ++o) out[o * g.dst_channel] += contribution[o];
  }
}

class Scatter final : public detail::ForwardOnlyImplementation {
 public:
  std::string name() const override { return "scatter_gemm"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.op != Op::conv_transpose) return "not a transposed convolution";
    if (p.dtype != DType::f32) return "not float32";
    if (p.spatial_dims > 2) return "3D";
    if (p.groups != 1) return "grouped";
    if (p.out_channels > kMaxOutputChannels) return "more than 4 output channels";
    if (p.kernel[0] * (p.spatial_dims == 2 ? p.kernel[1] : 1) * p.out_channels < 8) return "too few taps x channels";
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    const int lanes = s->kernels.lanes;
    s->out = output_size(p);
    const BandGeometry g = band_geometry(p, s->out);
    s->columns = g.kh * g.kw * p.out_channels;
    // Phase j of output x = j * sx + q: every x a tap reaches, and every x of the output row.
    const std::int64_t x_last = std::max((g.iw - 1) * g.sx + (g.kw - 1) * g.dx - g.px, g.ow - 1);
    s->j_lo = floor_div(std::min<std::int64_t>(-g.px, 0), g.sx);
    s->phase_len = ceil_div(floor_div(x_last, g.sx) - s->j_lo + 1, lanes) * lanes;
    // The output rows one input row reaches, each with oc x sx phase rows.
    s->ring_rows = (g.kh - 1) * g.dy + 1;
    const std::int64_t ring_floats = s->ring_rows * p.out_channels * g.sx * s->phase_len;
    // Rows so long (or kernels so tall) that the ring would not stay in L2 take the channels_last GEMM.
    // One output channel is laid out alike in both layouts: channels_last sources then take the planar GEMM too,
    // each chunk of a row transposed into the panel (FSRCNN: 1.42-1.43x as fast as the channels_last GEMM and its
    // scatter-add, 1 and 2 threads, in turns, Intel Xeon).
    s->planar = (p.layout == Layout::channels_first || p.out_channels == 1) && ring_floats <= kMaxPhaseFloats;
    if (s->planar) {
      s->vectors = planar_vectors(s->kernels, s->columns);
      s->rows = s->kernels.planar_mr[s->vectors];
      s->nr = s->rows;
      const std::int64_t tile_pixels = s->vectors * lanes;
      if (g.iw < tile_pixels) s->row_group = std::min(tile_pixels / g.iw, kPlanarChunk / g.iw);
      s->blocks = (s->columns + s->nr - 1) / s->nr;
      if (s->blocks * s->nr * planar_chunk_stride(p, *s) > kMaxPlanarProductFloats) {
        s->planar = false;
        s->row_group = 1;
      }
    }
    if (!s->planar) {
      s->vectors = fewest_loads_vectors(s->kernels, s->columns);
      s->rows = s->kernels.mr[s->vectors];
      s->nr = s->vectors * lanes;
    }
    s->blocks = (s->columns + s->nr - 1) / s->nr;
    // Whole images per item when the batch alone keeps threads busy; otherwise bands of rows (an input row that
    // reaches two bands is multiplied in both, so bands stay much taller than the kernel).
    s->band = p.batch >= 8 ? g.oh : std::max<std::int64_t>(std::min<std::int64_t>(g.oh, 32), g.oh / 8);
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t taps = s.columns / p.out_channels, ic = p.in_channels, oc = p.out_channels;
    auto packed = std::make_shared<Packed>();
    // Both layouts: per block of nr columns, per input channel, the block's nr columns (zero past the last).
    packed->w.assign(static_cast<std::size_t>(s.blocks * ic * s.nr), 0.0f);
    for (std::int64_t q = 0; q < ic; ++q)
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t o = 0; o < oc; ++o) {
          const float v = w[weight_index(p, 0, q, o, t, taps)];
          const std::int64_t column = t * oc + o;
          packed->w[static_cast<std::size_t>(((column / s.nr) * ic + q) * s.nr + column % s.nr)] = v;
        }
    packed->bytes = packed->w.size() * sizeof(float);
    return packed;
  }

  // Per thread: one tile of P and for channels_first one input row in channels_last (run_band), or a chunk's panel
  // of input rows, its P^T and the ring of phase rows (run_band_planar).
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    if (!s.planar) {
      const std::int64_t row = p.layout == Layout::channels_first ? width(p, p.input) * p.in_channels : 0;
      return static_cast<std::size_t>(threads * (s.rows * s.blocks * s.nr + row)) * sizeof(float);
    }
    const std::int64_t chunk = planar_chunk_stride(p, s);
    const std::int64_t floats = p.in_channels * chunk + s.blocks * s.nr * chunk +
                                s.ring_rows * p.out_channels * p.stride[p.spatial_dims - 1] * s.phase_len;
    return static_cast<std::size_t>(threads * floats) * sizeof(float);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const std::int64_t bands = (height(p, s.out) + s.band - 1) / s.band;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < p.batch * bands; ++item) {
      const auto& packed = static_cast<const Packed&>(*args.weights);
      if (s.planar) {
        run_band_planar(p, s, packed, args, item / bands, (item % bands) * s.band);
      } else {
        run_band(p, s, packed, args, item / bands, (item % bands) * s.band);
      }
    }
  }

 private:
  // Floats per row of a planar chunk's panel and P^T: the chunk's pixels and the tile's width past them, which the
  // planar GEMM may read (and compute on) beyond the last pixel, rounded to whole lines.
  static std::int64_t planar_chunk_stride(const Problem& p, const State& s) {
    const std::int64_t lanes = s.kernels.lanes;
    const std::int64_t chunk = std::min(kPlanarChunk, width(p, p.input) * s.row_group);
    // An odd number of cache lines, so that the rows of a tile's column spread over the L1 sets (as planar_gemm's
    // panel).
    constexpr std::int64_t line = 64 / sizeof(float);
    const std::int64_t lines = ceil_div(ceil_div(chunk, lanes) * lanes + kMaxVectorsPerTile * lanes, line);
    return (lines % 2 == 0 ? lines + 1 : lines) * line;
  }

  // Whether the planar GEMM reads `count` consecutive pixels of a channels_first source where they are, instead of
  // a copy: the GEMM reads whole vectors, so only when count fills them (nothing past the pixels is read). A group
  // of whole rows is consecutive in each channel's plane. The copy had waited on each channel's rows from L3 or
  // memory (a quarter of DCGAN's last layer's time); in the benchmark, in turns, that layer (channels_first) ran
  // 5.55-5.96 -> 3.93-4.23 ms at 1 thread and 2.21-2.37 -> 1.78-1.84 ms at 2.
  static bool reads_source(const Problem& p, const State& s, std::int64_t count) {
    return p.layout == Layout::channels_first && count % s.kernels.lanes == 0;
  }

  // channels_first: output rows [oy0, oy0 + band) of image n (see the top of this file). Input rows are taken in
  // ascending order; an output row's phase rows live in a ring of ring_rows from the first input row that reaches
  // it until the first that cannot, then are interleaved into the destination.
  void run_band_planar(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args,
                       std::int64_t n, std::int64_t oy0) const {
    const BandGeometry g = band_geometry(p, s.out);
    const std::int64_t oy1 = std::min(oy0 + s.band, g.oh);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const std::int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow;
    const float* src = static_cast<const float*>(args.src) + n * in_plane * ic;
    float* dst = static_cast<float*>(args.dst) + n * out_plane * oc;
    const auto* bias = static_cast<const float*>(args.bias);

    // Ring row of output row oy: (oy mod ring_rows), then output channel, then phase q: phase_len elements j - j_lo.
    thread_local util::AlignedFloats ring, panel, pt;
    thread_local std::vector<const float*> parts;
    const std::int64_t row_floats = oc * g.sx * s.phase_len;
    const std::int64_t stride = planar_chunk_stride(p, s);
    ring.resize(static_cast<std::size_t>(s.ring_rows * row_floats));
    panel.resize(static_cast<std::size_t>(ic * stride));
    pt.resize(static_cast<std::size_t>(s.blocks * s.nr * stride));
    parts.resize(static_cast<std::size_t>(g.sx));
    const auto ring_row = [&](std::int64_t oy) { return ring.data() + (oy % s.ring_rows) * row_floats; };
    std::int64_t next_open = oy0, next_done = oy0;  // first row not yet started from the bias, not yet written
    const auto open_rows_to = [&](std::int64_t end) {
      for (; next_open < end; ++next_open)
        for (std::int64_t o = 0; o < oc; ++o) {
          float* row = ring_row(next_open) + o * g.sx * s.phase_len;
          std::fill(row, row + g.sx * s.phase_len, bias ? bias[o] : 0.0f);
        }
    };
    const auto finish_rows_to = [&](std::int64_t end) {
      for (; next_done < end; ++next_done) {
        open_rows_to(next_done + 1);  // rows no input row reaches (strides past the kernel's reach): the bias
        for (std::int64_t o = 0; o < oc; ++o) {
          const float* first = ring_row(next_done) + o * g.sx * s.phase_len - s.j_lo;  // element j = 0
          for (std::int64_t q = 0; q < g.sx; ++q) parts[static_cast<std::size_t>(q)] = first + q * s.phase_len;
          float* out_row = dst + o * out_plane + next_done * g.ow;
          s.kernels.interleave(parts.data(), static_cast<int>(g.sx), out_row, g.ow, false);
        }
      }
    };

    const float* a_ptr = nullptr;  // and call.a_channel_stride: set by gemm_on
    const float* b_ptr = packed.w.data();
    PlanarGemmCall call;
    call.ntaps = 1;
    call.a = &a_ptr;
    call.k = ic;
    call.b = &b_ptr;
    call.b_stride = s.nr;
    call.blocks = static_cast<int>(s.blocks);
    call.b_block_stride = ic * s.nr;
    call.m = static_cast<int>(s.columns - (s.blocks - 1) * s.nr);
    call.c = pt.data();
    call.c_channel_stride = stride;

    // P^T of `count` consecutive pixels of the image from input row iy, column c0 on (a group of whole rows is
    // consecutive in either layout): the GEMM reads them where they are (reads_source), or from the panel, copied
    // (channels_first) or with each pixel's channels transposed into the panel's rows (channels_last).
    const auto gemm_on = [&](std::int64_t iy, std::int64_t c0, std::int64_t count) {
      const std::int64_t first = iy * g.iw + c0;
      if (reads_source(p, s, count)) {
        a_ptr = src + first, call.a_channel_stride = in_plane;
        call.prefetch_channels = kSourcePrefetchChannels;
      } else {
        if (p.layout == Layout::channels_first) {
          const float* from = src + first;
          s.kernels.panel_rows(&from, 1, in_plane, panel.data(), stride, ic, 0, count, count);
        } else {
          s.kernels.transpose(src + first * ic, ic, panel.data(), stride, ic, count, false);
        }
        a_ptr = panel.data(), call.a_channel_stride = stride, call.prefetch_channels = 0;
      }
      call.count = count;
      s.kernels.planar_gemm[s.vectors](call);
    };
    // Adds P^T's columns from `at` on, pixels [c0, c0 + len) of input row iy, into the ring.
    const auto scatter_row = [&](std::int64_t iy, std::int64_t c0, std::int64_t len, std::int64_t at) {
      const std::int64_t reach = iy * g.sy - g.py;
      for (std::int64_t ky = 0; ky < g.kh; ++ky) {
        const std::int64_t oy = reach + ky * g.dy;
        if (oy < oy0 || oy >= oy1) continue;
        for (std::int64_t kx = 0; kx < g.kw; ++kx) {
          // Pixel c0 + i reaches x = (c0 + i) * sx + kx * dx - px: phase q, element j0 + i.
          const std::int64_t x0 = c0 * g.sx + kx * g.dx - g.px;
          const std::int64_t q = x0 - floor_div(x0, g.sx) * g.sx, j0 = floor_div(x0, g.sx) - s.j_lo;
          for (std::int64_t o = 0; o < oc; ++o) {
            const float* contribution = pt.data() + ((ky * g.kw + kx) * oc + o) * stride + at;
            float* to = ring_row(oy) + (o * g.sx + q) * s.phase_len + j0;
            s.kernels.add_row(contribution, to, len);  // whole vectors (the compiler's loop used SSE's)
          }
        }
      }
    };
    // Before input row iy adds to the ring: the rows it and the later ones cannot reach (those before iy * sy - py)
    // are complete, and the rows it reaches are open.
    const auto ready_for = [&](std::int64_t iy) {
      const std::int64_t reach = iy * g.sy - g.py;
      finish_rows_to(std::clamp(reach, oy0, oy1));
      open_rows_to(std::clamp(reach + (g.kh - 1) * g.dy + 1, oy0, oy1));
    };

    const std::int64_t iy_first = g.first_input_row(oy0), iy_last = g.last_input_row(oy1);
    for (std::int64_t iy = iy_first; iy <= iy_last; iy += s.row_group) {
      if (s.row_group > 1) {  // whole short rows side by side in one GEMM
        const std::int64_t rows = std::min(s.row_group, iy_last + 1 - iy);
        gemm_on(iy, 0, rows * g.iw);
        for (std::int64_t r = 0; r < rows; ++r) {
          ready_for(iy + r);
          scatter_row(iy + r, 0, g.iw, r * g.iw);
        }
        continue;
      }
      ready_for(iy);
      for (std::int64_t c0 = 0; c0 < g.iw; c0 += kPlanarChunk) {
        const std::int64_t len = std::min(kPlanarChunk, g.iw - c0);
        gemm_on(iy, c0, len);
        scatter_row(iy, c0, len, 0);
      }
    }
    finish_rows_to(oy1);
  }

  void run_band(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args, std::int64_t n,
                std::int64_t oy0) const {
    const bool last = p.layout == Layout::channels_last;
    const BandGeometry g = band_geometry(p, s.out);
    const std::int64_t oy1 = std::min(oy0 + s.band, g.oh);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    // Element (channel c, pixel i) of an image is at c * channel + i * unit.
    const std::int64_t src_unit = last ? ic : 1, src_channel = last ? 1 : g.ih * g.iw;
    const std::int64_t dst_unit = last ? oc : 1, dst_channel = last ? 1 : g.oh * g.ow;
    const float* src = static_cast<const float*>(args.src) + n * g.ih * g.iw * ic;
    float* dst = static_cast<float*>(args.dst) + n * g.oh * g.ow * oc;
    const float* bias = static_cast<const float*>(args.bias);

    for (std::int64_t oy = oy0; oy < oy1; ++oy)
      for (std::int64_t ox = 0; ox < g.ow; ++ox)
        for (std::int64_t o = 0; o < oc; ++o) {
          dst[(oy * g.ow + ox) * dst_unit + o * dst_channel] = bias ? bias[o] : 0.0f;
        }

    thread_local util::AlignedFloats tile;  // P for one tile of pixels: rows x (blocks * nr)
    // channels_first: each input row copied into channels_last first, so that the GEMM reads a pixel's channels
    // as consecutive floats (a plane apart, every channel's line of a row fell in one cache set: fsrcnn_x3's
    // 256 x 256 planes, dcgan_g5's 32 x 32).
    thread_local util::AlignedFloats row_last;
    if (!last) row_last.resize(static_cast<std::size_t>(g.iw * ic));
    const std::int64_t row_stride = s.blocks * s.nr;
    tile.resize(static_cast<std::size_t>(s.rows * row_stride));
    const float* a_ptr = nullptr;
    const float* b_ptr = nullptr;
    TileCall call;
    call.a = &a_ptr;
    call.b = &b_ptr;
    call.ntaps = 1;
    call.a_pixel_stride = last ? src_unit : ic;
    call.a_channel_stride = last ? src_channel : 1;
    call.k = ic;
    call.c_pixel_stride = row_stride;

    // Input columns whose taps all land inside the output row (0 <= ix * sx + kx * dx - px < ow for every kx): no
    // clamping to compute for them (the divisions had taken 11% of FSRCNN's time).
    const std::int64_t ix_inner_begin = ceil_div(g.px, g.sx);
    const std::int64_t ix_inner_end = floor_div(g.ow - 1 + g.px - (g.kw - 1) * g.dx, g.sx) + 1;
    const RowGeometry geometry{g.kw, g.sx, g.dx, g.px, dst_unit, dst_channel};
    const std::int64_t iy_first = g.first_input_row(oy0), iy_last = g.last_input_row(oy1);
    // One tile of pixels at a time: its row of P is scattered while it is still in L1.
    for (std::int64_t iy = iy_first; iy <= iy_last; ++iy) {
      if (!last) s.kernels.transpose(src + iy * g.iw, src_channel, row_last.data(), ic, g.iw, ic, false);
      for (std::int64_t ix0 = 0; ix0 < g.iw; ix0 += s.rows) {
        const std::int64_t m = std::min<std::int64_t>(s.rows, g.iw - ix0);
        call.m = static_cast<int>(m);
        a_ptr = last ? src + (iy * g.iw + ix0) * src_unit : row_last.data() + ix0 * ic;
        // Every block is stored whole: the columns past the last tap are zero-weighted padding, which the tile
        // row has room for (a partial block had been stored element by element: 11% of FSRCNN's time).
        call.nr_valid = static_cast<int>(s.nr);
        for (std::int64_t block = 0; block < s.blocks; ++block) {
          b_ptr = packed.w.data() + block * ic * s.nr;
          call.c = tile.data() + block * s.nr;
          s.kernels.gemm[s.vectors](call);
        }
        for (std::int64_t ky = 0; ky < g.kh; ++ky) {
          const std::int64_t oy = iy * g.sy + ky * g.dy - g.py;
          if (oy < oy0 || oy >= oy1) continue;
          float* out_row = dst + oy * g.ow * dst_unit;
          const float* tile_row = tile.data() + ky * g.kw * oc;
          // The tile's inner pixels tap by tap: one tap's adds go to outputs sx apart, independent of each other.
          // Pixel by pixel, consecutive pixels' taps overlap in the output (kernel longer than the stride) and each
          // add waited for the store before it: DCGAN g5 1.1-1.3x slower, FSRCNN the same. (SIMD windows of a
          // pixel's kw x oc outputs, in groups of pixels whose windows do not overlap, were 1.2x slower on FSRCNN.)
          const std::int64_t inner_begin = std::clamp(ix_inner_begin, ix0, ix0 + m);
          const std::int64_t inner_end = std::clamp(ix_inner_end, inner_begin, ix0 + m);
          switch (oc) {  // a compile-time channel count lets the compiler unroll the adds
            case 1: add_inner<1>(out_row, tile_row, ix0, inner_begin, inner_end, row_stride, geometry); break;
            case 2: add_inner<2>(out_row, tile_row, ix0, inner_begin, inner_end, row_stride, geometry); break;
            case 3: add_inner<3>(out_row, tile_row, ix0, inner_begin, inner_end, row_stride, geometry); break;
            default: add_inner<4>(out_row, tile_row, ix0, inner_begin, inner_end, row_stride, geometry); break;
          }
          // The tile's other pixels, [ix0, inner_begin) and [inner_end, ix0 + m): taps kx with
          // 0 <= ix*sx + kx*dx - px < ow, then a branch-free run over them.
          const auto add_edge_pixel = [&](std::int64_t ix) {
            const std::int64_t kx_lo = std::max<std::int64_t>(0, ceil_div(g.px - ix * g.sx, g.dx));
            const std::int64_t kx_hi = std::min<std::int64_t>(g.kw, floor_div(g.ow - 1 + g.px - ix * g.sx, g.dx) + 1);
            const float* contribution = tile_row + (ix - ix0) * row_stride;
            float* out = out_row + (ix * g.sx - g.px) * dst_unit;
            switch (oc) {
              case 1: add_taps<1>(out, contribution, kx_lo, kx_hi, g.dx * dst_unit, dst_channel); break;
              case 2: add_taps<2>(out, contribution, kx_lo, kx_hi, g.dx * dst_unit, dst_channel); break;
              case 3: add_taps<3>(out, contribution, kx_lo, kx_hi, g.dx * dst_unit, dst_channel); break;
              default: add_taps<4>(out, contribution, kx_lo, kx_hi, g.dx * dst_unit, dst_channel); break;
            }
          };
          for (std::int64_t ix = ix0; ix < inner_begin; ++ix) add_edge_pixel(ix);
          for (std::int64_t ix = inner_end; ix < ix0 + m; ++ix) add_edge_pixel(ix);
        }
      }
    }
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_scatter_engine() { return std::make_shared<Scatter>(); }

}  // namespace tdconv::engine
