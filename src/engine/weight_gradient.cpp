// Weight gradients as GEMMs over pixels. Both operations connect a strided side (a convolution's output, a
// transposed convolution's input) to a dense side through the same index map, dense = j * stride + k * dilation -
// pad_begin per axis, so for either
//   dW[g][s][d][k] = sum over images n and strided pixels j of  S[n][j][g, s] * D[n][j * stride + k * dilation -
//                    pad_begin][g, d]
// (S the strided side, D the dense side; a convolution's S is diff_dst and D src, a transposed one's the other way
// round). For each tap k that is a product of S's channels and D's, reduced over the pixels j whose dense pixel
// lies inside D: along x those are one run per row of S, at a fixed step through D. The tiles (weight_gradient_
// kernels.cpp) hold m strided channels x NR dense channels of one tap in registers and walk the runs of a chunk of
// rows; chunks follow each other, each tile's sums continuing where the last chunk left them, so every sum has
// the same order whatever the threads, which split the tiles of a chunk.
#include "engine/weight_gradient.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "tdconv/shape.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

// Pixels of S per chunk, about: each tile then sums a few hundred pixels between storing and reloading its partial
// sums, and a chunk's pixels of S and D stay in L2 while every tile of the chunk reads them. Rows longer than this
// are cut into pieces (a vocoder's 16384-sample rows had every tile stream 8 MiB of each side from memory), and
// images smaller than it are taken several at a time (DCGAN's 1 x 1 and 4 x 4 inputs: a chunk per image left
// runs of 1 to 4 pixels and a parallel loop per image).
constexpr std::int64_t kChunkPixels = 256;
// Row blocks of a task from which its column vectors are copied into a panel first (see run_task).
constexpr std::int64_t kPanelRowBlocks = 4;
// Channels_last copies of the images of one chunk, at most (unless one image is larger).
constexpr std::int64_t kCopyBytes = 8 << 20;

struct Geometry {
  std::int64_t cs = 1, cd = 1, csg = 1, cdg = 1, taps = 1;
  std::array<std::int64_t, 3> s_size{1, 1, 1}, d_size{1, 1, 1}, kernel{1, 1, 1};
  std::array<std::int64_t, 3> stride{1, 1, 1}, dilation{1, 1, 1}, pad{0, 0, 0};
  // Per axis and kernel tap along it: the strided pixels [lo, hi) whose dense pixel lies inside D.
  std::array<std::vector<std::int64_t>, 3> lo, hi;
  std::int64_t s_pixels() const { return s_size[0] * s_size[1] * s_size[2]; }
  std::int64_t d_pixels() const { return d_size[0] * d_size[1] * d_size[2]; }
};

Geometry geometry(const Problem& p) {
  Geometry g;
  const bool conv = p.op == Op::conv;
  g.cs = conv ? p.out_channels : p.in_channels;
  g.cd = conv ? p.in_channels : p.out_channels;
  g.csg = g.cs / p.groups, g.cdg = g.cd / p.groups;
  const Dims out = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const auto a = static_cast<std::size_t>(3 - p.spatial_dims + d);  // z, y, x: leading axes trivial
    g.s_size[a] = conv ? out[d] : p.input[d];
    g.d_size[a] = conv ? p.input[d] : out[d];
    g.kernel[a] = p.kernel[d], g.stride[a] = p.stride[d], g.dilation[a] = p.dilation[d], g.pad[a] = p.pad_begin[d];
    g.taps *= p.kernel[d];
  }
  for (std::size_t a = 0; a < 3; ++a) {
    for (std::int64_t k = 0; k < g.kernel[a]; ++k) {
      const std::int64_t shift = k * g.dilation[a] - g.pad[a];  // dense = j * stride + shift
      const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(-shift, g.stride[a]));
      const std::int64_t hi = std::min(g.s_size[a], ceil_div(g.d_size[a] - shift, g.stride[a]));
      g.lo[a].push_back(lo);
      g.hi[a].push_back(std::max(lo, hi));
    }
  }
  return g;
}

// How the tiles cover the channels. Rows are broadcast, columns loaded as vectors of nr: the dense side's channels
// are the columns unless the strided side's make fewer loads per useful product (FSRCNN's 56 input channels against
// 1 output channel: 16 lanes for 1 channel otherwise); depthwise problems (one channel per group on both sides)
// multiply vectors of groups lane by lane instead.
struct Tiling {
  bool depthwise = false;
  bool columns_dense = true;
  int vectors = 1;
  std::int64_t mr = 1, nr = 1, row_channels = 1, column_channels = 1, row_blocks = 1, column_blocks = 1;
  WeightGradFn tile = nullptr;
};

// Loads per useful product of tiles with `rows` and `columns` channels per group.
double tile_loads(const KernelSet& k, std::int64_t rows, std::int64_t columns, int vectors) {
  const std::int64_t m = std::min<std::int64_t>(k.weight_grad_mr[vectors], rows), nr = vectors * k.lanes;
  const std::int64_t row_blocks = (rows + m - 1) / m, column_blocks = (columns + nr - 1) / nr;
  return static_cast<double>(row_blocks * column_blocks * (m + vectors)) / static_cast<double>(rows * columns);
}

Tiling choose_tiling(const Problem& p, const Geometry& g, const KernelSet& k) {
  Tiling t;
  t.depthwise = p.groups > 1 && g.csg == 1 && g.cdg == 1;
  if (t.depthwise) {
    t.vectors = static_cast<int>(std::min<std::int64_t>(kMaxVectorsPerTile, (p.groups + k.lanes - 1) / k.lanes));
    t.mr = 1, t.nr = t.vectors * static_cast<std::int64_t>(k.lanes);
    t.row_channels = 1, t.column_channels = p.groups;
    t.column_blocks = (p.groups + t.nr - 1) / t.nr;
    t.tile = k.weight_grad_depthwise[t.vectors];
    return t;
  }
  const int dense_vectors = fewest_loads_vectors(k, g.cdg), strided_vectors = fewest_loads_vectors(k, g.csg);
  t.columns_dense = tile_loads(k, g.csg, g.cdg, dense_vectors) <= tile_loads(k, g.cdg, g.csg, strided_vectors);
  t.vectors = t.columns_dense ? dense_vectors : strided_vectors;
  t.row_channels = t.columns_dense ? g.csg : g.cdg;
  t.column_channels = t.columns_dense ? g.cdg : g.csg;
  t.mr = k.weight_grad_mr[t.vectors], t.nr = t.vectors * static_cast<std::int64_t>(k.lanes);
  t.row_blocks = (t.row_channels + t.mr - 1) / t.mr;
  t.column_blocks = (t.column_channels + t.nr - 1) / t.nr;
  t.tile = k.weight_grad[t.vectors];
  return t;
}

// A piece of the strided side: pixels [x0, x1) of rows [row0, row1) of each of images [n0, n1) (rows: (z, y) pairs).
struct Chunk {
  std::int64_t n0, n1, row0, row1, x0, x1;
};

// The chunks of images [n0, n1), in order.
void chunks_of(const Geometry& g, std::int64_t n0, std::int64_t n1, std::vector<Chunk>& out) {
  out.clear();
  const std::int64_t rows = g.s_size[0] * g.s_size[1], width = g.s_size[2];
  if (n1 - n0 > 1 || g.s_pixels() <= kChunkPixels) {
    out.push_back({n0, n1, 0, rows, 0, width});
    return;
  }
  if (width <= kChunkPixels) {
    const std::int64_t per_chunk = kChunkPixels / width;
    for (std::int64_t r = 0; r < rows; r += per_chunk) out.push_back({n0, n1, r, std::min(rows, r + per_chunk), 0, width});
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t x = 0; x < width; x += kChunkPixels) out.push_back({n0, n1, r, r + 1, x, std::min(width, x + kChunkPixels)});
}

// One side's images [n0, n1) in channels_last: the tensor itself where it is channels_last and the tiles may read
// whole vectors from it, otherwise a copy with `slack` zeros after it.
struct Side {
  const float* base = nullptr;  // image n0
  std::int64_t channels = 1, pixels = 1;
  std::int64_t image_floats() const { return channels * pixels; }
};

Side side_images(const KernelSet& kernels, const float* tensor, std::int64_t channels, std::int64_t pixels,
                 std::int64_t n0, std::int64_t n1, bool channels_first, std::int64_t slack, util::AlignedFloats& copy) {
  Side side{tensor + n0 * channels * pixels, channels, pixels};
  if (!channels_first && slack == 0) return side;
  const auto floats = static_cast<std::size_t>((n1 - n0) * channels * pixels);
  copy.resize(floats + static_cast<std::size_t>(slack));
  if (channels_first) {
    to_channels_last(kernels, side.base, copy.data(), channels * pixels, n1 - n0, channels, pixels, false);
  } else {
    std::memcpy(copy.data(), side.base, floats * sizeof(float));
  }
  std::fill(copy.begin() + static_cast<std::ptrdiff_t>(floats), copy.end(), 0.0f);
  side.base = copy.data();
  return side;
}

// The runs of one chunk, tap after tap: run u of tap t is runs[begin[t] + u], s[] and d[] pointing at pixels of S
// and D (channel 0).
struct Runs {
  std::vector<const float*> s, d;
  std::vector<std::int64_t> length;
  std::vector<std::int64_t> begin;  // taps + 1 entries
};

// S's pixels of a chunk as the tiles broadcast them: [block of mr channels (of a group)][pixel of the chunk][mr],
// zeros past a group's last channel. Broadcast from S itself, each pixel of a run read a line a row of channels
// apart, 4 KiB for U-Net's 1024 channels: every line in one set of L1, which held 12 of the 256 a tile needed.
struct PackedRows {
  const float* base = nullptr;  // null: broadcast from S itself
  std::int64_t mr = 1, pixels = 0;  // a block's floats: pixels * mr
};

PackedRows pack_rows(const Geometry& g, const Chunk& c, const Side& s_side, std::int64_t groups, std::int64_t mr,
                     std::int64_t row_blocks, util::AlignedFloats& out) {
  const std::int64_t width = c.x1 - c.x0, rows = c.row1 - c.row0;
  PackedRows packed{nullptr, mr, (c.n1 - c.n0) * rows * width};
  out.resize(static_cast<std::size_t>(groups * row_blocks * packed.pixels * mr));
  float* to = out.data();
#pragma omp parallel for schedule(static)
  for (std::int64_t block = 0; block < groups * row_blocks; ++block) {
    const std::int64_t first = block / row_blocks * g.csg + block % row_blocks * mr;
    const std::int64_t count = std::min(mr, g.csg - block % row_blocks * mr);
    float* dst = to + block * packed.pixels * mr;
    for (std::int64_t n = c.n0; n < c.n1; ++n)
      for (std::int64_t row = c.row0; row < c.row1; ++row) {
        const float* src = s_side.base + (n - c.n0) * s_side.image_floats() + (row * g.s_size[2] + c.x0) * g.cs + first;
        for (std::int64_t x = 0; x < width; ++x, dst += mr, src += g.cs) {
          for (std::int64_t r = 0; r < mr; ++r) dst[r] = r < count ? src[r] : 0.0f;
        }
      }
  }
  packed.base = out.data();
  return packed;
}

void collect_runs(const Geometry& g, const Chunk& c, const Side& s_side, const PackedRows& rows, const Side& d_side,
                  Runs& runs) {
  runs.s.clear(), runs.d.clear(), runs.length.clear(), runs.begin.assign(1, 0);
  for (std::int64_t kz = 0; kz < g.kernel[0]; ++kz)
    for (std::int64_t ky = 0; ky < g.kernel[1]; ++ky)
      for (std::int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const auto ukz = static_cast<std::size_t>(kz), uky = static_cast<std::size_t>(ky);
        const auto ukx = static_cast<std::size_t>(kx);
        const std::int64_t x0 = std::max(c.x0, g.lo[2][ukx]), x1 = std::min(c.x1, g.hi[2][ukx]);
        for (std::int64_t n = c.n0; n < c.n1 && x0 < x1; ++n) {
          const float* s_image = s_side.base + (n - c.n0) * s_side.image_floats();
          const float* d_image = d_side.base + (n - c.n0) * d_side.image_floats();
          for (std::int64_t row = c.row0; row < c.row1; ++row) {
            const std::int64_t jz = row / g.s_size[1], jy = row % g.s_size[1];
            if (jz < g.lo[0][ukz] || jz >= g.hi[0][ukz] || jy < g.lo[1][uky] || jy >= g.hi[1][uky]) continue;
            const std::int64_t dz = jz * g.stride[0] + kz * g.dilation[0] - g.pad[0];
            const std::int64_t dy = jy * g.stride[1] + ky * g.dilation[1] - g.pad[1];
            const std::int64_t dx = x0 * g.stride[2] + kx * g.dilation[2] - g.pad[2];
            const std::int64_t local = ((n - c.n0) * (c.row1 - c.row0) + row - c.row0) * (c.x1 - c.x0) + x0 - c.x0;
            runs.s.push_back(rows.base != nullptr ? rows.base + local * rows.mr
                                                  : s_image + (row * g.s_size[2] + x0) * g.cs);
            runs.d.push_back(d_image + ((dz * g.d_size[1] + dy) * g.d_size[2] + dx) * g.cd);
            runs.length.push_back(x1 - x0);
          }
        }
        runs.begin.push_back(static_cast<std::int64_t>(runs.s.size()));
      }
}

void bias_gradient(const Problem& p, const float* diff_dst, float* diff_bias) {
  const Dims out = output_size(p);
  std::int64_t pixels = 1;
  for (int d = 0; d < p.spatial_dims; ++d) pixels *= out[d];
  const std::int64_t oc = p.out_channels;
  std::vector<double> sum(static_cast<std::size_t>(oc), 0.0);
  for (std::int64_t n = 0; n < p.batch; ++n) {
    const float* image = diff_dst + n * oc * pixels;
    if (p.layout == Layout::channels_last) {
      for (std::int64_t i = 0; i < pixels; ++i)
        for (std::int64_t c = 0; c < oc; ++c) sum[static_cast<std::size_t>(c)] += image[i * oc + c];
    } else {
      for (std::int64_t c = 0; c < oc; ++c)
        for (std::int64_t i = 0; i < pixels; ++i) sum[static_cast<std::size_t>(c)] += image[c * pixels + i];
    }
  }
  for (std::int64_t c = 0; c < oc; ++c) diff_bias[c] = static_cast<float>(sum[static_cast<std::size_t>(c)]);
}

// One task of a chunk: tap t's runs against column block cb of group `group`, for row blocks [rb0, rb1). The
// column side's vectors are first copied into a panel, [pixel][nr] (zeros past the block's valid channels): read
// in place they were rows of 2048 channels apart (ASPP), every pixel's four lines in the same sets of L1, and
// each of a panel's row blocks read them again from L2.
void run_task(const Problem& p, const Geometry& g, const Tiling& tiling, const Runs& runs, const PackedRows& rows,
              std::int64_t group, std::int64_t t, std::int64_t cb, std::int64_t rb0, std::int64_t rb1, bool accumulate,
              float* sums) {
  const auto first_run = static_cast<std::size_t>(runs.begin[static_cast<std::size_t>(t)]);
  const auto run_count = static_cast<std::size_t>(runs.begin[static_cast<std::size_t>(t) + 1]) - first_run;
  const bool rows_strided = tiling.depthwise || tiling.columns_dense;
  const std::int64_t column_base = (tiling.depthwise ? 0 : group * tiling.column_channels) + cb * tiling.nr;
  const int nr_valid = static_cast<int>(std::min(tiling.nr, tiling.column_channels - cb * tiling.nr));
  const float* const* column_runs = (rows_strided ? runs.d.data() : runs.s.data()) + first_run;
  std::int64_t column_step = rows_strided ? g.stride[2] * g.cd : g.cs, column_offset = column_base;
  thread_local util::AlignedFloats panel;  // this thread's own
  thread_local std::vector<const float*> panel_runs;
  // Copied only for a few row blocks or more: a panel read by one or two (FSRCNN's one output channel, DCGAN's
  // three) cost as much to copy as to use, and FSRCNN's layer took 3.8x as long.
  if (!tiling.depthwise && rb1 - rb0 >= kPanelRowBlocks) {
    std::int64_t pixels = 0;
    for (std::size_t u = 0; u < run_count; ++u) pixels += runs.length[first_run + u];
    panel.resize(static_cast<std::size_t>(pixels * tiling.nr));
    panel_runs.resize(run_count);
    float* to = panel.data();
    for (std::size_t u = 0; u < run_count; ++u) {
      panel_runs[u] = to;
      const float* from = column_runs[u] + column_offset;
      for (std::int64_t i = 0; i < runs.length[first_run + u]; ++i, to += tiling.nr, from += column_step) {
        std::memcpy(to, from, static_cast<std::size_t>(nr_valid) * sizeof(float));
        std::fill(to + nr_valid, to + tiling.nr, 0.0f);
      }
    }
    column_runs = panel_runs.data(), column_step = tiling.nr, column_offset = 0;
  }
  for (std::int64_t rb = rb0; rb < rb1; ++rb) {
    const std::int64_t row_base = (tiling.depthwise ? 0 : group * tiling.row_channels) + rb * tiling.mr;
    WeightGradCall call;
    call.m = static_cast<int>(std::min(tiling.mr, tiling.row_channels - rb * tiling.mr));
    call.runs = static_cast<int>(run_count);
    call.s = (rows_strided ? runs.s.data() : runs.d.data()) + first_run;
    call.d = column_runs;
    call.length = runs.length.data() + first_run;
    // Packed rows: the tile's block of them; depthwise: the same groups on both sides.
    call.s_offset = rows.base != nullptr ? (group * tiling.row_blocks + rb) * rows.pixels * rows.mr
                                         : (tiling.depthwise ? column_base : row_base);
    call.d_offset = column_offset;
    call.s_step = rows.base != nullptr ? rows.mr : (rows_strided ? g.cs : g.stride[2] * g.cd);
    call.d_step = column_step;
    call.c = tiling.depthwise ? sums + t * p.groups + cb * tiling.nr
                              : sums + ((group * g.taps + t) * tiling.row_channels + rb * tiling.mr) *
                                           tiling.column_channels +
                                    cb * tiling.nr;
    call.c_stride = tiling.column_channels;
    call.nr_valid = nr_valid;
    call.accumulate = accumulate;
    tiling.tile(call);
  }
}

// A chunk's tasks: per tap and column block, `row_shares` shares of the row blocks (several where there are few taps
// and blocks, so that every thread has work; how the row blocks are shared changes no sum).
struct Shares {
  std::int64_t tasks = 1, row_shares = 1, rows_per_share = 1;
};

Shares share_tasks(const Problem& p, const Geometry& g, const Tiling& tiling) {
#ifdef _OPENMP
  const std::int64_t threads = omp_get_max_threads();
#else
  const std::int64_t threads = 1;
#endif
  const std::int64_t panels = (tiling.depthwise ? 1 : p.groups) * g.taps * tiling.column_blocks;
  Shares s;
  s.row_shares = std::clamp<std::int64_t>(4 * threads / panels, 1, tiling.row_blocks);
  s.rows_per_share = (tiling.row_blocks + s.row_shares - 1) / s.row_shares;
  s.tasks = panels * s.row_shares;
  return s;
}

// One chunk: its strided rows packed (where the rows are the strided side), its runs collected, then its tasks,
// shared by the threads.
void run_chunk(const Problem& p, const Geometry& g, const Tiling& tiling, const Shares& shares, const Chunk& chunk,
               const Side& s_side, const Side& d_side, bool accumulate, util::AlignedFloats& packed_rows, Runs& runs,
               float* sums) {
  const PackedRows rows = tiling.columns_dense && !tiling.depthwise
                              ? pack_rows(g, chunk, s_side, p.groups, tiling.mr, tiling.row_blocks, packed_rows)
                              : PackedRows{};
  collect_runs(g, chunk, s_side, rows, d_side, runs);
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t i = 0; i < shares.tasks; ++i) {
    const std::int64_t share = i % shares.row_shares, cb = i / shares.row_shares % tiling.column_blocks;
    const std::int64_t t = i / (shares.row_shares * tiling.column_blocks) % g.taps;
    const std::int64_t group = i / (shares.row_shares * tiling.column_blocks * g.taps);
    run_task(p, g, tiling, runs, rows, group, t, cb, share * shares.rows_per_share,
             std::min(tiling.row_blocks, (share + 1) * shares.rows_per_share), accumulate, sums);
  }
}

}  // namespace

void weight_gradient(const Problem& p, const float* src, const float* diff_dst, float* diff_weights,
                     float* diff_bias) {
  const Geometry g = geometry(p);
  const KernelSet kernels = best_kernels();
  const Tiling tiling = choose_tiling(p, g, kernels);
  const Shares shares = share_tasks(p, g, tiling);
  const bool conv = p.op == Op::conv, channels_first = p.layout == Layout::channels_first;
  const float* s_tensor = conv ? diff_dst : src;
  const float* d_tensor = conv ? src : diff_dst;
  // Sides the tiles load as vectors need nr floats of room past their last pixel, unless every vector lies inside
  // a pixel's channels.
  // Tasks with few row blocks read the column side in place (see run_task).
  const bool s_vectors = tiling.depthwise || !tiling.columns_dense;
  const bool d_vectors = tiling.depthwise || tiling.columns_dense;
  const std::int64_t s_group = tiling.depthwise ? p.groups : g.csg, d_group = tiling.depthwise ? p.groups : g.cdg;
  const std::int64_t s_slack = s_vectors && s_group % tiling.nr != 0 ? tiling.nr : 0;
  const std::int64_t d_slack = d_vectors && d_group % tiling.nr != 0 ? tiling.nr : 0;
  // The calling thread's buffers, kept between calls; the OpenMP threads reach them through these references (a
  // thread_local named inside the parallel loop would be each worker's own, empty one). The sums are
  // [group][tap][row channel][column channel], depthwise [tap][group]; then written in the weight layout.
  thread_local util::AlignedFloats local_sums, local_s_copy, local_d_copy, local_packed_rows;
  thread_local Runs local_runs;
  thread_local std::vector<Chunk> local_chunks;
  util::AlignedFloats &sums = local_sums, &s_copy = local_s_copy, &d_copy = local_d_copy;
  util::AlignedFloats& packed_rows = local_packed_rows;
  Runs& runs = local_runs;
  std::vector<Chunk>& chunks = local_chunks;
  sums.resize(static_cast<std::size_t>(p.groups * g.taps * g.csg * g.cdg));
  const std::int64_t image_bytes = (g.cs * g.s_pixels() + g.cd * g.d_pixels()) * static_cast<std::int64_t>(sizeof(float));
  // Images copied together (one parallel copy for many small images: DCGAN's 64 images of 16 x 16, channels_first,
  // had spent a fifth of their time at 2 threads in a copy and its barrier per image), and taken together in chunks.
  const std::int64_t images_per_copy =
      std::clamp<std::int64_t>(kCopyBytes / std::max<std::int64_t>(1, image_bytes), 1, p.batch);
  const std::int64_t images_per_chunk = std::clamp<std::int64_t>(kChunkPixels / g.s_pixels(), 1, images_per_copy);
  bool first = true;
  for (std::int64_t m0 = 0; m0 < p.batch; m0 += images_per_copy) {
    const std::int64_t m1 = std::min(p.batch, m0 + images_per_copy);
    const Side s_copied = side_images(kernels, s_tensor, g.cs, g.s_pixels(), m0, m1, channels_first, s_slack, s_copy);
    const Side d_copied = side_images(kernels, d_tensor, g.cd, g.d_pixels(), m0, m1, channels_first, d_slack, d_copy);
    for (std::int64_t n0 = m0; n0 < m1; n0 += images_per_chunk) {
      const std::int64_t n1 = std::min(m1, n0 + images_per_chunk);
      Side s_side = s_copied, d_side = d_copied;  // from image n0 on
      s_side.base += (n0 - m0) * s_side.image_floats();
      d_side.base += (n0 - m0) * d_side.image_floats();
      chunks_of(g, n0, n1, chunks);
      for (const Chunk& chunk : chunks) {
        run_chunk(p, g, tiling, shares, chunk, s_side, d_side, !first, packed_rows, runs, sums.data());
        first = false;
      }
    }
  }
  const WeightStrides to = weight_strides(p, g.taps);
  for (std::int64_t group = 0; group < p.groups; ++group)
    for (std::int64_t t = 0; t < g.taps; ++t)
      for (std::int64_t s = 0; s < g.csg; ++s)
        for (std::int64_t d = 0; d < g.cdg; ++d) {
          const std::int64_t row = tiling.columns_dense ? s : d, column = tiling.columns_dense ? d : s;
          const float value = tiling.depthwise ? sums[static_cast<std::size_t>(t * p.groups + group)]
                                               : sums[static_cast<std::size_t>(
                                                     ((group * g.taps + t) * tiling.row_channels + row) *
                                                         tiling.column_channels +
                                                     column)];
          // weight_strides counts (input channel, output channel): a convolution's strided side is its output.
          diff_weights[conv ? to.at(group, d, s, t) : to.at(group, s, d, t)] = value;
        }
  if (diff_bias != nullptr) bias_gradient(p, diff_dst, diff_bias);
}

}  // namespace tdconv::engine
