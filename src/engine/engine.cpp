// The SIMD engine: every supported problem becomes, per output row and per run of pixels with the same valid taps,
// calls of one register-tiled microkernel (see axis.hpp for the decomposition and kernels.hpp for the tile
// contract). Threads split output tiles only, and each output element is computed whole by one tile call, so
// results are bitwise identical for any thread count.
#include "engine/engine.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include <hwy/cache_control.h>

#include "engine/axis.hpp"
#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"
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
// A work item's columns span kPixelsPerWorkItem pixels of each phase of x, up to this many phases (see Column).
constexpr std::int64_t kMaxColumnPhases = 16;
// Outputs over this size are written with non-temporal stores by the tiles that compute their outputs in one pass
// (and by the channels_first write-back): 4 MiB measured, timed in turns against 16 MiB, 1.1-1.8x faster on the
// 8-16 MiB outputs of decoder layers (dw_up2 1.65-1.8x, unet_up4 1.1-1.24x, WaveNet 1.1-1.2x, both
// layouts and thread counts) and neutral below. Tiles of several passes stream nothing: their last pass stores
// onto lines the earlier passes brought into cache, and streaming them measured neutral to 7% slower.
constexpr double kStreamBytes = 4.0 * 1024 * 1024;
// Packed weights of one gemm pass, in L2 (see choose_passes). A tile whose packed weights all fit adds every product
// in one pass, with no partial sums stored and reloaded (timed in turns: HiFi-GAN's up3, 64 KiB, 5-9% faster in
// both layouts and at 2 threads; the other small-weight layers within -3..+4%; at 4.7 MiB, ASPP's, one pass was 1.6x
// slower).
constexpr std::int64_t kPassBytes = 256 * 1024;
constexpr std::int64_t kMinChunkChannels = 8;
// Scratch for channels_first sources copied into channels_last (a chunk of images, per executing call). 12 MiB,
// so that with the per-thread staging (kStagedBytes each) a plan's workspace stays within 16 MiB; every suite
// layer's image fits (the largest, ASPP's, is 8.9 MiB).
constexpr double kRelayoutBytes = 12.0 * 1024 * 1024;
// Packed weights of a group up to which every block of them runs on one band of input before the next band (TCN's
// 256 -> 256 channels, 768 KiB of weights: 115 -> 141 GFLOP/s at batch 8, where the input had been read from memory
// once per block). Half the 2 MiB L2 of the machine measured, all of the 1 MiB of a Zen 4.
constexpr double kInnerBlocksBytes = 1024.0 * 1024;
constexpr std::int64_t kMinItems = 32;
// ... or this many for gemm tiles whose block of packed weights outgrows kInnerBlocksBytes: every item streams its
// block's weights from L3 (ASPP: 4.7 MiB per block of 64 output channels), so fewer, larger items read them fewer
// times. ASPP with 8 items against 44 (in turns, one process, Intel Xeon): rate 18 channels_first 1.12x at 2 threads
// and 1.04-1.05x at 1, channels_last 1.05x and 1.01-1.02x; rate 6 channels_first 1.06-1.08x at 2 threads, 1.00x at
// 1 (channels_last runs Winograd); DCGAN g2 and HiFi-GAN up1 (2 MiB per block) within -1..+2%.
constexpr std::int64_t kMinItemsLargeWeights = 8;
// Staged outputs of one work item (channels_first destinations, see run_item): in L2 until written back.
constexpr std::int64_t kStagedBytes = 256 * 1024;
// ... up to this with large weights (see choose_passes, which sizes the items).
constexpr std::int64_t kMaxStagedBytesLargeWeights = 1024 * 1024;

// Pixels [j_begin, j_end) of one sequence of the x axis.
struct XBlock {
  int sequence;
  std::int64_t j_begin, j_end;
};

// The pixels along x of one work item: the pixels of every sequence in output columns [x_begin, x_end), about
// kPixelsPerWorkItem per sequence. A transposed convolution's phases, a stride apart, are computed by one item:
// - staging a channels_first destination, the write-back stores whole runs of each channel's row (written back one
//   phase at a time, each destination line had been written `stride` times by as many items, and its pages touched
//   once per 16 pixels);
// - writing a channels_last destination directly, the two threads no longer write the pixels of one line at once.
//   With an item per phase, consecutive items (one per thread) had been neighbouring phases of the same rows: FCN-8s
//   (8 phases of 21-channel pixels, 84 bytes, so every line is shared by two phases) took 1.03-1.29x as long at 2
//   threads (timed in turns, 5 processes), the same at 1 thread; the other transposed layers within -3..+7%.
struct Column {
  std::int64_t x_begin = 0, x_end = 0;
  std::vector<XBlock> parts;  // empty where listed per item (lists_parts_per_item)
};

// Columns of more than kMaxColumnPhases phases hold a pixel or two of each and list them when an item runs (see
// choose_columns).
bool lists_parts_per_item(const Axis& x) { return static_cast<std::int64_t>(x.sequences.size()) > kMaxColumnPhases; }

enum class Kind { gemm, depthwise, dot };

struct State final : PlanState {
  KernelSet kernels;
  TileFn tile = nullptr;
  int rows = 1;  // tile height (pixels or images)
  std::int64_t nr = 1;  // output channels per tile
  std::array<Axis, 3> axes;  // z, y, x; leading unused dimensions are trivial
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
  // Output channels come in `tile_groups` x `blocks` tiles of nr; a tile's input channels start at
  // src_group_step * group + src_block_step * block, its outputs at dst_group_step * group + nr * block.
  std::int64_t tile_groups = 1, blocks = 1, k = 1;
  std::int64_t blocks_per_item = 1;  // consecutive channel blocks one work item computes
  std::int64_t rows_per_item = 1;    // consecutive output rows one work item computes
  // Gemm tiles add their products in passes (see choose_passes): tap group by tap group, and within one, input
  // channel chunk by chunk. Other kernels take every tap and channel in one pass.
  std::int64_t k_chunk = 1;
  int taps_per_pass = 1, tap_groups = 1;
  // A tap's place in its pass order: (z, y, x) positions in the axes' sequence tap lists as digits of radix
  // tap_radix (the longest list along each axis). Tile (z, y, x) positions, not places in a tile's list of valid
  // taps, so that the tiles of a pass read one tap's weights wherever some of their taps land in padding.
  std::array<std::int64_t, 3> tap_radix{1, 1, 1};
  std::int64_t src_group_step = 0, src_block_step = 0, dst_group_step = 0, nr_limit = 1;
  // Packed weights of tap t of tile (group, block): group * b_group + block * b_block + t * b_tap.
  std::int64_t b_group = 0, b_block = 0, b_tap = 0, packed_floats = 0;
  std::vector<Column> columns;
  // Tiles run across the batch (same pixel of several images) instead of along x: chosen when the runs of pixels
  // with the same valid taps are shorter than a tile, as in small images with a large batch (DCGAN).
  bool batch_tiles = false;
  // Which of a group's output channel blocks and its input rows stay in cache while the other streams past: with
  // blocks outermost (the default) consecutive items reuse one block of packed weights while the input streams,
  // with runs_inner consecutive items reuse one band of input under every block's weights. runs_inner when all the
  // group's packed weights fit in L2 (see kInnerBlocksBytes).
  bool runs_inner = false;
  // channels_first problems whose images fit (see relayout_images): the same problem in channels_last for a chunk
  // of images, and its state. Everything above is then unused.
  Problem chunk;
  std::shared_ptr<const State> inner;
  bool dst_channels_first = false;  // inner state only: write the destination in channels_first
  // Inner state only: floats between the images of the copied source (see copied_image_stride); 0 if dense.
  std::int64_t src_image_stride = 0;
  bool stream = false;  // non-temporal output stores (see TileCall::stream)
};

struct Packed final : PackedData {
  util::AlignedFloats weights;
};

// A depthwise tile: its kernel, vectors of channels and floats per vector.
struct DepthwiseTiles {
  TileFn tile = nullptr;
  int vectors = 0, lanes = 0;
};

// Vectors of channels per depthwise tile: the widest that divides the channels among tiles of at least 6 pixels,
// else the widest that divides them. Each tap loads a vector of weights for the tile's pixels, and AVX2's 2-pixel
// tile (four vectors) loaded 1.5 vectors per multiply-add: its 6 x 2 tile (with the prefetch in DepthwiseBlock)
// took 0.74x of its time on dw_up2 at 1 thread, 0.82x at 2, and 1.05x on the atrous depthwise layer (Zen 1, in
// turns in one process). AVX-512's four-vector tile has 6 pixels. Channels that no whole number of the target's
// vectors divides may still fill its narrow ones (KernelSet::depthwise_narrow: 8 floats on AVX-512).
DepthwiseTiles depthwise_tiles(const KernelSet& k, std::int64_t channels) {
  for (const bool narrow : {false, true}) {
    const int lanes = narrow ? k.depthwise_narrow_lanes : k.lanes;
    if (lanes == 0) continue;
    for (const int min_rows : {6, 1}) {
      for (int v = kMaxVectorsPerTile; v >= 1; --v) {
        if (channels % (v * lanes) == 0 && k.mr[v] >= min_rows) {
          return {narrow ? k.depthwise_narrow[v] : k.depthwise[v], v, lanes};
        }
      }
    }
  }
  return {};
}

// Few output channels with enough input channels to fill vectors: the dot kernel (input channels as lanes) beats
// a gemm tile whose lanes would mostly hold padding.
bool wants_dot(const Problem& p) {
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  return ocg <= kMaxVectorsPerTile && icg >= 8 && icg >= 2 * ocg;
}

// Tile rows (pixels, or images) that make a tile's weight loads pay; see choose_tiles.
constexpr int kTallTileRows = 6;

// How the tiles of each kind cover channels and where their packed weights live.
void choose_tiles(Kind kind, const Problem& p, std::int64_t taps, bool short_runs, State& s) {
  const int lanes = s.kernels.lanes;
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  switch (kind) {
    case Kind::depthwise: {  // one tile group; blocks of nr channels, weights [tap][channel]
      const DepthwiseTiles tiles = depthwise_tiles(s.kernels, p.groups);
      s.tile = tiles.tile, s.rows = s.kernels.mr[tiles.vectors], s.nr = tiles.vectors * tiles.lanes;
      s.tile_groups = 1, s.blocks = p.groups / s.nr, s.k = 1;
      s.src_block_step = s.nr, s.nr_limit = p.out_channels;
      s.b_block = s.nr, s.b_tap = p.groups;
      s.blocks_per_item = s.blocks;
      break;
    }
    case Kind::dot: {  // one tile per group holding all its outputs; weights [group][tap][lane block][output][lane]
      const std::int64_t lane_blocks = (icg + lanes - 1) / lanes;
      s.tile = s.kernels.dot[ocg], s.rows = s.kernels.dot_mr[ocg], s.nr = ocg;
      s.tile_groups = p.groups, s.blocks = 1, s.k = icg;
      s.src_group_step = icg, s.dst_group_step = ocg, s.nr_limit = ocg;
      s.b_tap = lane_blocks * ocg * lanes, s.b_group = taps * s.b_tap;
      break;
    }
    case Kind::gemm: {  // weights [group][block][tap][input channel][nr outputs]
      // The widest tile measured best (6 x 64 with AVX-512): narrower tiles with more rows lost 5-30% on the suite.
      // AVX2's widest tile has 2 rows (2 x 4 vectors: 4 weight loads per 8 multiply-adds); its tallest wide one,
      // 6 x 2 (2 loads and 6 broadcasts per 12), is taken where
      // - runs of pixels with the same taps are short and tiles run across the batch: the 2 x 4 tile left DCGAN's
      //   small images in runs of 1 and 2 pixels (half the time in one-pixel tiles); the 6 x 2 tile across the batch
      //   ran DCGAN's first two layers 1.13x and 1.16x as fast, timed in turns;
      // - the output channels take two or more blocks of the widest tile anyway (so its one pass over each input
      //   pixel saves nothing) and are a whole number of the tall tile's blocks: on the suite's layers with 64 to
      //   512 output channels, 0.998-1.075x at 1 thread and 1.003-1.047x at 2, channels_last, in turns (HiFi-GAN
      //   up1 1.075x and 1.039x, U-Net up4 1.035x and 1.014x); where 32 channels fit one wide block (the 3D decoder
      //   layers) it was 0.98-1.01x, and FCN-8s' 21 channels in two 16-channel blocks 0.89-0.96x.
      const int widest = static_cast<int>(std::min<std::int64_t>((ocg + lanes - 1) / lanes, kMaxVectorsPerTile));
      int tall = widest;
      while (tall > 1 && s.kernels.mr[tall] < kTallTileRows) --tall;
      const bool blocks_anyway = ocg >= 2 * widest * lanes && ocg % (tall * lanes) == 0;
      const int v = short_runs || blocks_anyway ? tall : widest;
      s.tile = s.kernels.gemm[v], s.rows = s.kernels.mr[v], s.nr = v * lanes;
      s.tile_groups = p.groups, s.blocks = (ocg + s.nr - 1) / s.nr, s.k = icg;
      s.src_group_step = icg, s.dst_group_step = ocg, s.nr_limit = ocg;
      s.b_tap = icg * s.nr, s.b_block = taps * s.b_tap, s.b_group = s.blocks * s.b_block;
      break;
    }
  }
  s.packed_floats = kind == Kind::depthwise ? taps * p.groups : s.tile_groups * s.b_group;
}

// Gemm tiles add their products in passes, each over a group of taps and a chunk of input channels whose packed
// weights (taps x channels x nr floats) fit in L2 (kPassBytes), and a work item spans enough output rows for many
// tiles to reuse each pass's weights. Without passes every tile streamed all its weights from L3 (ASPP: 4.7 MiB per
// block of 64 output channels). Passes that fit L1 (32 KiB) had been taken by AVX-512's tall tiles on AMD CPUs, from
// a measurement of an earlier kernel; on this project's Zen 4 (1 MiB L2 per core, 32 KiB L1) 256 KiB passes now run
// ASPP rate 18 1.09-1.15x and DCGAN g2 1.14x as fast at 1 thread, channels_last (and 1.1-1.35x at 2 threads and
// channels_first; 64 and 128 KiB in between, 512 KiB within 3% of 256), as they did on an Intel Xeon (ASPP
// 1.08-1.12x, DCGAN g2 1.05-1.07x): fewer partial sums stored and reloaded, fewer and longer kernel calls, each tap's
// input slice read fewer times. AVX2's tiles measured the same way (ASPP 1.07-1.08x with 256 KiB, Zen 1).
void choose_passes(Kind kind, const Problem& p, State& s) {
  s.k_chunk = s.k;
  s.taps_per_pass = std::numeric_limits<int>::max();
  if (kind == Kind::gemm) {
    std::int64_t taps = 1;  // the most taps one tile can have
    for (int d = 0; d < 3; ++d) {
      std::size_t most = 1;
      for (const AxisSequence& seq : s.axes[d].sequences) most = std::max(most, seq.taps.size());
      s.tap_radix[d] = static_cast<std::int64_t>(most);
      taps *= s.tap_radix[d];
    }
    const bool one_pass = taps * s.k * s.nr * static_cast<std::int64_t>(sizeof(float)) <= kPassBytes;
    const std::int64_t pass_steps = kPassBytes / (s.nr * static_cast<std::int64_t>(sizeof(float)));
    const std::int64_t steps = one_pass ? taps * s.k : std::max<std::int64_t>(kMinChunkChannels, pass_steps);
    const std::int64_t chunks = (s.k + steps - 1) / steps;
    s.k_chunk = (s.k + chunks - 1) / chunks;  // equal chunks
    s.taps_per_pass = static_cast<int>(std::clamp<std::int64_t>(steps / s.k_chunk, 1, taps));
    s.tap_groups = static_cast<int>((taps + s.taps_per_pass - 1) / s.taps_per_pass);
  }
  s.runs_inner = s.blocks / s.blocks_per_item > 1 &&
                 static_cast<double>(s.b_group) * sizeof(float) <= kInnerBlocksBytes;
  // Rows per item: about kPixelsPerWorkItem pixels, but at least kMinItems items (kMinItemsLargeWeights) for the
  // threads to share.
  std::int64_t row_pixels = 0;
  for (const Column& c : s.columns) {
    std::int64_t pixels = lists_parts_per_item(s.axes[2]) ? c.x_end - c.x_begin : 0;
    for (const XBlock& b : c.parts) pixels += b.j_end - b.j_begin;
    row_pixels = std::max(row_pixels, pixels);
  }
  if (s.batch_tiles) row_pixels *= p.batch;
  const std::int64_t rows = (s.batch_tiles ? 1 : p.batch) * s.out[0] * s.out[1];
  const std::int64_t other =
      static_cast<std::int64_t>(s.columns.size()) * s.tile_groups * (s.blocks / s.blocks_per_item);
  // Staged items take as many pixels as kStagedBytes holds: their write-back touches each destination page once
  // per item and channel, and a page walk costs far more than the tiles save by being short (3D U-Net: 64-pixel
  // rows of 32 planes a MiB apart, 4 rows per item, spent more time writing back than computing).
  std::int64_t pixels = kPixelsPerWorkItem;
  if (s.dst_channels_first) {
    const std::int64_t channels = s.blocks_per_item * s.nr;
    pixels = std::max(pixels, static_cast<std::int64_t>(kStagedBytes / sizeof(float)) / channels);
  }
  s.rows_per_item = std::max<std::int64_t>(1, pixels / std::max<std::int64_t>(1, row_pixels));
  // ... and staged items at least a cache line of each plane: the write-back of rows narrower than a line (DCGAN's
  // 4- and 8-pixel rows, in items of one row for the threads) wrote every line in pieces, item after item, each
  // piece a partial store to a line long gone from L1. With a line's worth of rows per item (fewer items than
  // kMinItems), channels_first DCGAN g1 ran 1.2x as fast at 1 thread and 1.9x at 2, g2 1.01x and 1.00x (in turns,
  // AVX-512).
  std::int64_t min_rows = 1;
  if (s.dst_channels_first) {
    std::int64_t narrowest = s.out[2];
    for (const Column& c : s.columns) narrowest = std::min(narrowest, c.x_end - c.x_begin);
    constexpr auto kLine = static_cast<std::int64_t>(util::kCacheLineBytes / sizeof(float));
    min_rows = std::min(s.rows_per_item, (kLine + narrowest - 1) / std::max<std::int64_t>(1, narrowest));
  }
  const bool large_weights = static_cast<double>(s.b_block) * sizeof(float) > kInnerBlocksBytes;
  const std::int64_t min_items = kind == Kind::gemm && large_weights ? kMinItemsLargeWeights : kMinItems;
  if (kind == Kind::gemm && large_weights) {
    // As few items as kMinItemsLargeWeights allows, not kPixelsPerWorkItem's: each reads its block's weights once
    // per pass, from L3 for its first tiles. ASPP rate 18 (20 items of 7 rows and 4 blocks before, 8 of 17 rows
    // now), timed in turns (Intel Xeon): channels_last 1.03x at 1 thread and 1.06x at 2, channels_first 1.02x and
    // 1.00x; ASPP rate 6 (channels_first), DCGAN g2, HiFi-GAN up1 and U-Net up1 within 1% either way. Staged items
    // (channels_first) within kMaxStagedBytesLargeWeights.
    const std::int64_t bands = std::max<std::int64_t>(1, (min_items + other - 1) / other);
    std::int64_t rows_per_item = std::max(s.rows_per_item, (rows + bands - 1) / bands);
    if (s.dst_channels_first) {
      const std::int64_t row_bytes = row_pixels * s.blocks_per_item * s.nr * static_cast<std::int64_t>(sizeof(float));
      rows_per_item = std::min(rows_per_item, std::max(s.rows_per_item, kMaxStagedBytesLargeWeights / row_bytes));
    }
    s.rows_per_item = rows_per_item;
  }
  while (s.rows_per_item > min_rows && ((rows + s.rows_per_item - 1) / s.rows_per_item) * other < min_items) {
    s.rows_per_item = std::max(min_rows, s.rows_per_item / 2);
  }
}

// The pixels of each x phase in output columns [x_begin, x_end), in increasing phase order, into `parts`.
void list_parts(const Axis& x, std::int64_t x_begin, std::int64_t x_end, std::vector<XBlock>& parts) {
  parts.clear();
  const auto phases = static_cast<std::int64_t>(x.sequences.size());
  const auto add = [&](std::int64_t q) {
    const auto [j_begin, j_end] = pixels_in(x.sequences[static_cast<std::size_t>(q)], x_begin, x_end);
    if (j_begin < j_end) parts.push_back({static_cast<int>(q), j_begin, j_end});
  };
  const std::int64_t columns = x_end - x_begin;
  if (columns >= phases) {
    for (std::int64_t q = 0; q < phases; ++q) add(q);
    return;
  }
  // Output o is in phase o mod phases: the columns' own phases, a range that may wrap (not a pass over every phase).
  const std::int64_t first = x_begin % phases, wrapped = std::max<std::int64_t>(0, first + columns - phases);
  for (std::int64_t q = 0; q < wrapped; ++q) add(q);
  for (std::int64_t q = first; q < first + columns - wrapped; ++q) add(q);
}

void choose_columns(State& s) {
  const Axis& x = s.axes[2];
  s.columns.clear();
  const auto phases = static_cast<std::int64_t>(x.sequences.size());
  // Far more phases than kMaxColumnPhases (a stride of thousands, its phases mostly without taps) would make a
  // column, and the staging of a channels_first item, as wide as the stride: 100 MB of workspace at stride 100000.
  // Such columns hold a pixel or two of each of their phases, listed when an item runs (lists_parts_per_item): kept
  // in the plan, they took 24 bytes per output column (65 MB, and 50 ms to plan, for 2.7 million).
  const std::int64_t width = kPixelsPerWorkItem * std::min(phases, kMaxColumnPhases);
  for (std::int64_t x0 = 0; x0 < x.output; x0 += width) {
    Column c{x0, std::min(x.output, x0 + width), {}};
    if (!lists_parts_per_item(x)) list_parts(x, c.x_begin, c.x_end, c.parts);
    s.columns.push_back(std::move(c));
  }
}

// Images per chunk that a channels_first problem copies into channels_last for the kernels (a divisor of the
// batch, so that all chunks share one plan state), within kRelayoutBytes of scratch; 0 if one image's source is
// larger, and then only the gemm kernel runs it, reading channels a plane apart and storing tiles transposed.
// The destination is never copied whole: each work item stages its outputs and writes them back (run_item).
std::int64_t relayout_images(const Problem& p) {
  const double image =
      static_cast<double>(element_count(src_shape(p), "src")) / static_cast<double>(p.batch) * sizeof(float);
  if (image > kRelayoutBytes) return 0;
  std::int64_t n = std::min<std::int64_t>(p.batch, static_cast<std::int64_t>(kRelayoutBytes / image));
  while (p.batch % n != 0) --n;
  return n;
}

// Floats between images in the copy of a chunk of images. Tiles across the batch read one pixel of 6 images, and
// prefetch the next 6: images a multiple of 4 KiB apart put all 12 lines in one set of the 8-way L1 (addresses 4 KiB
// apart share a set), where the weights streaming past evicted them. One cache line more between images spreads
// them over 12 sets. DCGAN g2 (512 channels of 4x4 pixels, 32 KiB an image), timed in turns with and without the
// extra line: channels_last 1.040x (1 thread) and 1.071x (2 threads), copy included; channels_first 1.134x and
// 1.151x. Without the copy, its channels_last layer took 170-179 ms in two processes of several (with 504 or 520
// channels, 95-101 ms).
std::int64_t copied_image_stride(Kind kind, const State& inner, std::int64_t image_floats) {
  constexpr std::int64_t kSetPeriod = 4096 / sizeof(float);
  constexpr auto kLine = static_cast<std::int64_t>(util::kCacheLineBytes / sizeof(float));
  const bool conflicts = kind == Kind::gemm && inner.batch_tiles && image_floats % kSetPeriod == 0;
  return conflicts ? image_floats + kLine : image_floats;
}

// Gemm weights, [group][block][tap][input channel][nr outputs], copied a box of nr outputs x a few input channels x
// all taps at a time: the box's lines of the user's tensor (whichever of its dimensions is contiguous) and of the
// packed weights stay in L1 while it is copied. Element by element in the packed order, every read of a torch conv
// tensor landed on a new line: U-Net up1's 8 MiB took 23 ms to pack (three forward calls), ASPP's 18 MiB 45 ms.
void pack_gemm(const Problem& p, const State& s, const float* w, float* out) {
  const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const WeightStrides from = weight_strides(p, taps);
  constexpr std::int64_t kBoxFloats = 4096;  // 16 KiB read, 16 KiB written
  const std::int64_t box_channels = std::max<std::int64_t>(1, kBoxFloats / (s.nr * taps));
  for (std::int64_t g = 0; g < p.groups; ++g)
    for (std::int64_t block = 0; block < s.blocks; ++block) {
      const std::int64_t n0 = block * s.nr, width = std::min(s.nr, ocg - n0);
      float* to_block = out + g * s.b_group + block * s.b_block;
      for (std::int64_t q0 = 0; q0 < icg; q0 += box_channels) {
        const std::int64_t q_end = std::min(icg, q0 + box_channels);
        for (std::int64_t t = 0; t < taps; ++t)
          for (std::int64_t q = q0; q < q_end; ++q) {
            const float* src = w + from.at(g, q, n0, t);
            float* dst = to_block + t * s.b_tap + q * s.nr;
            for (std::int64_t n = 0; n < width; ++n) dst[n] = src[n * from.out];
          }
      }
    }
}

void pack(Kind kind, const Problem& p, const State& s, const float* w, util::AlignedFloats& out) {
  out.assign(static_cast<std::size_t>(s.packed_floats), 0.0f);
  if (kind == Kind::gemm) return pack_gemm(p, s, w, out.data());
  const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
  const std::int64_t lanes = s.kernels.lanes;
  const WeightStrides from = weight_strides(p, taps);
  for (std::int64_t g = 0; g < p.groups; ++g)
    for (std::int64_t n = 0; n < ocg; ++n)
      for (std::int64_t t = 0; t < taps; ++t)
        for (std::int64_t q = 0; q < icg; ++q) {
          const std::int64_t at = kind == Kind::depthwise
                                      ? t * s.b_tap + g
                                      : g * s.b_group + t * s.b_tap + ((q / lanes) * ocg + n) * lanes + q % lanes;
          out[static_cast<std::size_t>(at)] = w[from.at(g, q, n, t)];
        }
}

class Engine final : public detail::ForwardOnlyImplementation {
 public:
  explicit Engine(Kind kind) : kind_(kind) {}

  std::string name() const override {
    switch (kind_) {
      case Kind::depthwise: return "depthwise_simd";
      case Kind::dot: return "dot_simd";
      case Kind::gemm: return "gemm_simd";
    }
    return "?";
  }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    // The depthwise and dot kernels load channels as vectors, which channels_first spreads a plane apart.
    if (p.layout != Layout::channels_last && kind_ != Kind::gemm && relayout_images(p) == 0) {
      return "channels_first with images too large to copy into channels_last runs on the gemm kernel";
    }
    const bool depthwise = p.in_channels == p.groups && p.out_channels == p.groups;
    if (kind_ == Kind::depthwise) {
      if (!depthwise) return "not depthwise (one channel per group)";
      const KernelSet kernels = best_kernels();
      if (depthwise_tiles(kernels, p.groups).tile == nullptr) {
        const int lanes = kernels.depthwise_narrow_lanes ? kernels.depthwise_narrow_lanes : kernels.lanes;
        return "channels not a multiple of the vector width (" + std::to_string(lanes) + " floats)";
      }
    }
    if (kind_ == Kind::dot && !wants_dot(p)) return "more than 4 output channels per group, or too few input channels";
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override { return make_state(p); }

  // A state that runs on a copy of the source, a chunk of images at a time (forward_through_copy): channels_first
  // sources copied into channels_last, and channels_last ones read across the batch with images a multiple of
  // 4 KiB apart, copied further apart (copied_image_stride). Otherwise a state that reads the source in place.
  std::shared_ptr<State> make_state(const Problem& p) const {
    const std::int64_t images = relayout_images(p);
    const std::int64_t image_floats = element_count(src_shape(p), "src") / p.batch;
    std::shared_ptr<State> direct;  // channels_last: reading the source in place, unless its images conflict
    if (p.layout == Layout::channels_last) {
      direct = make_direct_state(p);
      if (images == 0 || copied_image_stride(kind_, *direct, image_floats) == image_floats) return direct;
    } else if (images == 0) {
      return make_direct_state(p);
    }
    auto s = std::make_shared<State>();
    s->chunk = p;
    s->chunk.layout = Layout::channels_last;
    s->chunk.batch = images;
    auto inner = make_direct_state(s->chunk);
    inner->src_image_stride = copied_image_stride(kind_, *inner, image_floats);
    if (p.layout == Layout::channels_last) {
      if (inner->src_image_stride == image_floats) return direct;  // a chunk too small to run across the batch
    } else {
      inner->dst_channels_first = true;
      choose_passes(kind_, s->chunk, *inner);
    }
    s->inner = inner;
    return s;
  }

  std::shared_ptr<State> make_direct_state(const Problem& p) const {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    Geometry geometry = make_geometry(p);
    s->axes = std::move(geometry.axes);
    s->kernel = geometry.kernel, s->in = geometry.in, s->out = geometry.out;
    const auto& x = s->axes[2];
    std::int64_t pixels = 0, segments = 0;
    for (const AxisSequence& seq : x.sequences) {
      pixels += seq.count;
      segments += static_cast<std::int64_t>(seq.segments.size());
    }
    const bool short_runs = p.batch > 1 && pixels < segments * kTallTileRows;
    choose_tiles(kind_, p, s->kernel[0] * s->kernel[1] * s->kernel[2], short_runs, *s);
    s->batch_tiles = p.batch > 1 && pixels < segments * s->rows;
    // Large outputs are streamed: write-allocate reads cost more than the cache could give back, since the rest of
    // the layer evicts them anyway.
    s->stream = static_cast<double>(element_count(dst_shape(p), "dst")) * sizeof(float) > kStreamBytes;
    choose_columns(*s);
    choose_passes(kind_, p, *s);
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    auto packed = std::make_shared<Packed>();
    const auto& s = static_cast<const State&>(*state);
    pack(kind_, p, s.inner ? *s.inner : s, static_cast<const float*>(weights), packed->weights);
    packed->bytes = packed->weights.size() * sizeof(float);
    return packed;
  }

  // The channels_last copy of a chunk of images (channels_first sources), and per thread the buffers of
  // run_item and run_row.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    if (s.inner) {
      return static_cast<std::size_t>(s.chunk.batch * s.inner->src_image_stride) * sizeof(float) +
             forward_workspace_bytes(s.chunk, s.inner.get(), threads);
    }
    const std::int64_t taps = s.kernel[0] * s.kernel[1] * s.kernel[2];
    std::int64_t bytes = taps * 2 * static_cast<std::int64_t>(sizeof(const float*)) +
                         (s.kernel[0] + s.kernel[1]) * static_cast<std::int64_t>(sizeof(TapHit)) +
                         s.blocks_per_item * static_cast<std::int64_t>(sizeof(BlockSetup)) +
                         s.nr * static_cast<std::int64_t>(sizeof(float));
    if (lists_parts_per_item(s.axes[2])) {  // a column's parts, listed per item
      std::int64_t width = 0;
      for (const Column& c : s.columns) width = std::max(width, c.x_end - c.x_begin);
      bytes += width * static_cast<std::int64_t>(sizeof(XBlock));
    }
    if (s.dst_channels_first) {  // the staging of run_item
      std::int64_t width = 0;
      for (const Column& c : s.columns) width = std::max(width, c.x_end - c.x_begin);
      bytes += s.rows_per_item * (s.batch_tiles ? p.batch : 1) * width * s.blocks_per_item * s.nr *
               static_cast<std::int64_t>(sizeof(float));
    }
    return static_cast<std::size_t>(threads * bytes);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    if (s.inner) return forward_through_copy(p, s, args);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    const std::int64_t bands = (output_rows(p, s) + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t items =
        bands * static_cast<std::int64_t>(s.columns.size()) * s.tile_groups * (s.blocks / s.blocks_per_item);
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < items; ++item) {
      run_item(p, s, packed, args, item);
      if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
    }
  }

  // Chunks of images are copied for the kernels (see make_state): channels_first sources into channels_last, which
  // the kernels read channels as consecutive floats in (a plane apart, one TLB entry per channel, they ran 2-20x
  // slower), and channels_last ones with their images further apart. For channels_first, each work item stages its
  // outputs in channels_last and writes them to the destination when it is done (run_item, write_back).
  void forward_through_copy(const Problem& p, const State& s, const ForwardArgs& args) const {
    thread_local util::AlignedFloats copy;
    const Problem& chunk = s.chunk;
    const std::int64_t src_image = element_count(src_shape(p), "src") / p.batch;
    const std::int64_t dst_image = element_count(dst_shape(p), "dst") / p.batch;
    const std::int64_t stride = s.inner->src_image_stride;
    copy.resize(static_cast<std::size_t>(chunk.batch * stride));
    float* const buffer = copy.data();  // the caller's: in the parallel loop, `copy` names each thread's own
    const auto* src = static_cast<const float*>(args.src);
    auto* dst = static_cast<float*>(args.dst);
    for (std::int64_t n0 = 0; n0 < p.batch; n0 += chunk.batch) {
      if (p.layout == Layout::channels_first) {
        to_channels_last(s.inner->kernels, src + n0 * src_image, buffer, stride, chunk.batch, p.in_channels,
                         src_image / p.in_channels, true);
      } else {
#pragma omp parallel for schedule(static)
        for (std::int64_t n = 0; n < chunk.batch; ++n) {
          std::memcpy(buffer + n * stride, src + (n0 + n) * src_image,
                      static_cast<std::size_t>(src_image) * sizeof(float));
        }
      }
      forward(chunk, {s.inner.get(), buffer, args.weights, args.bias, dst + n0 * dst_image});
    }
  }

 private:
  // Where one block of nr output channels of a tile group reads and writes.
  struct BlockSetup {
    std::int64_t channel0;      // first output channel
    std::int64_t src_channel0;  // first input channel
    const float* b_base;        // packed weights of tap 0
    const float* init;          // nr bias values (zero padded) or null
    int nr_valid;
  };

  // Where the tiles of one work item read and write; shared by the rows of the item.
  struct ItemContext {
    const float* src;
    float* dst;
    std::int64_t src_unit, src_channel, src_image;  // element (n, c, i) at n * image + c * channel + i * unit
    std::int64_t dst_unit, dst_channel, dst_image;
    const std::vector<BlockSetup>* setups;  // the output channel blocks of the item
    // Where tiles write when the destination is channels_first (see run_item), or null.
    float* staged = nullptr;
    std::int64_t staged_pixel = 0, staged_image = 0, staged_row = 0;
    std::int64_t staged_x0 = 0;  // output column of the staging's first pixel
  };

  void run_item(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args,
                std::int64_t item) const {
    // item = ((g * block_runs + run) * bands + band) * columns + column, or with runs_inner
    // ((g * bands + band) * columns + column) * block_runs + run. A run is one block of output channels (gemm, dot)
    // or all of them (depthwise: each pixel's channels are written together, whole cache lines, which the
    // memory-bound depthwise layers need). A band is rows_per_item consecutive output rows.
    const auto xblocks = static_cast<std::int64_t>(s.columns.size());
    const std::int64_t rows_total = output_rows(p, s);
    const std::int64_t bands = (rows_total + s.rows_per_item - 1) / s.rows_per_item;
    const std::int64_t runs = s.blocks / s.blocks_per_item;
    std::int64_t rest = item, run = 0;
    if (s.runs_inner) run = rest % runs, rest /= runs;
    const std::int64_t xb = rest % xblocks;
    const std::int64_t band = (rest / xblocks) % bands;
    if (!s.runs_inner) run = (rest / (xblocks * bands)) % runs;
    const std::int64_t g = rest / (xblocks * bands * (s.runs_inner ? 1 : runs));

    thread_local util::AlignedFloats init_tail;
    thread_local std::vector<BlockSetup> setups;
    setups.clear();
    for (std::int64_t block = run * s.blocks_per_item; block < (run + 1) * s.blocks_per_item; ++block) {
      BlockSetup b;
      b.channel0 = g * s.dst_group_step + block * s.nr;
      b.src_channel0 = g * s.src_group_step + block * s.src_block_step;
      b.b_base = packed.weights.data() + g * s.b_group + block * s.b_block;
      b.nr_valid = static_cast<int>(std::min<std::int64_t>(s.nr, s.nr_limit - block * s.nr));
      b.init = nullptr;
      if (args.bias != nullptr) {
        // Tiles read nr init values; a partial last block gets a zero-padded copy.
        b.init = static_cast<const float*>(args.bias) + b.channel0;
        if (b.nr_valid != s.nr) {
          init_tail.assign(static_cast<std::size_t>(s.nr), 0.0f);
          std::copy(b.init, b.init + b.nr_valid, init_tail.begin());
          b.init = init_tail.data();
        }
      }
      setups.push_back(b);
    }

    const bool last = p.layout == Layout::channels_last;
    const bool dst_last = last && !s.dst_channels_first;
    const std::int64_t in_plane = s.in[0] * s.in[1] * s.in[2], out_plane = s.out[0] * s.out[1] * s.out[2];
    ItemContext ctx;
    const Column& column = s.columns[static_cast<std::size_t>(xb)];
    thread_local std::vector<XBlock> listed_parts;
    const bool listed = lists_parts_per_item(s.axes[2]);
    if (listed) list_parts(s.axes[2], column.x_begin, column.x_end, listed_parts);
    const std::vector<XBlock>& parts = listed ? listed_parts : column.parts;
    if (s.dst_channels_first) {
      // The item's outputs, channels_last: (image, row of the band, output column, channel), the image only with
      // tiles across the batch; written to the channels_first destination plane by plane once the item is done
      // (write_back). An image's rows are consecutive, so that one transposition takes all of them where the
      // column spans whole rows (DCGAN g1's 4-pixel rows, a transposition each, had taken half the layer's time).
      thread_local util::AlignedFloats staged;
      ctx.staged_pixel = static_cast<std::int64_t>(setups.size()) * s.nr;
      ctx.staged_row = (column.x_end - column.x_begin) * ctx.staged_pixel;
      ctx.staged_x0 = column.x_begin;
      ctx.staged_image = s.rows_per_item * ctx.staged_row;
      staged.resize(static_cast<std::size_t>((s.batch_tiles ? p.batch : 1) * ctx.staged_image));
      ctx.staged = staged.data();
    }
    ctx.src = static_cast<const float*>(args.src);
    ctx.dst = static_cast<float*>(args.dst);
    ctx.src_unit = last ? p.in_channels : 1, ctx.src_channel = last ? 1 : in_plane;
    ctx.dst_unit = dst_last ? p.out_channels : 1, ctx.dst_channel = dst_last ? 1 : out_plane;
    ctx.src_image = s.src_image_stride != 0 ? s.src_image_stride : in_plane * p.in_channels;
    ctx.dst_image = out_plane * p.out_channels;
    ctx.setups = &setups;

    // Passes outermost: every tile of the item adds one pass's products before the next pass starts, so that
    // the pass's packed weights are read from L1 by all of them (see choose_passes). Channel chunks outside tap
    // groups: every tap reads the chunk's slice of the input while it is in L2 (ASPP's 2048 channels, taps outside,
    // had streamed the item's 2 MiB of input from L3 once per tap; 1-3% faster, the other multi-pass layers
    // unchanged). Each output element still sums its products in one fixed order, whatever the thread count.
    const std::int64_t chunks = (s.k + s.k_chunk - 1) / s.k_chunk;
    const std::int64_t row_end = std::min(rows_total, (band + 1) * s.rows_per_item);
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int tap_group = 0; tap_group < s.tap_groups; ++tap_group) {
        Pass pass;
        pass.first_tap = tap_group * s.taps_per_pass;
        pass.end_tap = pass.first_tap + s.taps_per_pass;
        pass.c0 = chunk * s.k_chunk;
        pass.k = std::min(s.k_chunk, s.k - pass.c0);
        pass.first_chunk = chunk == 0;
        pass.opening = tap_group == 0 && chunk == 0;
        pass.last_chunk = chunk == chunks - 1;
        for (std::int64_t row = band * s.rows_per_item; row < row_end; ++row)
          for (const XBlock& part : parts) run_row(p, s, ctx, part, row, row - band * s.rows_per_item, pass);
      }
    if (ctx.staged != nullptr) write_back(p, s, ctx, column, band * s.rows_per_item, row_end);
  }

  // Copies an item's staged outputs into the channels_first destination: per image and output row, each block of
  // channels transposed into the rows of their planes (the kernels' own transposed stores ran 2-5x slower,
  // TLB-bound, and an element-by-element copy of the staging took as long as the convolution on WaveNet's layer).
  void write_back(const Problem& p, const State& s, const ItemContext& ctx, const Column& column,
                  std::int64_t row_begin, std::int64_t row_end) const {
    const std::int64_t images = s.batch_tiles ? p.batch : 1;
    const std::int64_t width = column.x_end - column.x_begin;
    const std::int64_t rows_per_image = s.out[1] * s.out[0];
    // Consecutive rows of one image are consecutive in its planes when the column spans the whole row: one
    // transposition covers them all, so each plane is written in one run.
    const bool whole_rows = width == s.out[2];
    for (std::int64_t row = row_begin; row < row_end;) {
      const std::int64_t image_end = (row / rows_per_image + 1) * rows_per_image;
      const std::int64_t rows = whole_rows ? std::min(row_end, image_end) - row : 1;
      const std::int64_t oy = row % s.out[1], oz = (row / s.out[1]) % s.out[0];
      const std::int64_t first = (oz * s.out[1] + oy) * s.out[2] + column.x_begin;
      for (std::int64_t i = 0; i < images; ++i) {
        const std::int64_t n = s.batch_tiles ? i : row / rows_per_image;
        const float* in = ctx.staged + (row - row_begin) * ctx.staged_row + i * ctx.staged_image;
        for (std::size_t bi = 0; bi < ctx.setups->size(); ++bi) {
          const BlockSetup& b = (*ctx.setups)[bi];
          s.kernels.transpose(in + static_cast<std::int64_t>(bi) * s.nr, ctx.staged_pixel,
                              ctx.dst + n * ctx.dst_image + b.channel0 * ctx.dst_channel + first, ctx.dst_channel,
                              b.nr_valid, rows * width, s.stream);
        }
      }
      row += rows;
    }
  }

  // One pass over a tile: its taps whose places in the pass order (State::tap_radix) are in [first_tap, end_tap),
  // and input channels [c0, c0 + k). A tile's first pass with taps starts from the bias; a tile without taps
  // stores the bias in the opening pass.
  struct Pass {
    std::int64_t first_tap = 0, end_tap = 0;
    std::int64_t c0 = 0, k = 0;
    bool first_chunk = true, opening = true, last_chunk = true;
  };

  // Output rows (batch x z x y, or z x y when tiles run across the batch).
  static std::int64_t output_rows(const Problem& p, const State& s) {
    return (s.batch_tiles ? 1 : p.batch) * s.out[0] * s.out[1];
  }

  // Every tile of one output row within one x block, adding input channels [c0, c0 + call.k) of each tile's group.
  void run_row(const Problem& p, const State& s, const ItemContext& ctx, const XBlock& xblock, std::int64_t row,
               std::int64_t row_in_band, const Pass& pass) const {
    const std::int64_t oy = row % s.out[1], oz = (row / s.out[1]) % s.out[0];
    const std::int64_t row_image = row / (s.out[1] * s.out[0]);  // 0 when tiles run across the batch

    thread_local std::vector<TapHit> z_taps, y_taps;
    thread_local std::vector<const float*> a_ptrs, b_ptrs;
    z_taps.resize(static_cast<std::size_t>(s.kernel[0]));
    y_taps.resize(static_cast<std::size_t>(s.kernel[1]));
    const int nz = s.axes[0].taps_at(oz, z_taps.data());
    const int ny = s.axes[1].taps_at(oy, y_taps.data());
    // Positions of the row's first valid z and y taps in their sequences' tap lists (see State::tap_radix).
    const std::int64_t z0 = s.axes[0].locate(oz).segment->tap_begin, y0 = s.axes[1].locate(oy).segment->tap_begin;
    const auto place = [&](std::int64_t z, std::int64_t y, std::int64_t x) {
      return (z * s.tap_radix[1] + y) * s.tap_radix[2] + x;
    };
    const std::size_t max_taps = static_cast<std::size_t>(s.kernel[0] * s.kernel[1] * s.kernel[2]);
    a_ptrs.resize(max_taps);
    b_ptrs.resize(max_taps);

    const AxisSequence& seq = s.axes[2].sequences[static_cast<std::size_t>(xblock.sequence)];
    TileCall call;
    call.k = pass.k;
    call.a = a_ptrs.data();
    call.b = b_ptrs.data();
    call.a_pixel_stride = s.batch_tiles ? ctx.src_image : seq.in_step * ctx.src_unit;
    call.a_channel_stride = ctx.src_channel;
    call.c_channel_stride = ctx.staged ? 1 : ctx.dst_channel;
    call.c_pixel_stride = ctx.staged ? (s.batch_tiles ? ctx.staged_image : seq.out_step * ctx.staged_pixel)
                                     : (s.batch_tiles ? ctx.dst_image : seq.out_step * ctx.dst_unit);
    // A tile is m pixels along x of one image, or one pixel of m images. A run of pixels (or the batch) is cut
    // into tiles of equal height, give or take one (21 pixels with 6-row tiles: 6 + 5 + 5 + 5, not 6 + 6 + 6 + 3,
    // whose short tile would waste its weight loads): the taller ones first, then the others, each group one
    // kernel call (TileCall::tiles) whose taps are listed once.
    const std::int64_t images = s.batch_tiles ? p.batch : 1;
    auto tiles_for = [&](std::int64_t count) { return (count + s.rows - 1) / s.rows; };
    struct TileGroup {
      std::int64_t first, tiles;
      int m;
    };
    auto groups_of = [&](std::int64_t count, std::array<TileGroup, 2>& out) {
      const std::int64_t tiles = tiles_for(count), height = count / tiles, taller = count % tiles;
      out[0] = {0, taller, static_cast<int>(height + 1)};
      out[1] = {taller * (height + 1), tiles - taller, static_cast<int>(height)};
    };
    std::array<TileGroup, 2> groups{};
    if (s.batch_tiles) groups_of(images, groups);
    const std::int64_t dst_row = (oz * s.out[1] + oy) * s.out[2];
    const std::int64_t src_c0 = pass.c0 * ctx.src_channel, b_c0 = pass.c0 * s.nr;
    // What a segment does in this pass: whether it has taps at all, whether its tiles start from the bias (their
    // first pass with taps, or the opening pass without taps) and whether they end here.
    struct SegmentPass {
      bool runs, no_taps, first_pass, last_pass;
    };
    const auto segment_pass = [&](const AxisSegment& seg) {
      const bool no_taps = nz * ny * (seg.tap_end - seg.tap_begin) == 0;
      const std::int64_t first_place = place(z0, y0, seg.tap_begin);
      const std::int64_t last_place = place(z0 + nz - 1, y0 + ny - 1, seg.tap_end - 1);
      const bool runs = no_taps ? pass.opening : first_place < pass.end_tap && last_place >= pass.first_tap;
      return SegmentPass{runs, no_taps, no_taps || (pass.first_chunk && first_place >= pass.first_tap),
                         no_taps || (pass.last_chunk && last_place < pass.end_tap)};
    };
    // Whether two segments read the same taps in this pass: for each (z, y) tap of the row, the same x taps among
    // those whose places fall in the pass.
    const auto same_pass_taps = [&](const AxisSegment& a, const AxisSegment& b) {
      for (int zi = 0; zi < nz; ++zi)
        for (int yi = 0; yi < ny; ++yi) {
          const std::int64_t base = place(z0 + zi, y0 + yi, 0);
          const std::int64_t lo = pass.first_tap - base, hi = pass.end_tap - base;
          const std::int64_t a_lo = std::max<std::int64_t>(a.tap_begin, lo);
          const std::int64_t a_hi = std::min<std::int64_t>(a.tap_end, hi);
          const std::int64_t b_lo = std::max<std::int64_t>(b.tap_begin, lo);
          const std::int64_t b_hi = std::min<std::int64_t>(b.tap_end, hi);
          if ((a_lo < a_hi || b_lo < b_hi) && (a_lo != b_lo || a_hi != b_hi)) return false;
        }
      return true;
    };
    const std::vector<AxisSegment>& segments = seq.segments;
    for (std::size_t si = 0; si < segments.size();) {
      const AxisSegment& seg = segments[si];
      const SegmentPass here = segment_pass(seg);
      // Neighbouring segments that differ only in taps outside this pass run as one: a tile reads pixel r of every
      // tap at r pixels from its first, wherever the segments meet. ASPP rate 18's 33-pixel rows, in segments of
      // 15, 3 and 15 pixels by their valid x taps, each pass of one tap had computed in 7 tiles, not 6: rate 18
      // 1.02-1.03x as fast (1 thread, both layouts, in turns), rate 6 (whose segments make as many tiles) 0.99-1.00x.
      std::size_t end = si + 1;
      while (here.runs && !here.no_taps && !s.batch_tiles && end < segments.size()) {
        const SegmentPass next = segment_pass(segments[end]);
        if (!next.runs || next.no_taps || next.first_pass != here.first_pass || next.last_pass != here.last_pass ||
            !same_pass_taps(seg, segments[end])) {
          break;
        }
        ++end;
      }
      const std::int64_t j_begin = std::max(seg.j_begin, xblock.j_begin);
      const std::int64_t run =
          std::max<std::int64_t>(0, std::min(segments[end - 1].j_end, xblock.j_end) - j_begin);
      si = end;
      if (run == 0 || !here.runs) continue;
      if (!s.batch_tiles) groups_of(run, groups);
      const std::int64_t positions = s.batch_tiles ? run : 1;  // across the batch: one pixel after the other
      const bool no_taps = here.no_taps, first_pass = here.first_pass, last_pass = here.last_pass;
      call.accumulate = !first_pass;
      // Only a tile computed in one pass streams (see kStreamBytes), and never into the staging buffer.
      call.stream = s.stream && first_pass && last_pass && ctx.staged == nullptr;
      for (std::int64_t position = 0; position < positions; ++position)
        for (const TileGroup& group : groups) {
          if (group.tiles == 0) continue;
          const std::int64_t j = j_begin + (s.batch_tiles ? position : group.first);
          const std::int64_t n = s.batch_tiles ? group.first : row_image;
          call.m = group.m;
          call.tiles = static_cast<int>(group.tiles);
          // Depthwise: every block of the item in one call (consecutive blocks, NR channels apart everywhere).
          const bool all_blocks = kind_ == Kind::depthwise;
          call.blocks = all_blocks ? static_cast<int>(ctx.setups->size()) : 1;
          for (std::size_t bi = 0; bi < (all_blocks ? 1 : ctx.setups->size()); ++bi) {
            const BlockSetup& b = (*ctx.setups)[bi];
            int t = 0;  // taps in the call
            for (int zi = 0; zi < nz; ++zi)
              for (int yi = 0; yi < ny; ++yi) {
                const std::int64_t src_row = (z_taps[zi].in_index * s.in[1] + y_taps[yi].in_index) * s.in[2];
                const std::int64_t k_row =
                    (z_taps[zi].kernel_index * s.kernel[1] + y_taps[yi].kernel_index) * s.kernel[2];
                for (int xi = seg.tap_begin; xi < seg.tap_end; ++xi) {
                  const std::int64_t at = place(z0 + zi, y0 + yi, xi);
                  if (at < pass.first_tap || at >= pass.end_tap) continue;
                  const AxisTap& tap = seq.taps[static_cast<std::size_t>(xi)];
                  const std::int64_t ix = seq.in_first + j * seq.in_step + tap.in_offset;
                  a_ptrs[t] = ctx.src + n * ctx.src_image + (src_row + ix) * ctx.src_unit +
                              b.src_channel0 * ctx.src_channel + src_c0;
                  b_ptrs[t] = b.b_base + (k_row + tap.kernel_index) * s.b_tap + b_c0;
                  ++t;
                }
              }
            if (t == 0 && !no_taps) continue;  // the segment's taps straddle this pass's
            call.ntaps = t;
            call.init = b.init;
            call.nr_valid = b.nr_valid;
            if (ctx.staged != nullptr) {
              call.c = ctx.staged + row_in_band * ctx.staged_row + (s.batch_tiles ? n * ctx.staged_image : 0) +
                       (seq.out_first + j * seq.out_step - ctx.staged_x0) * ctx.staged_pixel +
                       static_cast<std::int64_t>(bi) * s.nr;
            } else {
              call.c = ctx.dst + n * ctx.dst_image + (dst_row + seq.out_first + j * seq.out_step) * ctx.dst_unit +
                       b.channel0 * ctx.dst_channel;
            }
            s.tile(call);
          }
        }
    }
  }

  Kind kind_;
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_depthwise_engine() {
  return std::make_shared<Engine>(Kind::depthwise);
}
std::shared_ptr<const detail::Implementation> make_dot_engine() { return std::make_shared<Engine>(Kind::dot); }
std::shared_ptr<const detail::Implementation> make_gemm_engine() { return std::make_shared<Engine>(Kind::gemm); }

}  // namespace tdconv::engine
