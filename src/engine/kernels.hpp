#pragma once
// The per-ISA surface of the engine: register-tiled float32 microkernels, compiled once per SIMD target (Highway)
// and chosen at plan time. Everything else in the engine is portable.
//
// Contract of a microkernel call (one tile of m output pixels x NR output channels):
//   c[r * c_pixel_stride + n * c_channel_stride] =
//       init[n] + sum over taps t, channels q of  a[t][r * a_pixel_stride + q * a_channel_stride] * b[t][q * NR + n]
// for r < m, n < nr_valid. init is the bias (NR values, zero padded) or zero; with `accumulate` (gemm only) the
// tile starts from what c holds instead, the partial sums of earlier passes. Taps are given as pointer
// pairs, so the caller decides which input elements each tap reads; the kernel never reads past k channels of a
// pixel or past k * NR packed weights of a tap, and reads c only to accumulate (never past nr_valid channels).
// With no taps it stores init.
// The depthwise kernel is the same tile with one input channel per output channel: a[t][r * stride + n] is read as
// a vector (channels are lanes), and b[t] holds NR per-channel weights.
// The dot kernel serves few output channels (NR = 1..4): input channels are lanes, so b[t] holds, per block of
// `lanes` input channels, NR vectors of weights (zero padded past k); each output is a horizontal sum at the end.
#include <cstdint>
#include <string>
#include <vector>

namespace tdconv::engine {

struct TileCall {
  int m = 0;       // pixels in the tile, 1..mr
  int ntaps = 0;
  const float* const* a = nullptr;
  const float* const* b = nullptr;
  std::int64_t a_pixel_stride = 0;
  std::int64_t k = 0;  // input channels per tap (gemm); unused by depthwise
  std::int64_t a_channel_stride = 1;  // gemm only: channels_first input has channels a plane apart
  const float* init = nullptr;  // NR values or null (zero)
  float* c = nullptr;
  std::int64_t c_pixel_stride = 0;
  std::int64_t c_channel_stride = 1;  // gemm only: channels_first output
  int nr_valid = 0;
  bool accumulate = false;  // gemm only: start from c (see above)
  // depthwise only: this many consecutive blocks of NR channels, block i at a[t] + i * NR, b[t] + i * NR,
  // c + i * NR * c_channel_stride, init + i * NR (one call per tile instead of one per block: the calls' set-up
  // was a large share of a memory-bound depthwise layer's instructions).
  int blocks = 1;
  // The call computes `tiles` tiles of m pixels, tile i reading a[t] + i * m * a_pixel_stride and writing
  // c + i * m * c_pixel_stride: a run of equal tiles in one call, its taps listed once.
  int tiles = 1;
  std::int64_t a_offset = 0;  // set by the kernels for each tile of the call; 0 from the caller
  // Write c with non-temporal stores where it is vector-aligned: for outputs far larger than the caches, which
  // would otherwise be read from memory before every write (the caller issues a store fence afterwards).
  bool stream = false;
  // Set by the kernels for each tile of a call (0 from the caller): the odd tiles of a call take their products in
  // reverse order, last tap's last channel first (gemm only). A tile whose packed weights exceed L1 had streamed
  // them all from L2, each tile evicting the lines the next one reads first; in alternating directions the next
  // tile starts on the lines the last one left in L1 (HiFi-GAN's up3, 64 KiB per tile: 5-6% faster, timed in turns;
  // 1-7% on the other layers of the gemm path). Which tiles run backwards depends on the problem only, so results
  // stay identical for any thread count.
  bool reverse = false;
  // Set by the kernels for each tile of a call (false from the caller): whether tile i + 1 of the call exists. A
  // gemm tile fetches the next tile's input rows ahead only then: past the last tile they may lie outside the
  // source, and a prefetch of an unmapped address costs a page walk each time (DCGAN g2 channels_first, its last
  // tiles fetching images past the batch: 1.5x slower whenever the source's neighbour pages were unmapped).
  bool prefetch_next = false;
};

using TileFn = void (*)(const TileCall&);

// A planar gemm call: channels_first output rows of one image, pixels as lanes (see planar_gemm.cpp).
//   c[r * c_channel_stride + j] =
//       init[r] + sum over taps t, channels q of  b[t][q * b_stride + r] * a[t][q * a_channel_stride + j]
// for j < count and the rows r of every block (below); with `accumulate` starting from c instead of init (null
// init: zero). Tiles are planar_mr rows by whole vectors of pixels: b[t] holds planar_mr floats per channel (zero
// past the last block's m rows), and a[t] must be readable a tile's width (4 vectors) past count. Only the rows of
// the blocks and pixels j < count are written.
struct PlanarGemmCall {
  int ntaps = 0;
  const float* const* a = nullptr;
  std::int64_t a_channel_stride = 0;
  std::int64_t k = 0;  // input channels per tap
  const float* const* b = nullptr;
  std::int64_t b_stride = 0;
  // `blocks` blocks of planar_mr rows, block i reading weights b[t] + i * b_block_stride and writing rows from
  // i * planar_mr on (init likewise); the last block has m rows, the others planar_mr.
  int blocks = 1;
  std::int64_t b_block_stride = 0;
  int m = 0;
  const float* init = nullptr;
  bool accumulate = false;
  float* c = nullptr;
  std::int64_t c_channel_stride = 0;
  std::int64_t count = 0;
  // Whole vectors at vector-aligned addresses written with non-temporal stores (the caller issues a store fence).
  bool stream = false;
  // Channels ahead whose pixel vectors the tiles prefetch (0: none): for `a` read in place, channel rows a power of
  // two apart that share L1 sets (see scatter.cpp's reads_source).
  std::int64_t prefetch_channels = 0;
  // parts > 1 (2 to 4): a transposed convolution's phases along x, interleaved as they are stored. Part p has
  // taps [part_taps[p], part_taps[p + 1]) of a and b, and its pixel j goes to c[j * parts + p] of each row;
  // `count` is then the number of interleaved outputs, and every part computes ceil(count / parts) pixels (reading
  // a[t] that far). No `accumulate`.
  int parts = 1;
  const int* part_taps = nullptr;
  // Two parts (no Winograd) with as many taps each, tap i of part 1 reading the input columns of tap i of part 0
  // (a[part_taps[1] + i] == a[part_taps[0] + i]) with its own weights: both may be computed in one pass.
  bool shared_parts = false;
  // Winograd F(n, r) along x (winograd_planar in planar_gemm.cpp), n = `winograd` (2 or 4; 0: none) pixels per
  // group from transformed rows, r = part_x_taps[p] (1 or 2) x taps in part p. Each part's taps come in runs of
  // n + r - 1, s = 0 .. n + r - 2 (a[t]: the transformed rows of one input row, see winograd_rows; b[t]: their
  // transformed weights), and pixel n j + k of the part, at lane j of a[t], is init + the sum over s of A[k][s] Ms,
  // where Ms sums the products of the part's taps s:
  //   F(4, 2):  M0 + M1 + M2 + M3,  M1 - M2 + 2 M3,  M1 + M2 + 4 M3,  M1 - M2 + 8 M3 + M4;
  //   F(2, 2):  M0 + M1,  M1 + M2;   F(n, 1):  Mk.
  // Pixel i of part p goes to c[i * parts + p] as above (parts 1 or 2: up to 8 parts interleaved); count as above,
  // groups read from a[t] up to ceil(count / parts / n), rounded up to whole tiles (as above, a tile's width past
  // it). No `accumulate`.
  int winograd = 0;
  const int* part_x_taps = nullptr;
  // ... or, with winograd_step = d > 0 (one part: 2 x taps d apart, d a multiple of the tile's width),
  // groups along the dilation: group g, at lane g of a[t], is pixels h + k d (k < n) of block b, h = g mod d and
  // b = g / d, which go to c[b n d + k d + h]; `count` outputs from c exist, and groups are read up to
  // ceil(count / (n d)) d, in whole tiles.
  std::int64_t winograd_step = 0;
};
using PlanarGemmFn = void (*)(const PlanarGemmCall&);

// A weight-gradient tile (weight_gradient.cpp): m channels of the strided side (a convolution's output, a
// transposed convolution's input) by NR = v * lanes channels of the dense side, summed over runs of pixels:
//   c[r * c_stride + n] = (accumulate ? c[r * c_stride + n] : 0) +
//       sum over runs u, i < length[u] of  s[u][s_offset + i * s_step + r] * d[u][d_offset + i * d_step + n]
// for r < m, n < nr_valid. Reads s only for r < m, but d in whole vectors (NR floats from each pixel's d_offset: the
// caller's copy of the dense side has room past its end); writes nothing past nr_valid. No runs: stores zeros (or
// leaves c as it is, accumulating).
struct WeightGradCall {
  int m = 0;
  int runs = 0;
  const float* const* s = nullptr;
  const float* const* d = nullptr;
  const std::int64_t* length = nullptr;
  std::int64_t s_offset = 0, d_offset = 0;
  std::int64_t s_step = 0, d_step = 0;
  float* c = nullptr;
  std::int64_t c_stride = 0;
  int nr_valid = 0;
  bool accumulate = false;
};
using WeightGradFn = void (*)(const WeightGradCall&);

inline constexpr int kMaxVectorsPerTile = 4;
// The Winograd tap count (KernelSet::winograd_input) of an axis of 3 taps whose tiles' first and last patch inputs
// (F(2, 3)'s) always land in padding: a convolution dilated by half its image or more (DeepLab's ASPP at rate 18 on
// 33 x 33). Its two outputs are then y0 = g1 d1 + g2 d2, y1 = g0 d1 + g1 d2 (a 2 x 2 Toeplitz product), which take
// 3 multiplications: g1 (d1 + d2), (g2 - g1) d2, (g0 - g1) d1, against F(2, 3)'s 4 and the 4 valid taps.
inline constexpr int kWinogradPaddedEnds = 4;
// Patch (and transformed) elements along an axis of a Winograd tile with n outputs there and `taps` taps (or
// kWinogradPaddedEnds: 3 elements, n = 2).
constexpr int winograd_axis_elements(int taps, int n) { return taps == kWinogradPaddedEnds ? 3 : taps + n - 1; }
// Pixels per group of Winograd along x at most (PlanarGemmCall::winograd).
inline constexpr int kMaxWinogradGroup = 4;
// Taps of a planar_lane_row_pairs call at most: both rows' weights stay in registers.
inline constexpr int kMaxPairedLaneTaps = 4;
// Vectors of outputs that a depthwise_flat call computes together (independent chains of multiply-adds), and so the
// vectors that one entry of its mask table covers.
inline constexpr int kFlatGroupVectors = 4;

struct KernelSet {
  std::string target;  // Highway's target name, e.g. "AVX3", "AVX2", "EMU128"
  // The targets of the planar kernels (planar_kernels.cpp, also add_row) and of the Winograd transforms
  // (winograd_kernels.cpp):
  // always `target`.
  std::string planar_target, winograd_target;
  int lanes = 1;       // floats per vector
  // Indexed by vectors per tile (1..kMaxVectorsPerTile); NR = vectors * lanes. mr[v] is the tile height.
  int mr[kMaxVectorsPerTile + 1] = {};
  TileFn gemm[kMaxVectorsPerTile + 1] = {};
  // Pair tiles (subpixel.cpp): gemm tiles whose taps come in pairs one pixel apart, tap 2i reading the tile's pixels
  // and tap 2i + 1 the pixel before each, every pixel broadcast once for both; only the first `live` vectors of the
  // second tap's packed weights are read (the rest must be zeros). Indexed [vectors][live], 1 <= live <= vectors;
  // pair_mr is the tile height; tiles of pair_mr or pair_mr - 1 rows are paired, shorter ones run as gemm tiles.
  // channels_last input and packed weights as the gemm tiles', no `accumulate`.
  int pair_mr[kMaxVectorsPerTile + 1][kMaxVectorsPerTile + 1] = {};
  TileFn gemm_pair[kMaxVectorsPerTile + 1][kMaxVectorsPerTile + 1] = {};
  TileFn depthwise[kMaxVectorsPerTile + 1] = {};
  // Targets whose vectors hold more than 8 floats (AVX-512): the depthwise tiles again in vectors of
  // depthwise_narrow_lanes (8) floats, for channel counts that are a multiple of 8 but not of `lanes` (24, 72, 120,
  // 184: MobileNetV3's), which would otherwise fall to gemm tiles with one channel per group. Tile heights mr[v]
  // (the same registers). 0 and null elsewhere.
  int depthwise_narrow_lanes = 0;
  TileFn depthwise_narrow[kMaxVectorsPerTile + 1] = {};
  // Indexed by output channels (1..kMaxVectorsPerTile).
  int dot_mr[kMaxVectorsPerTile + 1] = {};
  TileFn dot[kMaxVectorsPerTile + 1] = {};
  // Winograd F(2, r) transforms along every axis of a tile (see winograd_transforms-inl.h), indexed by the taps
  // along z, y and x (0: no such axis, so 1D tiles are [0][0][r]; kWinogradPaddedEnds: 3 taps on two inputs), over a
  // multiple of `lanes` channels: a patch pointer per transformed element in (prod (r + 1) over the axes, 3 along an
  // axis of kWinogradPaddedEnds), 2^axes output pointers out. Compiled for 2 or 3 taps on every axis, for any mix of
  // 1 and 2 taps, and for kWinogradPaddedEnds on every axis or mixed with 3 taps in 2D; null elsewhere.
  using WinogradInputFn = void (*)(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride);
  using WinogradOutputFn = void (*)(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                                    float* const* out, bool stream);
  // Planar gemm (PlanarGemmCall), indexed by vectors of pixels per tile (1..kMaxVectorsPerTile); planar_mr[v]
  // output channels per tile.
  int planar_mr[kMaxVectorsPerTile + 1] = {};
  PlanarGemmFn planar_gemm[kMaxVectorsPerTile + 1] = {};
  WinogradInputFn winograd_input[5][5][5] = {};
  WinogradOutputFn winograd_output[5][5][5] = {};
  // Winograd F(4, r) along x (4 outputs from r + 3 inputs) and F(2, r) along y, r taps on every axis, indexed by r
  // and by the problem's axes: F(4, 3) in 1D and 2D ([3][1], [3][2]), F(4, 2) in 1D ([2][1]); null elsewhere.
  WinogradInputFn winograd4_input[4][3] = {};
  WinogradOutputFn winograd4_output[4][3] = {};
  // out[i * out_stride + j] = in[j * in_stride + i] for i < rows, j < cols: the copies between channels_first and
  // channels_last, in register-transposed square blocks (8 x 8 with AVX2 and AVX-512, 4 x 4 with SSE). `stream`:
  // non-temporal stores where out is aligned (the caller issues a store fence afterwards).
  void (*transpose)(const float* in, std::int64_t in_stride, float* out, std::int64_t out_stride, std::int64_t rows,
                    std::int64_t cols, bool stream) = nullptr;
  // Planar (channels_first) depthwise: `rows` output rows of `count` pixels of one channel, each row's x phases
  // (`parts`, the sequences of a transposed convolution along x; 1 for a convolution) computed together and
  // interleaved:
  //   out[r * out_row_stride + j * parts + q] = init + sum over t in [part_taps[q], part_taps[q + 1]) of
  //                                             w[t] * in[t][r * in_row_stride + j]
  // for every j * parts + q < count. Each part computes whole vectors up to ceil(count / parts) pixels, so every
  // in[t] row must be readable that far rounded up to a vector (zero-padded copies). `stream`: non-temporal stores
  // (out and out_row_stride vector-aligned; the caller issues a store fence afterwards).
  void (*planar_rows)(const float* const* in, std::int64_t in_row_stride, const float* w, const int* part_taps,
                      int parts, float init, float* out, std::int64_t out_row_stride, std::int64_t rows,
                      std::int64_t count, bool stream) = nullptr;
  // Planar depthwise with a weight per lane: `rows` output rows of `count` pixels,
  //   out[r * out_row_stride + x] = init + sum over t < taps of w[t * lanes + x % lanes] * in[t][r * in_row_stride + x]
  // The x phases of a transposed convolution computed as one row (planar.cpp's expanded rows): when `lanes` is a
  // multiple of the stride, lane x % lanes belongs to phase x % stride. Every in[t] row must be readable up to count
  // rounded up to a vector; w is vector-aligned. `stream` as planar_rows.
  void (*planar_lane_rows)(const float* const* in, std::int64_t in_row_stride, const float* w, int taps, float init,
                           float* out, std::int64_t out_row_stride, std::int64_t rows, std::int64_t count,
                           bool stream) = nullptr;
  // Planar depthwise over a whole plane whose input and output have the same extents (stride 1 along every axis,
  // "same" padding), flattened: for o < count,
  //   out[o] = init + sum over taps t whose mask has o of w[t] * in[o + offsets[t]]
  // Output vectors go in groups of kFlatGroupVectors; `masks` holds, per group and tap, one mask of (lanes + 7) / 8
  // bytes per vector (bit l of vector u: output group * kFlatGroupVectors * lanes + u * lanes + l reads inside the
  // input; never set at or past count). Only masked lanes are read (masked loads, which suppress faults), so no
  // padded copy is needed. Null on targets without masked loads (AVX2 and AVX-512 have them).
  void (*depthwise_flat)(const float* in, const float* w, const std::int64_t* offsets, int taps,
                         const std::uint8_t* masks, std::int64_t count, float init, float* out) = nullptr;
  // Pairs of rows that read the same input rows with different weights (planar.cpp's paired y phases): for r < rows,
  //   out_a[r * out_row_stride + x] = init + sum over t < taps of
  //                                   w_a[t * lanes + x % lanes] * in[t][r * in_row_stride + x]
  // and out_b likewise with w_b, each input vector loaded once for both. 1 <= taps <= kMaxPairedLaneTaps; the rest
  // as planar_lane_rows.
  void (*planar_lane_row_pairs)(const float* const* in, std::int64_t in_row_stride, const float* w_a,
                                const float* w_b, int taps, float init, float* out_a, float* out_b,
                                std::int64_t out_row_stride, std::int64_t rows, std::int64_t count,
                                bool stream) = nullptr;
  // out[j * parts + q] = part[q][j] for every j * parts + q < count: a transposed convolution's phases, computed
  // one after the other, merged into an output row (any number of parts). `stream`: non-temporal stores where out
  // is aligned, for 2 to 4 parts (the caller issues a store fence afterwards).
  void (*interleave)(const float* const* part, int parts, float* out, std::int64_t count, bool stream) = nullptr;
  // out[i] += in[i] for i < count, reading and writing nothing else.
  void (*add_row)(const float* in, float* out, std::int64_t count) = nullptr;
  // An expanded row (planar.cpp): out[parts * i + q] = row[first + base[q] + i] where that index is in [0, width),
  // zero elsewhere, for i < n. Reads nothing outside row[0, width).
  void (*expand_row)(const float* row, std::int64_t width, std::int64_t first, const std::int64_t* base, int parts,
                     float* out, std::int64_t n) = nullptr;
  // A panel of `rows` windows of `window` columns from each of `slots` sources (planar_gemm.cpp), slot after slot:
  // column i of row r of slot k is
  //   to[(k * rows + r) * to_stride + i] = from[k][r * from_stride + i - zeros_before]
  // for zeros_before <= i < zeros_before + inside, and zero for the other i < window rounded up to whole vectors
  // (to_stride must hold them). Reads nothing else.
  void (*panel_rows)(const float* const* from, std::int64_t slots, std::int64_t from_stride, float* to,
                     std::int64_t to_stride, std::int64_t rows, std::int64_t zeros_before, std::int64_t inside,
                     std::int64_t window) = nullptr;
  // Winograd F(n, r)'s transformed rows along x (PlanarGemmCall::winograd): for each of `rows` rows and part
  // p < parts (1 or 2) with r = taps[p] (1 or 2) x taps, with d_u = x[n j + u] for x = from + row * from_stride +
  // first[p] and groups j < `groups` rounded up to whole vectors, the n + r - 1 rows s of the part, stored at
  // to[row * to_stride + (rows of the parts before p + s) * stream_stride + j]:
  //   F(4, 2):  2 d0 - d1 - 2 d2 + d3,  2 d1 + d2 - d3,  -2 d1 + 3 d2 - d3,  d3 - d1,  2 d1 - d2 - 2 d3 + d4
  //             (Toom-Cook's input transform for the points 0, 1, -1, 2 and infinity, rows scaled to whole
  //             coefficients);
  //   F(2, 2):  d0 - d1,  d1,  d2 - d1;   F(n, 1):  d0 .. d(n-1);
  // reading x[0, n * (groups rounded up to whole vectors + 1)). With step = d > 0 (one part of 2 taps, d a
  // multiple of the vector width, groups a multiple of d), group g = b d + h takes d_u = x[b n d + h + u d] instead
  // (PlanarGemmCall::winograd_step), reading x[0, (groups / d) n d + d).
  // Weight-gradient tiles (WeightGradCall), indexed by vectors of dense-side channels (1..kMaxVectorsPerTile), and
  // their heights; the target of weight_gradient_kernels.cpp (always `target`).
  std::string weight_grad_target;
  int weight_grad_mr[kMaxVectorsPerTile + 1] = {};
  WeightGradFn weight_grad[kMaxVectorsPerTile + 1] = {};
  // ... and for depthwise problems (one channel per group on each side), channels as lanes on both sides:
  //   c[n] = (accumulate ? c[n] : 0) + sum over runs u, i < length[u] of
  //          s[u][s_offset + i * s_step + n] * d[u][d_offset + i * d_step + n]
  // for n < nr_valid (m is 1), reading whole vectors from both (the caller leaves room after each).
  WeightGradFn weight_grad_depthwise[kMaxVectorsPerTile + 1] = {};
  void (*winograd_rows)(const float* from, std::int64_t from_stride, std::int64_t rows, const std::int64_t* first,
                        const int* taps, int parts, int n, std::int64_t groups, float* to, std::int64_t to_stride,
                        std::int64_t stream_stride, std::int64_t step) = nullptr;
};

// Channels_first images [channel][pixel] copied into channels_last [pixel][channel] with kernels.transpose, in
// slices of pixels shared by the OpenMP threads; image n of `out` starts at out + n * out_image. With `stream`,
// written with non-temporal stores where out and channels are vector-aligned: in tdconv-bench (the peers' runs
// between, so the source comes from L3 or memory, Intel Xeon, in turns), ASPP rates 6 and 18 channels_first (8.5 MiB
// copies) ran 1.04-1.15x as fast at 1 and 2 threads, U-Net up1 1.06x and TCN 1.01-1.03x at 1 thread (0.96-1.06x at
// 2) on the gemm and Winograd paths; the subpixel path's copy of FCN-8s (0.3 MiB, read from L2 right after) ran
// 0.93-0.96x, and the subpixel path stays plain.
void to_channels_last(const KernelSet& kernels, const float* in, float* out, std::int64_t out_image,
                      std::int64_t images, std::int64_t channels, std::int64_t pixels, bool stream);

// The kernels of the best target this CPU supports (as limited by force_target, if set).
KernelSet best_kernels();

// Vectors per gemm tile for `columns` output columns: the fewest loads per useful multiply-add. Each input channel
// of an M x NV tile loads M broadcast inputs and NV weight vectors for M x NV multiply-adds, of which columns /
// padded columns are useful; ties go to the taller tile. FSRCNN's 81 columns (scatter.cpp) take 2 x 48 with AVX-512,
// and with AVX2 4 x 3 rather than 13 x 1 (the one padding least, 88 columns, at 1.17 loads per useful product) or
// 6 x 2: 4 x 3 and 6 x 2 ran 1.11-1.13x as fast as 13 x 1 on FSRCNN's layer and 1.03-1.08x on DCGAN's last (48
// columns), Zen 1; 4 x 3 against 6 x 2: DCGAN's last 1.06x, FSRCNN's 0.96-0.98x (Zen 3), all timed in turns.
int fewest_loads_vectors(const KernelSet& k, std::int64_t columns);

// Sets the planar fields of `set` (planar_rows, planar_mr, planar_gemm, interleave, planar_target) from
// planar_kernels.cpp, dispatched like the caller's (best_kernels calls it).
void add_planar_kernels(KernelSet& set);
// Sets the Winograd transforms of `set` (and winograd_target) from winograd_kernels.cpp, likewise.
void add_winograd_kernels(KernelSet& set);
// Sets the weight-gradient tiles of `set` (and weight_grad_target) from weight_gradient_kernels.cpp, likewise.
void add_weight_gradient_kernels(KernelSet& set);

// Every compiled target this CPU supports, best first (names as in KernelSet::target).
std::vector<std::string> supported_targets();

// Restricts best_kernels() to the named target (tests use it to run every target in turn); "" lifts the restriction.
// Returns false if the target is not compiled in or not supported by this CPU.
bool force_target(const std::string& name);

}  // namespace tdconv::engine
