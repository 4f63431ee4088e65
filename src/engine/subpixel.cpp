// Transposed convolutions with few output channels and a stride along x: the x phases fused into the columns of one
// stride-1 GEMM (the "sub-pixel" form of a transposed convolution).
//
// Along x, output x = s * i + r - p (r < s, p the leading padding) reads inputs u = i - j for j < m = ceil(K / s)
// with kernel tap k = r + s * j (zero where k >= K). So every position i computes the s consecutive outputs
// [s * i - p, s * i - p + s) from the same m input pixels, and in channels_last those outputs' channels are one
// contiguous run of s x C_out floats. The gemm path computes each phase r on its own, with C_out columns per tile:
// FCN-8s' 21 channels fill 21 of 32 lanes. Fused, its tiles have 8 x 21 = 168 columns (168 of 176 lanes), and each
// input pixel is read once for all eight phases. The other axes keep the phase decomposition (axis.hpp): each
// output row (z, y) sums its valid z and y taps.
//
// Positions whose m taps all land in the input and whose s outputs all lie in the output row (all but a few at
// either end) run as tiles along i, written straight into the destination; the others (the row ends) run as tiles
// down runs of rows that read the same taps an input row apart, into scratch, from which the outputs inside the
// rows are copied (run_row_ends).
//
// channels_first: images are copied into channels_last a chunk at a time (as the gemm path does), and each output
// row is computed into a channels_last row of scratch, then transposed into the channel planes.
#include "engine/subpixel.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

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

// Fused only where the lanes it fills are this much more than the gemm path's, or in channels_last where C_out
// alone fills fewer vectors than the widest tile and s x C_out fills it: 3D U-Net's 32 channels at stride 2 take
// 6 x 64 tiles instead of 14 x 32 ones, 1.03-1.07x as fast at 1 and 2 threads (in turns, Intel Xeon). Its
// channels_first layer ran at 0.80x of gemm_planar's time, and fusing where C_out already fills the widest tile
// gained nothing (U-Net's up4 0.995x, HiFi-GAN's up3 0.99x) or lost (HiFi-GAN's up1 0.955x, U-Net's up1 0.64x).
constexpr double kMinLaneGain = 1.1;
// ... and where the zeros it multiplies (m * s > K: see zero_products) are few.
constexpr double kMaxZeroTaps = 0.25;
// A tile takes all its taps in one call: its packed weights read from L2 at most (the gemm path's passes are not
// needed for the few channels this path is for).
constexpr double kMaxTileWeightBytes = 512.0 * 1024;
constexpr std::int64_t kMinItems = 32;
// Rows with fewer inner positions spend too much on their edges, one position at a time (DCGAN's 4-pixel images run
// faster on the gemm path's tiles across the batch).
constexpr std::int64_t kMinInnerPositions = 16;
// channels_first: scratch for the channels_last copy of a chunk of images (the gemm path's size), and outputs over
// this size are written to their planes with non-temporal stores (as the gemm path's).
constexpr double kRelayoutBytes = 12.0 * 1024 * 1024;
constexpr double kStreamBytes = 4.0 * 1024 * 1024;
// channels_first: each thread stages a whole output row (all channels) before writing it to the planes; rows over
// this are left to other paths (a 1D row of 105572 pixels x 26 channels had taken 21 MiB of workspace at 2
// threads). Not less: a 1D layer of 82001 outputs x 9 channels (2.8 MiB rows) runs 1.3x as fast here as on the gemm
// path (12.0-13.0 against 16.0-16.3 ms, 1 thread, Zen 4).
constexpr double kMaxStagedRowBytes = 4.0 * 1024 * 1024;

// Lanes doing useful work over `columns` columns in whole vectors.
double lane_use(std::int64_t columns, int lanes) {
  return static_cast<double>(columns) / static_cast<double>(ceil_div(columns, lanes) * lanes);
}

// The positions along x (see the top of this file).
struct Positions {
  std::int64_t s = 1, pad = 0, m = 1, kx = 1;  // stride, leading padding, taps per position, kernel
  std::int64_t first = 0, end = 0;              // positions [first, end) cover the output row
  std::int64_t inner_begin = 0, inner_end = 0;  // those with every tap inside and every output in the row
};

Positions positions_of(const Problem& p) {
  const int x = p.spatial_dims - 1;
  Positions q;
  q.s = p.stride[x], q.pad = p.pad_begin[x], q.kx = p.kernel[x];
  q.m = ceil_div(q.kx, q.s);
  const std::int64_t in_x = p.input[x], out_x = output_size(p)[x];
  // Position i holds outputs [s i - pad, s i - pad + s): the first that reaches x = 0, the last that reaches
  // out_x - 1; inner ones read inputs i - m + 1 .. i and hold outputs inside [0, out_x).
  q.first = floor_div(q.pad, q.s);
  q.end = floor_div(out_x - 1 + q.pad, q.s) + 1;
  q.inner_begin = std::max({q.first, q.m - 1, ceil_div(q.pad, q.s)});
  q.inner_end = std::max(q.inner_begin, std::min({q.end, in_x, floor_div(out_x - q.s + q.pad, q.s) + 1}));
  return q;
}

// Blocks of columns, each one tile's width: as many of the widest (fewest_loads_vectors) as the columns fill, then
// one just wide enough for the rest. FCN-8s' 168 columns as 64 + 64 + 48 rather than 64 + 64 + 64: 1.04-1.06x as
// fast channels_last, 1.035-1.045x channels_first, 1 and 2 threads, in turns (Intel Xeon).
// The last x tap (j = m - 1) holds weights only in columns r * C_out + o with r + s (m - 1) < K: where the kernel is
// shorter than m strides, the block's vectors past them hold zeros and are not multiplied (`live`; 0: the block
// skips that tap). With two taps (m = 2) a block runs pair tiles (KernelSet::gemm_pair), each input pixel broadcast
// once for both taps.
struct Block {
  int vectors = 1, rows = 1;
  int live = 1;                     // vectors of the last x tap's weights that are not all zeros
  bool paired = false;              // pair tiles
  std::int64_t nr = 1, column = 0;  // width, first column
  std::int64_t packed = 0;          // first float of its packed weights
};

std::vector<Block> make_blocks(const KernelSet& kernels, const Positions& x, std::int64_t out_channels) {
  const std::int64_t columns = x.s * out_channels;
  const std::int64_t live_columns = (x.kx - x.s * (x.m - 1)) * out_channels;  // of the last x tap
  const int lanes = kernels.lanes, widest = fewest_loads_vectors(kernels, columns);
  std::vector<Block> blocks;
  for (std::int64_t column = 0; column < columns;) {
    Block b;
    b.vectors = static_cast<int>(std::min<std::int64_t>(widest, ceil_div(columns - column, lanes)));
    b.nr = b.vectors * lanes;
    b.column = column;
    b.live = static_cast<int>(ceil_div(std::clamp<std::int64_t>(live_columns - column, 0, b.nr), lanes));
    b.paired = x.m == 2 && b.live > 0;
    b.rows = b.paired ? kernels.pair_mr[b.vectors][b.live] : kernels.mr[b.vectors];
    blocks.push_back(b);
    column += b.nr;
  }
  return blocks;
}

// The fraction of the multiplied weights that are zeros of the kernel (past its end along x): per block, every
// column of the taps before the last, and of the last tap the live vectors (pair tiles), every column (gemm tiles)
// or none (no live vector: the tap is skipped).
double zero_products(const std::vector<Block>& blocks, const Positions& x, std::int64_t out_channels, int lanes) {
  const std::int64_t columns = x.s * out_channels;
  std::int64_t multiplied = 0;
  for (const Block& b : blocks) {
    const std::int64_t in_columns = std::min(b.nr, columns - b.column);
    const std::int64_t last = b.live == 0 ? 0 : b.paired ? std::min<std::int64_t>(b.live * lanes, in_columns)
                                                          : in_columns;
    multiplied += (x.m - 1) * in_columns + last;
  }
  const std::int64_t useful = out_channels * x.kx;
  return static_cast<double>(multiplied - useful) / static_cast<double>(multiplied);
}

struct State final : PlanState {
  KernelSet kernels;
  Geometry geometry;  // z and y axes decomposed; x handled here
  Positions x;
  std::int64_t columns = 1;  // s x C_out
  std::vector<Block> blocks;
  std::int64_t padded = 0;  // columns of all blocks
  std::int64_t zy_taps = 1;        // kernel taps along z and y
  std::int64_t rows_per_item = 1;  // output rows (z, y) per work item
  std::int64_t chunk_images = 1;   // channels_first: images per channels_last copy
  bool stream = false;             // see kStreamBytes
};

struct Packed final : PackedData {
  // [block][z, y kernel tap][j < m][input channel][nr columns], column = r * C_out + o: w[o][kernel (z, y, r + s j)]
  // (zero past the kernel and past the last column).
  util::AlignedFloats w;
};

std::int64_t image_floats(const Problem& p) { return element_count(src_shape(p), "src") / p.batch; }

int most_taps(const Axis& axis) {
  std::size_t most = 1;
  for (const AxisSequence& seq : axis.sequences) most = std::max(most, seq.taps.size());
  return static_cast<int>(most);
}

class Subpixel final : public detail::ForwardOnlyImplementation {
 public:
  std::string name() const override { return "subpixel_gemm"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.op != Op::conv_transpose) return "not a transposed convolution";
    if (p.dtype != DType::f32) return "not float32";
    if (p.layout == Layout::channels_first && image_floats(p) * sizeof(float) > kRelayoutBytes) {
      return "channels_first with images over 12 MiB";
    }
    if (p.layout == Layout::channels_first &&
        static_cast<double>(output_size(p)[p.spatial_dims - 1] * p.out_channels) * sizeof(float) > kMaxStagedRowBytes) {
      return "channels_first with output rows over 4 MiB";
    }
    if (p.groups != 1) return "grouped";
    const int x = p.spatial_dims - 1;
    if (p.dilation[x] != 1) return "dilated along the last axis";
    const std::int64_t s = p.stride[x];
    if (s < 2) return "stride 1 along the last axis (no phases to fuse)";
    const int lanes = best_kernels().lanes;
    const std::int64_t oc = p.out_channels, widest = kMaxVectorsPerTile * lanes;
    const bool fills_lanes = lane_use(s * oc, lanes) >= kMinLaneGain * lane_use(oc, lanes);
    const bool widens_tiles = p.layout == Layout::channels_last && oc < widest && s * oc >= widest;
    if (!fills_lanes && !widens_tiles) {
      return "fusing the phases along x fills too few more lanes (or widens no channels_last tile)";
    }
    const Positions q = positions_of(p);
    if (zero_products(make_blocks(best_kernels(), q, oc), q, oc, lanes) > kMaxZeroTaps) {
      return "kernel along x far from a multiple of the stride (fused phases would multiply zeros)";
    }
    const std::int64_t m = q.m;
    if (q.inner_end - q.inner_begin < kMinInnerPositions) {
      return "rows of fewer than " + std::to_string(kMinInnerPositions) + " inner positions";
    }
    const Geometry g = make_geometry(p);
    const double tile_weights = static_cast<double>(most_taps(g.axes[0]) * most_taps(g.axes[1]) * m) *
                                static_cast<double>(p.in_channels) * kMaxVectorsPerTile * lanes * sizeof(float);
    if (tile_weights > kMaxTileWeightBytes) return "packed weights of a tile over 512 KiB";
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto st = std::make_shared<State>();
    State& s = *st;
    s.kernels = best_kernels();
    s.geometry = make_geometry(p);
    s.x = positions_of(p);
    s.columns = s.x.s * p.out_channels;
    s.zy_taps = s.geometry.kernel[0] * s.geometry.kernel[1];
    const std::int64_t ic = p.in_channels;
    s.blocks = make_blocks(s.kernels, s.x, p.out_channels);
    for (Block& b : s.blocks) {
      b.packed = s.padded * s.zy_taps * s.x.m * ic;
      s.padded += b.nr;
    }
    const std::int64_t out_rows = s.geometry.out[0] * s.geometry.out[1];
    s.rows_per_item = std::max<std::int64_t>(1, out_rows * p.batch / kMinItems);
    s.rows_per_item = std::min(s.rows_per_item, std::max<std::int64_t>(1, out_rows / 2));
    if (p.layout == Layout::channels_first) {
      const auto fit = static_cast<std::int64_t>(kRelayoutBytes / (sizeof(float) * image_floats(p)));
      s.chunk_images = std::clamp<std::int64_t>(fit, 1, p.batch);
      while (p.batch % s.chunk_images != 0) --s.chunk_images;  // equal chunks
    }
    s.stream = static_cast<double>(element_count(dst_shape(p), "dst")) * sizeof(float) > kStreamBytes;
    return st;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t ic = p.in_channels, oc = p.out_channels, taps = s.zy_taps * s.x.kx;
    auto packed = std::make_shared<Packed>();
    packed->w.assign(static_cast<std::size_t>(s.padded * s.zy_taps * s.x.m * ic), 0.0f);
    for (const Block& block : s.blocks)
      for (std::int64_t zy = 0; zy < s.zy_taps; ++zy)
        for (std::int64_t j = 0; j < s.x.m; ++j)
          for (std::int64_t q = 0; q < ic; ++q)
            for (std::int64_t n = 0; n < block.nr; ++n) {
              const std::int64_t column = block.column + n;
              const std::int64_t kx = column / oc + s.x.s * j;
              if (column >= s.columns || kx >= s.x.kx) continue;
              packed->w[static_cast<std::size_t>(block.packed + ((zy * s.x.m + j) * ic + q) * block.nr + n)] =
                  w[weight_index(p, 0, q, column % oc, zy * s.x.kx + kx, taps)];
            }
    packed->bytes = packed->w.size() * sizeof(float);
    return packed;
  }

  // Per thread: the tap lists and the z and y hits (of run_row and of run_row_ends), run_row_ends' rows of outputs of
  // every block and its runs, and for channels_first the output row in channels_last; the calling thread's fused bias and (channels_first) copy of a chunk of images.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    const std::int64_t taps = s.zy_taps * s.x.m;
    std::int64_t floats = ends_rows(s) * s.padded;
    if (p.layout == Layout::channels_first) floats += s.geometry.out[2] * p.out_channels;
    // run_row_ends' own tap lists and y hits, its runs and rows
    const std::int64_t row_ends = taps * 2 * static_cast<std::int64_t>(sizeof(const float*)) +
                                  (s.geometry.kernel[0] + 2 * s.geometry.kernel[1]) *
                                      static_cast<std::int64_t>(sizeof(TapHit)) +
                                  s.rows_per_item * static_cast<std::int64_t>(sizeof(std::int64_t) + 1);
    const std::int64_t bytes = taps * 2 * static_cast<std::int64_t>(sizeof(const float*)) +
                               (s.geometry.kernel[0] + s.geometry.kernel[1]) *
                                   static_cast<std::int64_t>(sizeof(TapHit)) +
                               floats * static_cast<std::int64_t>(sizeof(float)) + row_ends;
    const std::int64_t once = s.padded + (p.layout == Layout::channels_first ? s.chunk_images * image_floats(p) : 0);
    return static_cast<std::size_t>(threads * bytes + once * static_cast<std::int64_t>(sizeof(float)));
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t out_rows = s.geometry.out[0] * s.geometry.out[1];
    const std::int64_t bands = ceil_div(out_rows, s.rows_per_item);
    const std::int64_t src_image = image_floats(p);
    const std::int64_t dst_image = element_count(dst_shape(p), "dst") / p.batch;
    const auto* src = static_cast<const float*>(args.src);
    auto* dst = static_cast<float*>(args.dst);
    // The bias of column r * C_out + o is bias[o], zero past the last column; the caller's buffer, read by every
    // thread.
    thread_local util::AlignedFloats bias;
    const float* init = nullptr;
    if (args.bias != nullptr) {
      bias.assign(static_cast<std::size_t>(s.padded), 0.0f);
      const auto* user = static_cast<const float*>(args.bias);
      for (std::int64_t c = 0; c < s.columns; ++c) bias[static_cast<std::size_t>(c)] = user[c % p.out_channels];
      init = bias.data();
    }
    if (p.layout == Layout::channels_last) {
      run_rows(p, s, packed, init, src, dst, p.batch, bands);
      return;
    }
    thread_local util::AlignedFloats copy;
    copy.resize(static_cast<std::size_t>(s.chunk_images * src_image));
    float* const buffer = copy.data();  // the caller's: in the parallel loop, `copy` names each thread's own
    for (std::int64_t n0 = 0; n0 < p.batch; n0 += s.chunk_images) {
      to_channels_last(s.kernels, src + n0 * src_image, buffer, src_image, s.chunk_images, p.in_channels,
                       src_image / p.in_channels, false);
      run_rows(p, s, packed, init, buffer, dst + n0 * dst_image, s.chunk_images, bands);
    }
  }

 private:
  // Every output row of `images` images: src channels_last, dst in the problem's layout; init: the fused bias or
  // null.
  static void run_rows(const Problem& p, const State& s, const Packed& packed, const float* init,
                       const float* src, float* dst, std::int64_t images, std::int64_t bands) {
    const Geometry& g = s.geometry;
    const std::int64_t out_rows = g.out[0] * g.out[1], out_x = g.out[2], oc = p.out_channels;
    const std::int64_t plane = out_rows * out_x;
    const bool first = p.layout == Layout::channels_first;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < images * bands; ++item) {
      thread_local util::AlignedFloats staged;
      if (first) staged.resize(static_cast<std::size_t>(out_x * oc));
      const std::int64_t n = item / bands, row0 = (item % bands) * s.rows_per_item;
      for (std::int64_t row = row0; row < std::min(out_rows, row0 + s.rows_per_item); ++row) {
        const float* image = src + n * g.in[0] * g.in[1] * g.in[2] * p.in_channels;
        if (!first) {
          run_row(p, s, packed, init, image, dst + (n * plane + row * out_x) * oc, row);
          continue;
        }
        run_row(p, s, packed, init, image, staged.data(), row);
        run_row_ends(p, s, packed, init, image, staged.data(), row, row + 1);
        s.kernels.transpose(staged.data(), oc, dst + n * plane * oc + row * out_x, plane, oc, out_x, s.stream);
      }
      if (!first) {  // the row ends of the item's rows, down runs of rows
        const std::int64_t row_end = std::min(out_rows, row0 + s.rows_per_item);
        const float* image = src + n * g.in[0] * g.in[1] * g.in[2] * p.in_channels;
        run_row_ends(p, s, packed, init, image, dst + (n * plane + row0 * out_x) * oc, row0, row_end);
      }
      if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
    }
  }

  // The taps of block `block` for positions [i0, i1) of an output row whose z and y hits are given, the y hits'
  // input rows taken `rows_further` rows on: those x taps j with i - j inside the input for every i (the callers pass
  // runs where that holds), a[t] reading position i0's input pixel. Returns how many.
  static int list_taps(const State& s, const Packed& packed, const float* src, std::int64_t ic, const TapHit* z_taps,
                       int nz, const TapHit* y_taps, int ny, std::int64_t rows_further, std::int64_t i0,
                       std::int64_t i1, const Block& block, const float** a, const float** b) {
    const Geometry& g = s.geometry;
    int t = 0;
    for (int zi = 0; zi < nz; ++zi)
      for (int yi = 0; yi < ny; ++yi) {
        const std::int64_t in_row =
            (z_taps[zi].in_index * g.in[1] + y_taps[yi].in_index + rows_further) * g.in[2];
        const std::int64_t zy = z_taps[zi].kernel_index * g.kernel[1] + y_taps[yi].kernel_index;
        for (std::int64_t j = 0; j < s.x.m; ++j) {
          if (i0 - j < 0 || i1 - 1 - j >= g.in[2]) continue;
          if (j == s.x.m - 1 && block.live == 0) continue;  // all zeros in this block
          a[t] = src + (in_row + i0 - j) * ic;
          b[t] = packed.w.data() + block.packed + (zy * s.x.m + j) * ic * block.nr;
          ++t;
        }
      }
    return t;
  }

  // Rows per tile of run_row_ends: the fewest any block's tile holds (with 16 registers, a tile of four vectors holds
  // far fewer rows than one of one vector).
  static int ends_rows(const State& s) {
    int mr = s.kernels.mr[s.blocks.front().vectors];
    for (const Block& block : s.blocks) mr = std::min(mr, s.kernels.mr[block.vectors]);
    return mr;
  }

  // The positions along x that do not run in the rows' tiles (see run_row): whether position i is one of them.
  static bool single_position(const State& s, std::int64_t i) {
    return s.x.inner_end == s.x.inner_begin || i < s.x.inner_begin || i >= s.x.inner_end;
  }

  // The single positions (the row ends) of output rows [row0, row1) of an image into dst_rows (channels_last rows of
  // out_x pixels from row0 on), as gemm tiles down the rows: rows of one plane and one y phase (a stride apart) whose
  // y taps are the same but one input row further read their inputs an input row apart, so a tile takes up to mr of
  // them (a_pixel_stride: an input row), computed into scratch rows and copied into the rows. As one-row tiles, one
  // position of one row at a time, vol_up_k3's two row ends of 33 positions took 8% of its samples for 4% of its
  // products. channels_first passes one row at a time (its staged row).
  static void run_row_ends(const Problem& p, const State& s, const Packed& packed, const float* init,
                           const float* src, float* dst_rows, std::int64_t row0, std::int64_t row1) {
    bool any = false;
    for (std::int64_t i = s.x.first; i < s.x.end && !any; ++i) any = single_position(s, i);
    if (!any) return;  // every position in the rows' tiles (3D U-Net's)
    const Geometry& g = s.geometry;
    const std::int64_t ic = p.in_channels, oc = p.out_channels, out_x = g.out[2];
    const std::int64_t sy = p.spatial_dims >= 2 ? p.stride[p.spatial_dims - 2] : 1;
    const int mr = ends_rows(s);
    thread_local std::vector<TapHit> z_taps, y_taps, y_next;
    thread_local std::vector<const float*> a, b;
    thread_local std::vector<std::int64_t> run;
    thread_local std::vector<char> done;
    thread_local util::AlignedFloats rows_out;
    z_taps.resize(static_cast<std::size_t>(g.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(g.kernel[1]));
    y_next.resize(static_cast<std::size_t>(g.kernel[1]));
    a.resize(static_cast<std::size_t>(s.zy_taps * s.x.m)), b.resize(a.size());
    rows_out.resize(static_cast<std::size_t>(mr * s.padded));
    done.assign(static_cast<std::size_t>(row1 - row0), 0);

    TileCall call;
    call.a = a.data();
    call.b = b.data();
    call.k = ic;
    call.a_pixel_stride = g.in[2] * ic;  // the next row of a run: its y taps an input row further
    call.c_pixel_stride = s.padded;
    call.tiles = 1;
    for (std::int64_t r0 = row0; r0 < row1; ++r0) {
      if (done[static_cast<std::size_t>(r0 - row0)]) continue;
      // The run from r0: rows r0 + u sy of r0's plane whose y taps are r0's, each one input row further.
      const std::int64_t oz = r0 / g.out[1];
      const int nz = g.axes[0].taps_at(oz, z_taps.data());
      const int ny = g.axes[1].taps_at(r0 % g.out[1], y_taps.data());
      run.assign(1, r0);
      for (std::int64_t r = r0 + sy; r < row1 && r / g.out[1] == oz; r += sy) {
        const auto u = static_cast<std::int64_t>(run.size());
        bool same = g.axes[1].taps_at(r % g.out[1], y_next.data()) == ny;
        for (int yi = 0; same && yi < ny; ++yi) {
          same = y_next[yi].kernel_index == y_taps[yi].kernel_index && y_next[yi].in_index == y_taps[yi].in_index + u;
        }
        if (!same) break;
        run.push_back(r);
      }
      for (const std::int64_t r : run) done[static_cast<std::size_t>(r - row0)] = 1;
      for (std::int64_t i = s.x.first; i < s.x.end; ++i) {
        if (!single_position(s, i)) continue;
        const std::int64_t x0 = s.x.s * i - s.x.pad;
        const std::int64_t r_begin = std::max<std::int64_t>(0, -x0);
        const std::int64_t r_end = std::min<std::int64_t>(s.x.s, out_x - x0);
        for (std::size_t c0 = 0; c0 < run.size(); c0 += static_cast<std::size_t>(mr)) {
          const auto rows = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(mr), run.size() - c0));
          for (const Block& block : s.blocks) {
            call.ntaps = list_taps(s, packed, src, ic, z_taps.data(), nz, y_taps.data(), ny,
                                   static_cast<std::int64_t>(c0), i, i + 1, block, a.data(), b.data());
            call.m = rows;
            call.init = init ? init + block.column : nullptr;
            call.nr_valid = static_cast<int>(block.nr);
            call.c = rows_out.data() + block.column;
            s.kernels.gemm[block.vectors](call);
          }
          if (r_end <= r_begin) continue;
          for (int u = 0; u < rows; ++u) {
            std::memcpy(dst_rows + ((run[c0 + static_cast<std::size_t>(u)] - row0) * out_x + x0 + r_begin) * oc,
                        rows_out.data() + u * s.padded + r_begin * oc,
                        static_cast<std::size_t>((r_end - r_begin) * oc) * sizeof(float));
          }
        }
      }
    }
  }

  // One output row (z, y) of an image (channels_last) into dst_row (channels_last): the positions along x that run
  // in tiles along the row (run_row_ends computes the others), every block of fused columns.
  static void run_row(const Problem& p, const State& s, const Packed& packed, const float* init, const float* src,
                      float* dst_row, std::int64_t row) {
    const Geometry& g = s.geometry;
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const std::int64_t oz = row / g.out[1], oy = row % g.out[1];
    thread_local std::vector<TapHit> z_taps, y_taps;
    thread_local std::vector<const float*> a, b;
    z_taps.resize(static_cast<std::size_t>(g.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(g.kernel[1]));
    const int nz = g.axes[0].taps_at(oz, z_taps.data());
    const int ny = g.axes[1].taps_at(oy, y_taps.data());
    const auto taps = static_cast<std::size_t>(s.zy_taps * s.x.m);
    a.resize(taps), b.resize(taps);

    TileCall call;
    call.a = a.data();
    call.b = b.data();
    call.k = ic;
    call.a_pixel_stride = ic;
    call.c_pixel_stride = s.x.s * oc;
    // Inner positions: runs of tiles of equal height, give or take one (as the gemm path), straight into the row.
    const std::int64_t count = s.x.inner_end - s.x.inner_begin;
    for (const Block& block : s.blocks) {
      if (count == 0) break;
      const std::int64_t tiles = ceil_div(count, block.rows), height = count / tiles, taller = count % tiles;
      const std::array<std::array<std::int64_t, 3>, 2> groups{{{0, taller, height + 1},
                                                                {taller * (height + 1), tiles - taller, height}}};
      for (const auto& [first, group_tiles, m] : groups) {
        if (group_tiles == 0) continue;
        const std::int64_t i0 = s.x.inner_begin + first;
        call.ntaps = list_taps(s, packed, src, ic, z_taps.data(), nz, y_taps.data(), ny, 0, i0, i0 + group_tiles * m,
                               block, a.data(), b.data());
        call.m = static_cast<int>(m);
        call.tiles = static_cast<int>(group_tiles);
        call.init = init ? init + block.column : nullptr;
        call.nr_valid = static_cast<int>(std::min(block.nr, s.columns - block.column));
        call.c = dst_row + (s.x.s * i0 - s.x.pad) * oc + block.column;
        call.stream = s.stream && p.layout == Layout::channels_last;
        // Inner positions have every tap, so a paired block's taps come in pairs.
        (block.paired ? s.kernels.gemm_pair[block.vectors][block.live] : s.kernels.gemm[block.vectors])(call);
      }
    }
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_subpixel_engine() { return std::make_shared<Subpixel>(); }

}  // namespace tdconv::engine
