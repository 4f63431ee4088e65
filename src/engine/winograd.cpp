// Winograd F(2, r) along every axis, r = 1, 2 or 3 taps per axis, for the dense stride-1 correlations that the
// decompositions of DESIGN.md produce, in 1D, 2D and 3D:
//   - convolutions with r taps per axis at stride 1 and any dilation (TCN, WaveNet, DeepLab, ASPP, context
//     modules, volumetric segmentation): dilation d splits each axis's outputs into d residue classes, each a dense
//     correlation of a sub-sampled input (inputs d apart);
//   - transposed convolutions, dilation 1, whose kernel is 2 or 3 times the stride on every axis (DCGAN's 4x4 at
//     stride 2, HiFi-GAN's upsamplings), or longer than the stride and at most twice it (CycleGAN's and 3D
//     decoders' 3x3 at stride 2): stride s splits each axis's outputs into s phases, each a dense correlation of
//     the input with the kernel's taps of that phase, reversed: r of them, or 1 or 2 (3 at stride 2: phases of
//     2 and 1 taps).
// Per axis a class has its first output, the step between its outputs (d or s), how many there are, and where its
// first tile's input patch starts. A tile of one class computes 2 outputs per axis from r + 1 inputs per axis.
// Per batch of tiles: transform each patch (prod (r+1) values per channel), multiply the transformed planes by the
// transformed kernels with the gemm tile kernel (prod (r+1) GEMMs of tiles x C_in x C_out), transform back to 2^D
// outputs. Per output (r+1)^D / 2^D multiplications instead of r^D: r = 3: 1.5x fewer in 1D, 2.25x in 2D, 3.4x in
// 3D; r = 2: 1.33x, 1.78x, 2.37x; kernel 3 at stride 2 (phases of 2 and 1 taps): 1.2x, 1.44x, 1.73x. 1D and 2D
// convolutions of 3 taps may take F(4, 3) along x instead (x_tile_outputs): 4 outputs from 6 inputs, 2x fewer
// multiplications than the definition along x, 1.33x fewer than F(2, 3); 1D ones of 2 taps (and transposed ones
// whose phases all have 2 taps) F(4, 2): 4 outputs from 5 inputs, 1.6x fewer than the definition, 1.2x fewer than
// F(2, 2). Convolutions of 3 taps dilated by half the image or more (ASPP rate 18) have tiles whose patch starts
// and ends in the padding: those take 3 multiplications per axis on the 2 inputs between (kWinogradPaddedEnds).
// The error stays within 1e-4 x (1 + |y|) in the differential tests (see kMinLargeTileSaving and docs/design.md,
// "Winograd's accuracy").
#include "engine/winograd.hpp"

#include <hwy/cache_control.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <array>
#include <string>
#include <stdexcept>
#include <vector>

#include "engine/kernels.hpp"
#include "engine/weight_index.hpp"
#include "util/aligned_buffer.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

constexpr std::int64_t kTilesPerBatch = 36;
// ... or kLargeTilesPerBatch where the transformed kernels reach kLargeBatchBytes: every batch streams them all from
// L3, and with their 16-32 MiB that traffic set the pace. Against 36 tiles per batch (channels_last, Intel Xeon,
// one process per setting): DeepLab's res5 (16 MiB) 1.15x at 1 thread and 1.24x at 2, ASPP rate 6 (32 MiB) 1.12x
// and 1.21x; with 288 tiles ASPP lost at 2 threads (0.68x of 144's speed), and the layers with under 2 MiB of
// kernels lost with 72 or more (the context module 0.95x, TCN 0.95x, the 3D atrous layer 0.82x, DCGAN g4 0.98x at
// 1 thread). A batch's transformed patches take a chunk of kPassChannels input channels at a time (run_batch), so
// that its scratch stays small (the whole 2048 channels of ASPP had taken 4.7 MiB per thread for 36 tiles).
// The whole change against the code before it, timed in turns: channels_last DeepLab res5 1.10x at 1 thread and
// 1.14x at 2, ASPP rate 6 1.10x and 1.07x; channels_first DeepLab (tile rows in pairs, see choose_group_rows)
// 1.07x and 1.09x; the context module and the 3D atrous layer 0.98x (channels_last, 1 thread), DCGAN g4 0.99x.
constexpr std::int64_t kLargeTilesPerBatch = 144;
constexpr double kLargeBatchBytes = 8.0 * 1024 * 1024;
constexpr double kMaxWorkspace = 16.0 * 1024 * 1024;
constexpr std::int64_t kMinGroupItemsPerThread = 8;
// Elements of the largest patch: 4 x 4 x 4 (3D, 3 taps per axis).
constexpr int kMaxPatchElements = 64;
// Every batch of tiles streams all the transformed kernels through its GEMMs: past this size (ASPP's 2048 x 256
// channels: 32 MiB) that traffic outweighs the saved multiplications. ASPP rate 6 ran no faster than on the gemm
// path with 36 tiles per batch, and 1.2-1.6x slower with the fewer tiles that would keep its channels_first
// workspace within 16 MiB. DeepLab's res5 (16 MiB) keeps Winograd.
constexpr double kMaxTransformedBytes = 16.0 * 1024 * 1024;
// ... except channels_last with AVX-512's tiles, up to 32 MiB: on an Intel Xeon (two 512-bit FMA units), timed in
// turns against the gemm path, ASPP rate 6 ran 1.11-1.14x as fast at 1 thread and 1.08-1.09x at 2 (with AVX2's
// tiles on the same machine 1.04-1.07x at 1 thread but 0.92-0.93x at 2, so AVX2 keeps 16 MiB). Channels_first
// gained nothing (1.01-1.03x) and its copy would take the workspace to 18.8 MiB at 2 threads.
constexpr double kMaxTransformedBytesWide = 32.0 * 1024 * 1024;
// Measured on the suite (AVX-512) with the two paths timed in turns, run by run (the machine's speed drifts too much
// for anything else): Winograd beat the gemm path on DeepLab's res5 (512 channels, 1.69x fewer multiplications
// than the valid taps), on the 64-channel context module at rate 16 (1.89x fewer; 1.2-1.3x faster at 1 and 2
// threads, both layouts) and on ASPP rate 6 (1.46x fewer; 1.04-1.16x faster). ASPP rate 18 with F(2, 3)'s tiles
// (1.31x more multiplications than its valid taps) ran 1.67x slower (in turns, 1 thread, channels_last): it takes
// tiles of padded ends instead (below). HiFi-GAN's up1 (512 -> 256, 1D phases of 2 taps: F(2, 2), 1.33x fewer) had
// run 0.95-0.99x as fast as the gemm path in tdconv-bench on an Intel Xeon and stayed on it under a rule of 1.4x; on
// Zen 4, in tdconv-bench (cold caches, oneDNN in the same runs), it ran 1.09-1.12x as fast at 1 thread channels_last
// (its ratio to oneDNN 1.08 -> 1.19-1.22), 1.11-1.15x channels_first, and 1.00-1.18x at 2 threads, so the rule is
// 1.3x. No other suite layer's plan changes with it.
constexpr double kMinMultiplicationRatio = 1.3;
// ... or this where an axis has padded ends (kWinogradPaddedEnds), whose transforms take 1 addition per line in and 2
// out (F(2, 3): 4 and 4): ASPP rate 18, 1.36x fewer multiplications than its valid taps, ran 1.15-1.19x as fast as
// on the gemm path at 1 thread and 1.13-1.2x at 2, both layouts (Zen 4, in turns, one process each).
constexpr double kMinMultiplicationRatioPaddedEnds = 1.25;
// F(4, 3) along x (4 outputs from 6 inputs; F(2, 3) along y), where it saves this many times F(2, 3)'s
// multiplications: TCN (1D, 8 residue classes of 256 outputs) 1.33x, the context module (2D, 16 classes of 8 along
// x) 1.33x; ASPP rate 6 (6 classes of 5 or 6) none. Timed in turns against F(2, 3) (tdconv-bench, Intel Xeon): TCN
// 1.11-1.19x as fast at 1 thread and 1.18-1.24x at 2, the context module 1.15-1.33x and 1.17-1.30x, both layouts.
// In 3D (F(2, 3) along z and y) the 3D atrous layer ran 0.84-0.98x: 96-element tiles, and 3D keeps F(2, 3).
// Its transforms scale rounding errors up: against the double-precision reference (inputs and weights uniform in
// [-1, 1]), the largest |error| / (1 + |y|) was 1.8-3.5e-5 on 64 and 128 channels in 1D and 8.6e-5 on 256, 4.8e-5
// and 7.6e-5 on 64 and 128 channels in 2D, against 1.1-4.3e-5 for F(2, 3) and the gemm path; 3D reached 1.2e-4 on
// 128 channels, and F(4 x 4, 3 x 3) (4 outputs along y too) 1.7e-4 on 64 channels and 7.9e-4 on 320. So it runs up
// to kMaxLargeTileChannels input channels, within the differential tests' 1e-4 (docs/design.md, "Winograd's
// accuracy").
constexpr double kMinLargeTileSaving = 1.2;
// ... and F(4, 2) (1D) where it saves this many times F(2, 2)'s: 1.2x with whole tiles (WaveNet, HiFi-GAN up3).
constexpr double kMinLargeTileSaving2 = 1.08;
constexpr std::int64_t kMaxLargeTileChannels[2] = {256, 128};  // 1D, 2D
// Transposed convolutions whose phases have 1 or 2 taps (kernel 3 at stride 2) save less (1.44x in 2D) and their
// 1-tap phases give short GEMMs: they had needed 128 channels (CycleGAN's 128 -> 64 ran at 0.87-0.95x of the gemm
// path's speed, the 3D 64 -> 32 one 0.88-0.95x; 256 -> 128 and 512 -> 256 in 2D 1.07-1.11x faster, 128 -> 128 in 3D
// 1.19-1.28x). Since channels_last outputs stream (kStreamOutputBytes), CycleGAN (16 MiB of outputs) runs 1.09x as
// fast as the gemm path at 1 thread and 1.12x at 2, a 3D 64 -> 64 one (32^3 inputs) 1.26x, and 2D 64 -> 64 ones (64^2
// and 128^2 inputs) the same (in turns, Intel Xeon): channels_last, they take kMinChannels like the others. The 3D
// 64 -> 32 one (vol_up_k3) ran as fast as the sub-pixel path on that Intel Xeon, 1.09-1.17x as fast on Zen 4
// (kMinChannelsLargeSaving).
// channels_first (whole images staged, never streamed; nothing measured since) keeps kMinChannelsMixedPhases.
constexpr std::int64_t kMinChannels = 64;
constexpr std::int64_t kMinChannelsMixedPhases = 128;
// ... or this many where Winograd takes kLargeSaving times fewer multiplications than the valid taps, or more (2D
// and 3D convolutions of 3 taps, 2.2-3.4x; 3D transposed ones of mixed phases, vol_up_k3 1.67x; not 2D ones, 1.41x).
// Timed in turns on Zen 4 (1 thread, channels_last unless said, one process each) against the path each took: 2D
// 32 -> 32 3x3 convolutions 1.9x as fast (channels_first, against gemm_planar, 1.5x), 2D 64 -> 32 and 32 -> 64
// dilated ones 1.3-2x, a 3D 64 -> 32 one 1.5-1.6x, a 1D 32 -> 32 one (F(4, 3), 2x fewer) 1.04x; the 3D 64 -> 32
// transposed one (vol_up_k3) 1.09-1.11x (1.15-1.17x at 2 threads), a 3D 32 -> 32 transposed one 0.87-1.25x (1.25x at
// 2 threads). Left out: the 2D 64 -> 32 transposed one of mixed phases at 0.88-0.99x, and 2D 16 -> 16 convolutions
// at 1.0-1.07x.
constexpr std::int64_t kMinChannelsLargeSaving = 32;
constexpr double kLargeSaving = 1.6;
// Tiles per transformed kernel and image: a batch's GEMMs run over the tiles of one kernel, and short runs reload
// the kernel's weights for few tiles. DCGAN's g2 (4x4 images, 4 tiles per stride phase) ran at 0.45x the gemm path,
// its g4 (16x16, 64 tiles per phase) at 1.25-1.31x.
constexpr double kMinTilesPerKernel = 12;
// channels_first: transposed convolutions copy each image into channels_last and stage its outputs, per thread (both
// at most kMaxStagedBytes); convolutions copy chunks of images (at most kMaxImageBytes of scratch) and stage each
// tile row's outputs (the output rows of the tiles with one first row), at most kMaxStagedBytes per thread. The
// staged outputs are transposed into the channel planes.
constexpr double kMaxImageBytes = 12.0 * 1024 * 1024;
constexpr double kMaxStagedBytes = 2.0 * 1024 * 1024;
// Transformed input channels per gemm call: the packed weights of one call, kPassChannels x 64 floats, stay in L1
// for all the batch's tiles (+2-8% on DeepLab's res5 and ASPP rate 6, timed in turns against whole rows of 512
// and 2048 channels; 64 and 256 channels were no better).
constexpr std::int64_t kPassChannels = 128;
// channels_first outputs over this size are written back with non-temporal stores: timed in turns, 6-10% faster on
// the 4-16 MiB outputs of the context module, TCN, DCGAN's g4 and the 3D atrous layer, 2% on ASPP's 1 MiB.
constexpr double kStreamBytes = 2.0 * 1024 * 1024;
// channels_first 1D tile rows (State::copies_items) write their staged outputs back batch by batch, as columns
// complete, in runs that start on a multiple of this many columns (a cache line of each plane, so that streamed
// stores stay aligned), rather than all at once when the work item ends: TCN's staged image row is 2 MiB, and the
// write-back had read it back from L3. With the image copies, timed in turns against the code before (tdconv-bench,
// Intel Xeon): TCN 1.01-1.06x as fast at 2 threads, unchanged at 1 (0.99-1.01x). 2D and 3D tile rows write each
// group back whole: batch by batch, the context module and the 3D atrous layer ran 0.93-1.00x and 0.95-0.97x as fast
// at 2 threads (their rows of 128 and 32 columns written back in runs of a few lines).
constexpr std::int64_t kWriteBackColumns = 16;
// channels_last outputs over this size are stored by the output transforms with non-temporal stores: timed in turns
// (Intel Xeon, 1 thread; 2 threads alike), HiFi-GAN up3 (8 MiB) 1.20x as fast, WaveNet (8 MiB) 1.10x, DCGAN g4
// (16 MiB) 1.10x, TCN (16 MiB) 1.04x, DeepLab's res5 and the 3D atrous layer (8 MiB) 1.01x; the context module's
// 4 MiB gained 1% and stays plain, like the gemm path's outputs up to 4 MiB.
constexpr double kStreamOutputBytes = 4.0 * 1024 * 1024;

// One class of outputs along one axis: outputs out_first + j * out_step for j < count, where output j of the class
// is the correlation of inputs in_first + j * in_step + u * in_step (u < r) with kernel taps taps[u].
struct AxisClass {
  std::int64_t out_first = 0, count = 1, in_first = 0;
  int r = 0;  // taps: 1 to 3 (0 on an axis the problem does not have)
  std::array<std::int64_t, 3> taps{0, 0, 0};  // kernel index of correlation tap u
  // 3 taps whose tiles' first and last patch inputs are padding: the tiles read inputs 1 and 2 of F(2, 3)'s patch
  // (see kWinogradPaddedEnds). Set on every class of an axis or none (see mark_padded_ends).
  bool padded_ends = false;
  int code() const { return padded_ends ? kWinogradPaddedEnds : r; }  // the transforms' index (KernelSet)
};

// The taps of a taps code (AxisClass::code).
int code_taps(int code) { return code == kWinogradPaddedEnds ? 3 : code; }

// The problem's axes as z, y, x: a 1D or 2D problem's leading axes are trivial (size 1, one class of one output,
// not transformed).
struct Axis {
  bool active = false;
  std::int64_t in = 1, out = 1;
  std::int64_t out_step = 1;  // between consecutive outputs of a class: dilation (conv) or stride (transposed)
  std::int64_t in_step = 1;   // between consecutive inputs of a class: dilation (conv) or 1 (transposed)
  std::vector<AxisClass> classes{AxisClass{}};
};

// Whether Winograd takes the problem's shape: a convolution with 2 or 3 taps on every axis at stride 1, or a
// transposed one (dilation 1) whose phases have 2 or 3 taps on every axis (kernel r times the stride), or 1 or 2
// (kernel longer than the stride, at most twice it): the tile shapes compiled (see KernelSet::winograd_input).
bool winograd_shape(const Problem& p) {
  bool all_three = true, one_or_two = true, conv = true;
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t k = p.kernel[d], s = p.stride[d];
    conv = conv && s == 1 && (k == 2 || k == 3) && k == p.kernel[0];
    // Without multiplying the stride, which may be up to 2^62 (3 s and 2 s would overflow).
    all_three = all_three && k % 3 == 0 && k / 3 == s && p.dilation[d] == 1;
    one_or_two = one_or_two && k > s && k - s <= s && p.dilation[d] == 1;
  }
  return p.op == Op::conv ? conv : all_three || one_or_two;
}

// A convolution axis of 3 taps whose every tile (every class has 1 or 2 outputs, so one tile each) has the first and
// last inputs of its F(2, 3) patch in the padding: dilated by half the image or more, as DeepLab's ASPP at rate 18
// (33 pixels: classes of 2 outputs c and c + 18 reading inputs c and c + 18, from a patch c - 18 .. c + 36). Its
// tiles take 3 multiplications per axis instead of F(2, 3)'s 4 (kWinogradPaddedEnds): 2.25x fewer than the valid
// taps on such a class in 2D, 1.36x fewer on ASPP rate 18 as a whole (its 3 classes of one output per axis waste
// theirs).
void mark_padded_ends(Axis& a) {
  const bool padded = std::all_of(a.classes.begin(), a.classes.end(), [&](const AxisClass& k) {
    // in_first + 3 in_step >= in, without multiplying the dilation (up to 2^62)
    return k.r == 3 && k.count <= 2 && k.in_first < 0 && (a.in - k.in_first + 2) / 3 <= a.in_step;
  });
  for (AxisClass& k : a.classes) k.padded_ends = padded;
}

// Whether some axis has padded ends (mark_padded_ends sets every class of an axis alike).
bool has_padded_ends(const std::array<Axis, 3>& axes) {
  return std::any_of(axes.begin(), axes.end(), [](const Axis& a) { return a.classes[0].padded_ends; });
}

std::array<Axis, 3> axes_of(const Problem& p) {
  std::array<Axis, 3> axes;
  const Dims out = output_size(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    Axis& a = axes[static_cast<std::size_t>(3 - p.spatial_dims + d)];
    a.active = true, a.in = p.input[d], a.out = out[d];
    a.classes.clear();
    if (p.op == Op::conv) {
      // Residue class c: outputs c + j d read inputs c - pad + (j + u) d, taps u.
      a.out_step = a.in_step = p.dilation[d];
      for (std::int64_t c = 0; c < std::min(p.dilation[d], a.out); ++c) {
        AxisClass k;
        k.out_first = c, k.count = (a.out - c + a.out_step - 1) / a.out_step, k.in_first = c - p.pad_begin[d];
        k.r = static_cast<int>(p.kernel[d]);
        for (int u = 0; u < k.r; ++u) k.taps[static_cast<std::size_t>(u)] = u;
        a.classes.push_back(k);
      }
      mark_padded_ends(a);
    } else {
      // Phase c: output o = c + j s gets input i = (o + pad - t) / s for the r taps t = t0 + s v < kernel with
      // t0 = (c + pad) mod s, i.e. i = j + q - v, q = (c + pad - t0) / s; as a correlation over u = r - 1 - v:
      // inputs j + q - (r - 1) + u, taps t0 + s (r - 1 - u).
      const std::int64_t s = p.stride[d];
      a.out_step = s, a.in_step = 1;
      for (std::int64_t c = 0; c < std::min(s, a.out); ++c) {
        AxisClass k;
        const std::int64_t t0 = (c + p.pad_begin[d]) % s, q = (c + p.pad_begin[d] - t0) / s;
        const int r = k.r = static_cast<int>((p.kernel[d] - t0 + s - 1) / s);
        k.out_first = c, k.count = (a.out - c + s - 1) / s, k.in_first = q - (r - 1);
        for (int u = 0; u < r; ++u) k.taps[static_cast<std::size_t>(u)] = t0 + s * (r - 1 - u);
        a.classes.push_back(k);
      }
    }
  }
  // The transforms of padded ends are compiled for every axis or a mix with 3 taps in 2D (winograd_kernels.cpp).
  if (p.spatial_dims == 3 &&
      !std::all_of(axes.begin(), axes.end(), [](const Axis& a) { return a.classes[0].padded_ends; })) {
    for (Axis& a : axes)
      for (AxisClass& k : a.classes) k.padded_ends = false;
  }
  return axes;
}

// Multiply-adds per channel pair: those of the gemm path, (output, tap) pairs whose input is not padding, and
// Winograd's, r + n - 1 per axis per tile of n outputs along that axis (nx along x, 2 along the others).
struct Products {
  double valid = 1, winograd = 1;
};

// Both counts are products over the axes of per-axis sums over the classes.
Products count_products(const std::array<Axis, 3>& axes, int nx) {
  Products count;
  for (const Axis& a : axes) {
    if (!a.active) continue;
    const int n = &a == &axes[2] ? nx : 2;
    std::int64_t valid = 0, winograd = 0;
    for (const AxisClass& k : a.classes) {
      winograd += winograd_axis_elements(k.code(), n) * ((k.count + n - 1) / n);
      for (std::int64_t j = 0; j < k.count; ++j)
        for (int u = 0; u < k.r; ++u) {
          const std::int64_t i = k.in_first + (j + u) * a.in_step;
          valid += i >= 0 && i < a.in ? 1 : 0;
        }
    }
    count.valid *= static_cast<double>(valid);
    count.winograd *= static_cast<double>(winograd);
  }
  return count;
}

// Tiles of an image over all classes (phase combinations too), with nx outputs per tile along x and 2 along the
// other axes.
double count_tiles(const std::array<Axis, 3>& axes, int nx) {
  double tiles = 1;
  for (const Axis& a : axes) {
    const int n = &a == &axes[2] ? nx : 2;
    std::int64_t axis_tiles = 0;
    for (const AxisClass& k : a.classes) axis_tiles += (k.count + n - 1) / n;
    tiles *= static_cast<double>(axis_tiles);
  }
  return tiles;
}

// Taps r of a tile that may run F(4, r) along x: 3 for convolutions with 3 taps per axis (1D and 2D), 2 for 1D
// convolutions with 2 taps and 1D transposed ones whose phases all have 2 (kernel twice the stride); else 0.
int large_tile_taps(const Problem& p) {
  if (p.spatial_dims > 2) return 0;
  bool three = p.op == Op::conv;
  for (int d = 0; d < p.spatial_dims; ++d) three = three && p.kernel[d] == 3 && p.stride[d] == 1;
  if (three) return 3;
  if (p.spatial_dims != 1) return 0;
  if (p.op == Op::conv) return p.kernel[0] == 2 && p.stride[0] == 1 ? 2 : 0;
  return p.dilation[0] == 1 && p.kernel[0] % 2 == 0 && p.kernel[0] / 2 == p.stride[0] ? 2 : 0;
}

// Outputs along x of a tile: 4 (F(4, r) along x, F(2, r) along the other axes, see large_tile_taps) for problems with
// at most kMaxLargeTileChannels input channels (by the problem's axes) where that takes kMinLargeTileSaving
// (kMinLargeTileSaving2 for r = 2) times fewer multiplications than F(2, r) along x, as long as Winograd's other
// rules hold with it as with F(2, r) (its transformed kernels within kMaxTransformedBytes, kMinTilesPerKernel tiles
// per kernel), and no axis has padded ends (AxisClass::padded_ends); else 2.
int x_tile_outputs(const Problem& p) {
  const int r = large_tile_taps(p);
  if (r == 0) return 2;
  if (p.in_channels > kMaxLargeTileChannels[p.spatial_dims - 1]) return 2;
  const auto axes = axes_of(p);
  if (has_padded_ends(axes)) return 2;
  const double elements = (r + 3) * std::pow(r + 1, p.spatial_dims - 1);
  if (elements * static_cast<double>(p.in_channels * p.out_channels) * sizeof(float) > kMaxTransformedBytes) return 2;
  const double kernels = p.op == Op::conv ? 1 : static_cast<double>(axes[2].classes.size());
  if (count_tiles(axes, 4) < kMinTilesPerKernel * kernels) return 2;
  const double saving = r == 3 ? kMinLargeTileSaving : kMinLargeTileSaving2;
  return count_products(axes, 4).winograd * saving <= count_products(axes, 2).winograd ? 4 : 2;
}

// The threads a plan is made for: OpenMP's, as Plan::forward_workspace_bytes counts them.
int plan_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Output and source bytes of one image.
double image_output_bytes(const Problem& p) {
  return static_cast<double>(element_count(dst_shape(p), "dst") / p.batch) * sizeof(float);
}
double image_source_bytes(const Problem& p) {
  return static_cast<double>(element_count(src_shape(p), "src") / p.batch) * sizeof(float);
}

// channels_first: whether each image is copied and its outputs staged whole, by one thread (transposed convolutions
// whose image source and outputs each fit kMaxStagedBytes, so that the per-thread scratch stays small), rather than
// tile row by tile row. Whole images let a batch of tiles run long runs of one stride
// phase's kernel: DCGAN's g4 tile rows hold 8 tiles per phase, and Winograd there ran at half the speed of the gemm
// path. A convolution's tiles all share one kernel, and its tile rows need less scratch.
bool stages_images(const Problem& p) {
  return p.op == Op::conv_transpose && image_output_bytes(p) <= kMaxStagedBytes &&
         image_source_bytes(p) <= kMaxStagedBytes;
}

// channels_first transposed convolutions whose images are not staged whole go tile row by tile row, as the
// convolutions do: the source copied into channels_last a chunk of images at a time, each tile row's outputs (2 x 2
// output rows of one phase along z and y, all phases along x) staged and transposed into the planes. Their tiles
// are listed phase by phase within each row (prepare), so that each GEMM runs over a phase's tiles of the row: in
// the order of their first outputs, the x phases alternated, every GEMM took one tile and ran 1.8x slower. Timed in
// turns on Zen 4 (1 thread) against the path each took: the 3D ones of 64 -> 32 channels, kernel 3 at stride 2
// (vol_up_k3: 1.73x fewer multiplications than the valid taps) 1.12x as fast as gemm_planar (1.14x at 2 threads),
// 64 -> 64 with kernel 4 (2.37x fewer) 1.7x as fast as gemm_simd, 128 -> 64 with kernel 3 1.33x; a 2D 128 -> 128
// one with kernel 4 at stride 2 (1.78x fewer) 1.20x as fast as winograd_planar. Slower: 2D 64 -> 64 with kernel 4
// (0.96x of winograd_planar), CycleGAN's 128 -> 64 with kernel 3 (1.44x fewer; 0.96x), 3D 32 -> 32 with kernel 3
// (0.97x of gemm_planar): the transforms and the staging cost more per multiplication where the GEMMs are short.
constexpr std::int64_t kMinTileRowInputChannels = 64;

// The end of a reason to decline where Winograd saves under kLargeSaving times the valid taps' multiplications.
std::string under_large_saving() {
  char saving[16];
  std::snprintf(saving, sizeof saving, "%g", kLargeSaving);
  return std::string("saves under ") + saving + "x the multiplications of the valid taps";
}

std::optional<std::string> tile_rows_decline(const Problem& p, bool large_saving) {
  if (!large_saving) {
    return "channels_first transposed, not staged whole (image sources or outputs over 2 MiB), where it " +
           under_large_saving();
  }
  if (p.in_channels < kMinTileRowInputChannels) {
    return "channels_first transposed, not staged whole, with fewer than " +
           std::to_string(kMinTileRowInputChannels) + " input channels";
  }
  if (p.spatial_dims < 3 && std::min(p.in_channels, p.out_channels) < kMinChannelsMixedPhases) {
    return "channels_first 1D or 2D transposed, not staged whole, with fewer than " +
           std::to_string(kMinChannelsMixedPhases) + " channels";
  }
  return std::nullopt;
}

// channels_first: whether a convolution's output images are staged whole in channels_last (a chunk of images shared
// by the threads, see shared_chunk_images) and transposed into their planes once every batch of tiles is done,
// rather than tile row by tile row: its tiles then form batches as in channels_last. ASPP rate 6 (a 1.1 MiB output,
// 18 tiles per tile row) had run at 0.8x of the gemm path's speed with batches of a tile row, which read its
// 32 MiB of transformed kernels once per 18 tiles; staged whole it ran 1.20x as fast as the gemm path at 1 thread
// and 1.07x at 2 (in turns, Intel Xeon). In 1D a tile row is the whole image already (TCN ran 0.95-0.97x as fast
// staged this way, a 2 MiB image per chunk). Transposed convolutions whose images are staged whole (stages_images)
// share them too where there are fewer images than threads, which would otherwise leave threads idle (a work item
// per image): HiFi-GAN's up1 (one 2 MiB output image) ran 1.9x as fast at 2 threads as with one item, about as fast
// as in channels_last.
bool shares_staged_images(const Problem& p) {
  if (p.op == Op::conv_transpose) return stages_images(p) && p.batch < plan_threads();
  return p.spatial_dims >= 2 && image_output_bytes(p) <= kMaxStagedBytes;
}

// Output bytes a thread stages in channels_first (see forward_channels_first): a whole image, or one tile row (the
// output rows of the tiles with one first row: 1 in 1D, 2 in 2D, 2 x 2 in 3D).
double staged_bytes(const Problem& p) {
  if (stages_images(p)) return image_output_bytes(p);
  const Dims out = output_size(p);
  const double rows = p.spatial_dims == 1 ? 1 : (p.spatial_dims == 2 ? 2 : 4);
  return rows * static_cast<double>(out[p.spatial_dims - 1] * p.out_channels) * sizeof(float);
}

// Images per chunk of a channels_first source copied into channels_last: a divisor of the batch within
// kMaxImageBytes (0 if one image is larger).
std::int64_t chunk_images(const Problem& p) {
  const double image = image_source_bytes(p);
  if (image > kMaxImageBytes) return 0;
  std::int64_t n = std::min<std::int64_t>(p.batch, static_cast<std::int64_t>(kMaxImageBytes / image));
  while (p.batch % n != 0) --n;
  return n;
}

// ... and where the outputs are staged whole (shares_staged_images): also within kMaxStagedBytes of outputs.
std::int64_t shared_chunk_images(const Problem& p) {
  std::int64_t n = std::min<std::int64_t>(
      chunk_images(p), std::max<std::int64_t>(1, static_cast<std::int64_t>(kMaxStagedBytes / image_output_bytes(p))));
  while (n > 1 && p.batch % n != 0) --n;
  return n;
}

// A tile: the class along each axis, and j of its first output in each class (it computes j .. j + n - 1, n
// outputs along the axis: State::outs).
struct Tile {
  std::array<std::int32_t, 3> cls;
  std::array<std::int64_t, 3> j;
  std::int64_t kernel;  // which transformed kernel: 0 for convolutions, the phase combination for transposed ones
};

// channels_first: the tiles whose first output row (z, y) is the same, tiles [first, first + count) of
// State::tiles.
struct TileRow {
  std::int64_t oz, oy, first, count;
};

// One transformed kernel: its class along z, y, x (any class for a convolution: they all use the whole kernel), their
// taps codes (AxisClass::code; 0 on an axis the problem does not have), its elements (prod (r + 1) over the axes, 3
// along an axis of padded ends), where it starts in Packed::u, and its tiles' transforms.
struct KernelShape {
  std::array<std::size_t, 3> classes{0, 0, 0};
  std::array<int, 3> taps{0, 0, 0};
  int elements = 1;
  std::int64_t offset = 0;
  // Patch elements per axis, and how far the last is from the first in inputs, or the axis's input size where that
  // is as far or farther (no patch of the kernel fits inside the image along it).
  std::array<std::int64_t, 3> extent{1, 1, 1}, span{0, 0, 0};
  // Floats from a patch's first pixel to element e's, in an image in channels_last (patches inside the image).
  std::array<std::int64_t, kMaxPatchElements> element_offset{};
  KernelSet::WinogradInputFn input = nullptr;
  KernelSet::WinogradOutputFn output = nullptr;
};

struct State final : PlanState {
  KernelSet kernels;
  std::array<Axis, 3> axes;
  int dims = 1;
  int x_outs = 2;  // outputs along x of a tile (x_tile_outputs); 2 along the other axes
  int outs(std::size_t a) const { return a == 2 ? x_outs : 2; }  // outputs of a tile along axis a (z, y, x)
  // Patch (and transformed) elements along axis a of a tile with taps code `code` there (AxisClass::code): 1 on an
  // axis the problem lacks.
  int extent(std::size_t a, int code) const { return axes[a].active ? winograd_axis_elements(code, outs(a)) : 1; }
  int max_elements = 16;  // transformed elements of the largest tile
  int rows = 1, vectors = 1;
  std::int64_t nr = 1, blocks = 1;
  std::int64_t kernels_count = 1;  // transformed kernels: 1, or one per phase combination (transposed)
  std::vector<KernelShape> shapes;  // per transformed kernel
  std::vector<Tile> tiles;
  std::vector<TileRow> tile_rows;  // channels_first only; tiles are then sorted by their first output
  std::int64_t images = 1;  // channels_first: images per chunk copied into channels_last (all: copies_items)
  bool whole_images = false;  // channels_first: outputs staged an image at a time (stages_images)
  bool shared_images = false;  // channels_first: a chunk of images' outputs staged whole (shares_staged_images)
  bool stream = false;  // channels_first: the write-back transposes stream (see kStreamBytes)
  bool stream_outputs = false;  // channels_last: the output transforms stream
  std::int64_t tiles_per_batch = kTilesPerBatch;
  // channels_first (tile rows): tile rows per work item, whose tiles are batched together, and each tile's row.
  std::int64_t group_rows = 1;
  std::vector<std::int32_t> row_of_tile;
  // channels_first tile rows of 1D problems, where a work item is a whole image: the item's thread copies its image
  // into channels_last just before computing it (in L2 for the transformed patches), instead of the chunk of images
  // copied by all threads beforehand through memory, and writes its outputs back as they complete (see
  // kWriteBackColumns).
  bool copies_items = false;

  std::int64_t output(const Tile& t, int a, std::int64_t k) const {  // output index of element k along axis a
    const Axis& axis = axes[static_cast<std::size_t>(a)];
    return axis.classes[static_cast<std::size_t>(t.cls[static_cast<std::size_t>(a)])].out_first +
           (t.j[static_cast<std::size_t>(a)] + k) * axis.out_step;
  }
  std::array<std::int64_t, 3> first_output(const Tile& t) const {
    return {output(t, 0, 0), output(t, 1, 0), output(t, 2, 0)};
  }
  // Floats between a tile's consecutive outputs along z, y and x in a channels_last image of oc channels.
  std::array<std::int64_t, 3> image_out_steps(std::int64_t oc) const {
    return {axes[0].out_step * axes[1].out * axes[2].out * oc, axes[1].out_step * axes[2].out * oc,
            axes[2].out_step * oc};
  }
};

// The tiles in raster order of their first outputs (z, y, x).
// `phases_within_rows`: by first output row (z, y), then as prepare lists them (kernel, i.e. a transposed
// convolution's phase, then x) rather than by x. A counting sort over the output rows: std::sort on the first
// outputs had taken 4 ms to plan the 32768 tiles of vol_up_k3.
void sort_by_first_output(State& s, bool phases_within_rows = false) {
  const auto rows = static_cast<std::size_t>(s.axes[0].out * s.axes[1].out);
  std::vector<std::int64_t> row_end(rows + 1, 0);  // after the counts: where each row's tiles begin, then end
  std::vector<std::size_t> row_of(s.tiles.size());
  for (std::size_t i = 0; i < s.tiles.size(); ++i) {
    const auto o = s.first_output(s.tiles[i]);
    row_of[i] = static_cast<std::size_t>(o[0] * s.axes[1].out + o[1]);
    ++row_end[row_of[i] + 1];
  }
  for (std::size_t r = 0; r < rows; ++r) row_end[r + 1] += row_end[r];
  std::vector<Tile> sorted(s.tiles.size());
  for (std::size_t i = 0; i < s.tiles.size(); ++i) sorted[static_cast<std::size_t>(row_end[row_of[i]]++)] = s.tiles[i];
  if (!phases_within_rows) {
    for (std::size_t r = 0, begin = 0; r < rows; begin = static_cast<std::size_t>(row_end[r++])) {
      std::sort(sorted.begin() + static_cast<std::ptrdiff_t>(begin), sorted.begin() + row_end[r],
                [&](const Tile& a, const Tile& b) { return s.output(a, 2, 0) < s.output(b, 2, 0); });
    }
  }
  s.tiles = std::move(sorted);
}

struct Packed final : PackedData {
  util::AlignedFloats u;  // per kernel, from its offset: [element e][block][input channel][nr output channels]
};

// G g G^T along every axis of one kernel with taps code taps[a] along axis a (AxisClass::code; row-major over the
// `dims` axes), taps + n - 1 values per axis (3 for padded ends), row-major, for tiles of n outputs along the axis (nx
// along the last, 2 along the others).
//   F(2, 3): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1];  F(2, 2): G = [1 0; 1 1; 0 1];  F(2, 1): G = [1; 1];
//   F(4, 3): G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1];
//   F(4, 2): G = [1/2 0; 1/2 1/2; 1/6 -1/6; 1/6 1/3; 0 1] (the factors of B^T's rows, scaled to whole numbers in
//   winograd_transforms-inl.h, divided out);  padded ends (3 taps on inputs d1, d2): G = [0 1 0; 0 -1 1; 1 -1 0].
// Taps and transformed elements of one kernel at most: 3 x 3 x 3, and 4 x 4 x 6 (F(2, 3) along z and y, F(4, 3) along
// x).
constexpr int kMaxKernelTaps = 27;
constexpr int kMaxKernelElements = 96;
// The kernels of kPackLanes output channels, transformed together: [tap or element][output channel].
constexpr int kPackLanes = 16;
using KernelLanes = std::array<std::array<double, kPackLanes>, kMaxKernelElements>;
// In place, the output channels innermost where the compiler vectorises them. One kernel at a time, each with a
// vector per axis and per result, the packing spent most of its time in the allocator and the rest in scalar loops
// (ASPP rate 6: half a million kernels in each of its 9 shapes, 178 ms to pack 18 MiB of weights).
void transform_kernels(KernelLanes& g, int dims, const std::array<int, 3>& taps, int nx) {
  static constexpr double kG3[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double kG2[3][3] = {{1, 0, 0}, {1, 1, 0}, {0, 1, 0}};
  static constexpr double kG1[2][3] = {{1, 0, 0}, {1, 0, 0}};
  static constexpr double kG43[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                        {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                        {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  static constexpr double kG42[5][3] = {{0.5, 0, 0}, {0.5, 0.5, 0}, {1.0 / 6, -1.0 / 6, 0}, {1.0 / 6, 1.0 / 3, 0},
                                        {0, 1, 0}};
  static constexpr double kGPadded[3][3] = {{0, 1, 0}, {0, -1, 1}, {1, -1, 0}};
  std::array<std::int64_t, 3> shape{code_taps(taps[0]), code_taps(taps[1]), code_taps(taps[2])};
  KernelLanes next;
  for (int axis = 0; axis < dims; ++axis) {
    const int code = taps[static_cast<std::size_t>(axis)], r = code_taps(code), n = axis == dims - 1 ? nx : 2;
    const int alpha = winograd_axis_elements(code, n);
    const auto G = [code, r, n](int i, int k) {
      if (code == kWinogradPaddedEnds) return kGPadded[i][k];
      if (n == 4) return r == 3 ? kG43[i][k] : kG42[i][k];
      return r == 3 ? kG3[i][k] : (r == 2 ? kG2[i][k] : kG1[i][k]);
    };
    std::int64_t outer = 1, inner = 1;
    for (int a = 0; a < axis; ++a) outer *= shape[static_cast<std::size_t>(a)];
    for (int a = axis + 1; a < dims; ++a) inner *= shape[static_cast<std::size_t>(a)];
    for (std::int64_t o = 0; o < outer; ++o)
      for (int i = 0; i < alpha; ++i)
        for (std::int64_t j = 0; j < inner; ++j) {
          std::array<double, kPackLanes> sum{};
          for (int k = 0; k < r; ++k) {
            const double c = G(i, k);
            const auto& from = g[static_cast<std::size_t>((o * r + k) * inner + j)];
            for (int l = 0; l < kPackLanes; ++l) sum[static_cast<std::size_t>(l)] += c * from[static_cast<std::size_t>(l)];
          }
          next[static_cast<std::size_t>((o * alpha + i) * inner + j)] = sum;
        }
    std::copy(next.begin(), next.begin() + outer * alpha * inner, g.begin());
    shape[static_cast<std::size_t>(axis)] = alpha;
  }
}

class Winograd final : public detail::ForwardOnlyImplementation {
 public:
  std::string name() const override { return "winograd"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (!winograd_shape(p)) {
      return "neither a convolution with 2 or 3 taps per axis at stride 1 nor a transposed one whose kernel is 3 "
             "times the stride or longer than the stride and at most twice it, on every axis";
    }
    if (p.dtype != DType::f32) return "not float32";
    if (p.layout == Layout::channels_first && chunk_images(p) == 0) return "channels_first with images over 12 MiB";
    if (p.layout == Layout::channels_first && !shares_staged_images(p) && staged_bytes(p) > kMaxStagedBytes) {
      return "channels_first with tile rows over 2 MiB of output (each thread stages one)";
    }
    // channels_first problems whose work items are whole images (staged whole, or a 1D convolution's one tile row)
    // leave threads idle with fewer images than threads: at 2 threads a 1D 128 -> 128 channel convolution of one
    // 4096-pixel image ran 1.47x slower than on gemm_planar (1.36x faster at 1 thread), a 1D 64 -> 128 one of 2 taps
    // 1.97x slower than on winograd_planar (timed in turns, Intel Xeon).
    const bool items_are_images =
        (stages_images(p) || (p.op == Op::conv && p.spatial_dims == 1)) && !shares_staged_images(p);
    if (p.layout == Layout::channels_first && items_are_images && p.batch < plan_threads()) {
      return "channels_first with fewer images than threads (a work item per image)";
    }
    if (p.groups != 1) return "grouped";
    const int lanes = best_kernels().lanes;
    if (p.in_channels % lanes || p.out_channels % lanes) return "channels not a multiple of the vector width";
    const std::int64_t channels = std::min(p.in_channels, p.out_channels);
    if (channels < kMinChannelsLargeSaving) {
      return "fewer than " + std::to_string(kMinChannelsLargeSaving) + " channels";
    }
    const auto axes = axes_of(p);
    const int nx = x_tile_outputs(p);
    double elements = 1;  // of the largest tile
    bool one_tap_phases = false;
    for (const Axis& a : axes) {
      int most = 0;
      for (const AxisClass& k : a.classes) {
        most = std::max(most, winograd_axis_elements(k.code(), &a == &axes[2] ? nx : 2));
        one_tap_phases |= a.active && k.r == 1;
      }
      elements *= a.active ? most : 1;
    }
    const Products products = count_products(axes, nx);
    const bool large_saving = products.valid >= kLargeSaving * products.winograd;
    if (p.layout == Layout::channels_first && p.op == Op::conv_transpose && !stages_images(p)) {
      if (auto reason = tile_rows_decline(p, large_saving)) return reason;
    } else if (p.layout == Layout::channels_first && one_tap_phases &&
               std::min(p.in_channels, p.out_channels) < kMinChannelsMixedPhases) {
      return "channels_first stride phases of 1 and 2 taps with fewer than " +
             std::to_string(kMinChannelsMixedPhases) + " channels";
    }
    const bool wide = (p.layout == Layout::channels_last || shares_staged_images(p)) && lanes >= 16;
    const double limit = wide ? kMaxTransformedBytesWide : kMaxTransformedBytes;
    if (elements * static_cast<double>(p.in_channels * p.out_channels) * sizeof(float) > limit) {
      return "transformed kernels over " + std::to_string(static_cast<int>(limit / (1024 * 1024))) +
             " MiB (every batch of tiles streams them)";
    }
    double kernels = 1;
    for (const Axis& a : axes) {
      if (p.op == Op::conv_transpose) kernels *= static_cast<double>(a.classes.size());
    }
    if (count_tiles(axes, nx) < kMinTilesPerKernel * kernels) return "too few tiles per transformed kernel in an image";
    const double min_ratio = has_padded_ends(axes) ? kMinMultiplicationRatioPaddedEnds : kMinMultiplicationRatio;
    if (products.valid < min_ratio * products.winograd) {
      return "saves too few multiplications over skipping the padded taps";
    }
    if (channels < kMinChannels && !large_saving) {
      return "fewer than " + std::to_string(kMinChannels) + " channels where it " + under_large_saving();
    }
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->kernels = best_kernels();
    s->dims = p.spatial_dims;
    s->x_outs = x_tile_outputs(p);
    s->axes = axes_of(p);
    s->stream = image_output_bytes(p) * static_cast<double>(p.batch) > kStreamBytes;
    s->stream_outputs =
        p.layout == Layout::channels_last && image_output_bytes(p) * static_cast<double>(p.batch) > kStreamOutputBytes;
    s->vectors = static_cast<int>(std::min<std::int64_t>(p.out_channels / s->kernels.lanes, kMaxVectorsPerTile));
    while (p.out_channels % (s->vectors * s->kernels.lanes) != 0) --s->vectors;
    s->rows = s->kernels.mr[s->vectors];
    s->nr = s->vectors * s->kernels.lanes;
    s->blocks = p.out_channels / s->nr;
    const auto& ax = s->axes;
    const bool phases = p.op == Op::conv_transpose;
    const auto ny = static_cast<std::int32_t>(ax[1].classes.size());
    const auto nx = static_cast<std::int32_t>(ax[2].classes.size());
    s->kernels_count = phases ? static_cast<std::int64_t>(ax[0].classes.size()) * ny * nx : 1;
    s->max_elements = 1;
    for (std::int64_t kernel = 0, offset = 0; kernel < s->kernels_count; ++kernel) {
      KernelShape shape;
      shape.classes = {static_cast<std::size_t>(kernel / (ny * nx)), static_cast<std::size_t>(kernel / nx % ny),
                       static_cast<std::size_t>(kernel % nx)};
      for (std::size_t a = 0; a < 3; ++a) {
        shape.taps[a] = ax[a].active ? ax[a].classes[shape.classes[a]].code() : 0;
        shape.extent[a] = s->extent(a, shape.taps[a]);
        shape.elements *= static_cast<int>(shape.extent[a]);
        // Without multiplying a step past the image (dilations up to 2^62).
        shape.span[a] = ax[a].in_step >= ax[a].in ? (shape.extent[a] > 1 ? ax[a].in : 0)
                                                  : (shape.extent[a] - 1) * ax[a].in_step;
      }
      const bool fits = shape.span[0] < ax[0].in && shape.span[1] < ax[1].in && shape.span[2] < ax[2].in;
      for (std::int64_t ez = 0, e = 0; fits && ez < shape.extent[0]; ++ez)
        for (std::int64_t ey = 0; ey < shape.extent[1]; ++ey)
          for (std::int64_t ex = 0; ex < shape.extent[2]; ++ex, ++e) {
            shape.element_offset[static_cast<std::size_t>(e)] =
                ((ez * ax[0].in_step * ax[1].in + ey * ax[1].in_step) * ax[2].in + ex * ax[2].in_step) * p.in_channels;
          }
      shape.offset = offset;
      offset += shape.elements * p.in_channels * p.out_channels;
      const auto [z, y, x] = shape.taps;
      shape.input = s->x_outs == 4 ? s->kernels.winograd4_input[x][s->dims] : s->kernels.winograd_input[z][y][x];
      shape.output = s->x_outs == 4 ? s->kernels.winograd4_output[x][s->dims] : s->kernels.winograd_output[z][y][x];
      s->max_elements = std::max(s->max_elements, shape.elements);
      s->shapes.push_back(shape);
    }
    s->tiles.reserve(static_cast<std::size_t>(count_tiles(ax, s->x_outs)));
    for (std::int32_t cz = 0; cz < static_cast<std::int32_t>(ax[0].classes.size()); ++cz)
      for (std::int32_t cy = 0; cy < ny; ++cy)
        for (std::int32_t cx = 0; cx < nx; ++cx) {
          const std::int64_t kernel = phases ? (static_cast<std::int64_t>(cz) * ny + cy) * nx + cx : 0;
          for (std::int64_t jz = 0; jz < ax[0].classes[static_cast<std::size_t>(cz)].count; jz += 2)
            for (std::int64_t jy = 0; jy < ax[1].classes[static_cast<std::size_t>(cy)].count; jy += 2)
              for (std::int64_t jx = 0; jx < ax[2].classes[static_cast<std::size_t>(cx)].count; jx += s->x_outs) {
                s->tiles.push_back({{cz, cy, cx}, {jz, jy, jx}, kernel});
              }
        }
    if (!phases && p.layout == Layout::channels_last && transformed_bytes(p, *s) < kLargeBatchBytes) {
      // Tiles in raster order of their first outputs (z, y, x), so that a batch's tiles read neighbouring input
      // pixels and write neighbouring outputs, rather than class by class (outputs a dilation apart: WaveNet's, 256
      // pixels apart, read and wrote rows 64 and 128 KiB apart). Timed in turns (Intel Xeon, 1 thread): WaveNet 1.08x
      // as fast, the 3D atrous layer 1.08x, TCN 1.05x. DeepLab's res5 and ASPP rate 6 ran the same within the noise
      // (1 and 2 threads): with kLargeBatchBytes of transformed kernels, which every batch streams, they keep the
      // class order. channels_first sorts its tiles so for its tile rows (below).
      sort_by_first_output(*s);
    }
    if (p.layout == Layout::channels_first && shares_staged_images(p)) {
      s->shared_images = true;
      s->images = shared_chunk_images(p);
    } else if (p.layout == Layout::channels_first && stages_images(p)) {
      s->whole_images = true;
    } else if (p.layout == Layout::channels_first) {
      s->copies_items = p.spatial_dims == 1 && image_source_bytes(p) <= kMaxStagedBytes;
      s->images = s->copies_items ? p.batch : chunk_images(p);
      // A transposed convolution's tile row lists its tiles phase by phase (see tile_rows_decline). Items that copy
      // their image (copies_items) write back in the order of first outputs.
      sort_by_first_output(*s, phases && !s->copies_items);
      for (std::int64_t t = 0; t < static_cast<std::int64_t>(s->tiles.size()); ++t) {
        const auto o = s->first_output(s->tiles[static_cast<std::size_t>(t)]);
        if (s->tile_rows.empty() || s->tile_rows.back().oz != o[0] || s->tile_rows.back().oy != o[1]) {
          s->tile_rows.push_back({o[0], o[1], t, 0});
        }
        ++s->tile_rows.back().count;
      }
      for (std::size_t r = 0; r < s->tile_rows.size(); ++r) {
        s->row_of_tile.resize(static_cast<std::size_t>(s->tile_rows[r].first + s->tile_rows[r].count),
                              static_cast<std::int32_t>(r));
      }
    }
    // Large batches where the transformed kernels are large, as long as the workspace stays within kMaxWorkspace
    // with the threads OpenMP would use.
    const double transformed = transformed_bytes(p, *s);
    if (transformed >= kLargeBatchBytes) s->tiles_per_batch = kLargeTilesPerBatch;
    const int threads = plan_threads();
    if (s->tile_rows.empty() && !s->whole_images) {
      balance_batches(p, *s, threads);
      return s;
    }
    while (s->tiles_per_batch > kTilesPerBatch &&
           static_cast<double>(workspace_bytes(p, *s, s->tiles_per_batch, threads)) > kMaxWorkspace) {
      s->tiles_per_batch /= 2;
    }
    if (!s->tile_rows.empty() && transformed >= kLargeBatchBytes) choose_group_rows(p, *s, threads);
    return s;
  }

  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    std::int64_t taps = 1;
    for (int d = 0; d < p.spatial_dims; ++d) taps *= p.kernel[d];
    const auto& ax = s.axes;
    auto packed = std::make_shared<Packed>();
    const KernelShape& last_shape = s.shapes.back();
    packed->u.assign(static_cast<std::size_t>(last_shape.offset + last_shape.elements * ic * oc), 0.0f);
    const WeightStrides from = weight_strides(p, taps);
    for (std::int64_t kernel = 0; kernel < s.kernels_count; ++kernel) {
      const KernelShape& shape = s.shapes[static_cast<std::size_t>(kernel)];
      // Kernel tap of correlation tap (uz, uy, ux), as a row-major index over the problem's axes.
      std::vector<std::int64_t> tap_of;
      const int rz = std::max(1, code_taps(shape.taps[0])), ry = std::max(1, code_taps(shape.taps[1]));
      const int rx = std::max(1, code_taps(shape.taps[2]));
      std::array<int, 3> problem_taps{0, 0, 0};  // per axis of the problem, outermost first
      for (int d = 0; d < s.dims; ++d) {
        problem_taps[static_cast<std::size_t>(d)] = shape.taps[static_cast<std::size_t>(3 - s.dims + d)];
      }
      for (int uz = 0; uz < rz; ++uz)
        for (int uy = 0; uy < ry; ++uy)
          for (int ux = 0; ux < rx; ++ux) {
            std::int64_t tap = 0;
            const int u[3] = {uz, uy, ux};
            for (int a = 0; a < 3; ++a) {
              if (!ax[static_cast<std::size_t>(a)].active) continue;
              const int d = a - (3 - p.spatial_dims);
              const AxisClass& k = ax[static_cast<std::size_t>(a)].classes[shape.classes[static_cast<std::size_t>(a)]];
              tap = tap * p.kernel[d] + k.taps[static_cast<std::size_t>(u[a])];
            }
            tap_of.push_back(tap);
          }
      if (shape.elements > kMaxKernelElements || tap_of.size() > static_cast<std::size_t>(kMaxKernelTaps)) {
        throw std::logic_error("winograd: a kernel larger than transform_kernels takes");
      }
      // Output channels innermost: each element's packed values are then written kPackLanes at a time,
      // consecutively. With input channels innermost they were written a line apart, every line revisited nr times
      // after the other elements' lines had pushed it out.
      const std::int64_t element_stride = s.blocks * ic * s.nr;
      KernelLanes g{};
      // Groups of output channels that divide nr, so that each group's lanes go to one block, consecutively.
      const std::int64_t step = std::gcd<std::int64_t>(s.nr, kPackLanes);
      for (std::int64_t o0 = 0; o0 < oc; o0 += step) {
        const std::int64_t lanes = std::min<std::int64_t>(step, oc - o0);
        for (std::int64_t q = 0; q < ic; ++q) {
          // Group 0: Winograd takes ungrouped problems only.
          for (std::size_t t = 0; t < tap_of.size(); ++t)
            for (std::int64_t l = 0; l < lanes; ++l) g[t][static_cast<std::size_t>(l)] = w[from.at(0, q, o0 + l, tap_of[t])];
          transform_kernels(g, s.dims, problem_taps, s.x_outs);
          float* to = packed->u.data() + shape.offset + ((o0 / s.nr) * ic + q) * s.nr + o0 % s.nr;
          for (int e = 0; e < shape.elements; ++e) {
            const auto& values = g[static_cast<std::size_t>(e)];
            for (std::int64_t l = 0; l < lanes; ++l) {
              to[e * element_stride + l] = static_cast<float>(values[static_cast<std::size_t>(l)]);
            }
          }
        }
      }
    }
    packed->bytes = packed->u.size() * sizeof(float);
    return packed;
  }

  // Bytes of all the transformed kernels (s.shapes set).
  static double transformed_bytes(const Problem& p, const State& s) {
    const KernelShape& last = s.shapes.back();
    return static_cast<double>(last.offset + last.elements * p.in_channels * p.out_channels) * sizeof(float);
  }

  // Batches of an image as many as a multiple of the threads, of equal size in whole tiles of the gemm kernel, at
  // most tiles_per_batch and within kMaxWorkspace: ASPP's 324 tiles had taken 3 batches of 144 (one thread
  // computing two, the other one). Timed in turns at 2 threads: ASPP rate 6 channels_last 1.07x, DeepLab's res5
  // 1.04x (its 1089 tiles in 8 batches of 138, not 7 of 144 and one of 81). Where the workspace limit binds (ASPP
  // rate 6 channels_first at 2 threads, whose 10 MiB of source copy and staged outputs leave 3 MiB per thread),
  // more batches per thread rather than halved ones: halving to 72 and balancing had given 6 batches of 54, each
  // streaming all 32 MiB of transformed kernels, where 4 of 84 fit (1.03x as fast, 8 processes in turns).
  static void balance_batches(const Problem& p, State& s, int threads) {
    const auto tiles = static_cast<std::int64_t>(s.tiles.size());
    const std::int64_t most = s.tiles_per_batch;
    for (std::int64_t rounds = std::max<std::int64_t>(1, ((tiles + most - 1) / most + threads - 1) / threads);;
         ++rounds) {  // batches per thread
      const std::int64_t even = (tiles + rounds * threads - 1) / (rounds * threads);
      s.tiles_per_batch = std::min(most, (even + s.rows - 1) / s.rows * s.rows);
      if (s.tiles_per_batch <= kTilesPerBatch ||
          static_cast<double>(workspace_bytes(p, s, s.tiles_per_batch, threads)) <= kMaxWorkspace) {
        return;
      }
    }
  }

  // channels_first tile rows, where the batches are large (kLargeBatchBytes): as many per work item as a batch of
  // tiles holds (no partial batch after full ones), within kMaxStagedBytes of staged rows and the workspace limit,
  // leaving kMinGroupItemsPerThread items per thread. DeepLab's res5 has 33 tiles per row: its batches of 33 had
  // read the transformed kernels twice as often as with pairs of rows. It takes 4 rows (132 tiles) at 1 thread,
  // 1.08x as fast as pairs there (timed in turns), and pairs at 2 threads (17 items). Where the kernels are small the
  // rows stay alone: the 3D atrous layer ran 0.92-0.93x as fast in groups of 3 rows.
  static void choose_group_rows(const Problem& p, State& s, int threads) {
    const auto rows = static_cast<std::int64_t>(s.tile_rows.size());
    const double row_tiles = static_cast<double>(s.tiles.size()) / static_cast<double>(rows);
    auto group = static_cast<std::int64_t>(std::floor(static_cast<double>(s.tiles_per_batch) / row_tiles));
    group = std::clamp<std::int64_t>(group, 1, static_cast<std::int64_t>(kMaxStagedBytes / staged_bytes(p)));
    while (group > 1 && s.images * ((rows + group - 1) / group) < kMinGroupItemsPerThread * threads) --group;
    s.group_rows = group;
    while (s.group_rows > 1 && static_cast<double>(workspace_bytes(p, s, s.tiles_per_batch, threads)) > kMaxWorkspace) {
      --s.group_rows;
    }
  }

  // Per thread: the transformed patches (a chunk of input channels) and products of one batch of `batch` tiles and
  // their patches' pointers (run_batch), and for channels_first the staged tile row; the channels_last copy of the
  // source: per thread an image (whole images, or copies_items), else per call a chunk of images.
  static std::size_t workspace_bytes(const Problem& p, const State& s, std::int64_t batch, int threads) {
    constexpr auto kPointerFloats = static_cast<std::int64_t>(sizeof(const float*)) / 4;
    std::int64_t per_thread = s.max_elements * batch * (std::min(p.in_channels, kPassChannels) + p.out_channels) +
                              batch * s.max_elements * kPointerFloats;
    std::int64_t per_call = 0;
    if (p.layout == Layout::channels_first && s.shared_images) {
      per_call = s.images * (element_count(src_shape(p), "src") + element_count(dst_shape(p), "dst")) / p.batch;
    } else if (p.layout == Layout::channels_first) {
      per_thread += s.group_rows * static_cast<std::int64_t>(staged_bytes(p) / sizeof(float));
      const std::int64_t image = element_count(src_shape(p), "src") / p.batch;
      if (s.whole_images || s.copies_items) {
        per_thread += image;
      } else {
        per_call = s.images * image;
      }
    }
    return static_cast<std::size_t>(threads * per_thread + per_call) * sizeof(float);
  }

  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    return workspace_bytes(p, s, s.tiles_per_batch, threads);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const auto& packed = static_cast<const Packed&>(*args.weights);
    if (p.layout == Layout::channels_first) return forward_channels_first(p, s, packed, args);
    const auto tiles = static_cast<std::int64_t>(s.tiles.size());
    const std::int64_t batch = s.tiles_per_batch;
    const std::int64_t batches = (tiles + batch - 1) / batch;
    const auto& ax = s.axes;
    const std::int64_t src_image = ax[0].in * ax[1].in * ax[2].in * p.in_channels;
    const std::int64_t dst_image = ax[0].out * ax[1].out * ax[2].out * p.out_channels;
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t item = 0; item < p.batch * batches; ++item) {
      const std::int64_t n = item / batches, first = (item % batches) * batch;
      const float* src = static_cast<const float*>(args.src) + n * src_image;
      float* dst = static_cast<float*>(args.dst) + n * dst_image;
      run_batch(
          p, s, packed, args.bias, src, first, std::min(batch, tiles - first),
          [&](std::int64_t, std::int64_t z, std::int64_t y, std::int64_t x) {
            return dst + ((z * ax[1].out + y) * ax[2].out + x) * p.out_channels;
          },
          s.image_out_steps(p.out_channels), s.stream_outputs);
      if (s.stream_outputs) hwy::FlushStream();  // streamed stores are visible before the threads join
    }
  }

  // Convolutions with small output images (shares_staged_images): per chunk of images, the sources copied into
  // channels_last, every batch of tiles computed into the chunk's staged outputs (channels_last), then those
  // transposed into the channel planes, each step shared by the threads.
  void forward_shared_images(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args) const {
    const auto& ax = s.axes;
    const std::int64_t in_pixels = ax[0].in * ax[1].in * ax[2].in, out_pixels = ax[0].out * ax[1].out * ax[2].out;
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const auto tiles = static_cast<std::int64_t>(s.tiles.size());
    const std::int64_t batches = (tiles + s.tiles_per_batch - 1) / s.tiles_per_batch;
    constexpr std::int64_t kSlice = 64;  // output pixels per transposition
    const std::int64_t slices = (out_pixels + kSlice - 1) / kSlice;
    thread_local util::AlignedFloats src_last, staged;  // the caller's: [image][pixel][channel]
    src_last.resize(static_cast<std::size_t>(s.images * in_pixels * ic));
    staged.resize(static_cast<std::size_t>(s.images * out_pixels * oc));
    const float* last = src_last.data();
    float* const stage = staged.data();
    for (std::int64_t n0 = 0; n0 < p.batch; n0 += s.images) {
      to_channels_last(s.kernels, static_cast<const float*>(args.src) + n0 * ic * in_pixels, src_last.data(),
                       ic * in_pixels, s.images, ic, in_pixels, true);
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t item = 0; item < s.images * batches; ++item) {
        const std::int64_t i = item / batches, first = item % batches * s.tiles_per_batch;
        run_batch(p, s, packed, args.bias, last + i * in_pixels * ic, first,
                  std::min(s.tiles_per_batch, tiles - first),
                  [&](std::int64_t, std::int64_t z, std::int64_t y, std::int64_t x) {
                    return stage + (i * out_pixels + (z * ax[1].out + y) * ax[2].out + x) * oc;
                  },
                  s.image_out_steps(oc));
      }
#pragma omp parallel for schedule(static)
      for (std::int64_t item = 0; item < s.images * slices; ++item) {
        const std::int64_t i = item / slices, x0 = item % slices * kSlice;
        s.kernels.transpose(stage + (i * out_pixels + x0) * oc, oc,
                            static_cast<float*>(args.dst) + (n0 + i) * oc * out_pixels + x0, out_pixels, oc,
                            std::min(kSlice, out_pixels - x0), s.stream);
        if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
      }
    }
  }

  // Whole images (transposed convolutions with small outputs): per image, the source copied into channels_last and
  // the outputs staged in channels_last, then transposed into the channel planes. Convolutions with small outputs:
  // forward_shared_images. Otherwise a chunk of images at a time copied into channels_last (in 1D, each image by the
  // thread that computes it: copies_items), and per image and group of tile rows (the tiles with one first row) the
  // outputs staged and transposed into the planes (in 1D as they complete, see kWriteBackColumns).
  void forward_channels_first(const Problem& p, const State& s, const Packed& packed, const ForwardArgs& args) const {
    if (s.shared_images) return forward_shared_images(p, s, packed, args);
    const auto& ax = s.axes;
    const std::int64_t in_pixels = ax[0].in * ax[1].in * ax[2].in, out_pixels = ax[0].out * ax[1].out * ax[2].out;
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const std::int64_t nz = ax[0].active ? 2 : 1, ny = ax[1].active ? 2 : 1;  // staged rows along z and y
    const auto rows = static_cast<std::int64_t>(s.tile_rows.size());
    if (s.whole_images) {
      // Each image copied into channels_last by the thread that computes it, just before: its transformed patches
      // then read it from L2 (copied a chunk of images at a time, the patches of DCGAN's g4 read it from L3 and the
      // input transform took 16% of the time).
      const auto tiles = static_cast<std::int64_t>(s.tiles.size());
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t n = 0; n < p.batch; ++n) {
        thread_local util::AlignedFloats image_last, staged;  // [pixel][input channel], [pixel][output channel]
        image_last.resize(static_cast<std::size_t>(in_pixels * ic));
        staged.resize(static_cast<std::size_t>(out_pixels * oc));
        s.kernels.transpose(static_cast<const float*>(args.src) + n * ic * in_pixels, in_pixels, image_last.data(), ic,
                            in_pixels, ic, false);
        for (std::int64_t first = 0; first < tiles; first += s.tiles_per_batch) {
          run_batch(p, s, packed, args.bias, image_last.data(), first, std::min(s.tiles_per_batch, tiles - first),
                    [&](std::int64_t, std::int64_t z, std::int64_t y, std::int64_t x) {
                      return staged.data() + ((z * ax[1].out + y) * ax[2].out + x) * oc;
                    },
                    s.image_out_steps(oc));
        }
        s.kernels.transpose(staged.data(), oc, static_cast<float*>(args.dst) + n * oc * out_pixels, out_pixels, oc,
                            out_pixels, s.stream);
        if (s.stream) hwy::FlushStream();  // streamed stores are visible before the threads join
      }
      return;
    }
    const std::int64_t groups = (rows + s.group_rows - 1) / s.group_rows;
    const std::int64_t row_floats = static_cast<std::int64_t>(staged_bytes(p) / sizeof(float));  // per tile row
    thread_local util::AlignedFloats src_last;
    if (!s.copies_items) src_last.resize(static_cast<std::size_t>(s.images * in_pixels * ic));
    for (std::int64_t n0 = 0; n0 < p.batch; n0 += s.images) {
      if (!s.copies_items) {
        to_channels_last(s.kernels, static_cast<const float*>(args.src) + n0 * ic * in_pixels, src_last.data(),
                         ic * in_pixels, s.images, ic, in_pixels, true);
      }
      const float* chunk_last = src_last.data();  // the caller's thread_local: read it here, not in the threads
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t item = 0; item < s.images * groups; ++item) {
        const std::int64_t i = item / groups;
        const float* image_last = chunk_last + i * in_pixels * ic;
        if (s.copies_items) {
          thread_local util::AlignedFloats item_last;  // [pixel][input channel]
          item_last.resize(static_cast<std::size_t>(in_pixels * ic));
          s.kernels.transpose(static_cast<const float*>(args.src) + (n0 + i) * ic * in_pixels, in_pixels,
                              item_last.data(), ic, in_pixels, ic, false);
          image_last = item_last.data();
        }
        const std::int64_t g0 = item % groups * s.group_rows, g1 = std::min(rows, g0 + s.group_rows);
        float* dst = static_cast<float*>(args.dst) + (n0 + i) * oc * out_pixels;
        thread_local util::AlignedFloats staged;  // per tile row of the group: [z of the row][y of the row][x][oc]
        staged.resize(static_cast<std::size_t>(s.group_rows * row_floats));
        // The group's tiles are consecutive (sorted by their first output), batched across its tile rows.
        const std::int64_t begin = s.tile_rows[static_cast<std::size_t>(g0)].first;
        const std::int64_t end = s.tile_rows[static_cast<std::size_t>(g1 - 1)].first +
                                 s.tile_rows[static_cast<std::size_t>(g1 - 1)].count;
        // Staged columns [x0, x1) of tile row r written back into the planes.
        const auto write_back = [&](std::int64_t r, std::int64_t x0, std::int64_t x1) {
          if (x1 <= x0) return;
          const TileRow& row = s.tile_rows[static_cast<std::size_t>(r)];
          for (std::int64_t jz = 0; jz < nz; ++jz)
            for (std::int64_t jy = 0; jy < ny; ++jy) {
              const std::int64_t z = row.oz + jz * ax[0].out_step, y = row.oy + jy * ax[1].out_step;
              if (z >= ax[0].out || y >= ax[1].out) continue;
              s.kernels.transpose(staged.data() + (r - g0) * row_floats + ((jz * ny + jy) * ax[2].out + x0) * oc, oc,
                                  dst + (z * ax[1].out + y) * ax[2].out + x0, out_pixels, oc, x1 - x0, s.stream);
            }
        };
        // A staged tile row holds ny rows per output plane: z steps skip them.
        const std::array<std::int64_t, 3> row_out_steps{ny * ax[2].out * oc, ax[2].out * oc, ax[2].out_step * oc};
        std::int64_t done_row = g0, done_x = 0;  // written back: rows before done_row, done_row's columns < done_x
        for (std::int64_t first = begin; first < end; first += s.tiles_per_batch) {
          const std::int64_t next = std::min(end, first + s.tiles_per_batch);
          run_batch(p, s, packed, args.bias, image_last, first, next - first,
                    [&](std::int64_t t, std::int64_t z, std::int64_t y, std::int64_t x) {
                      const std::int64_t r = s.row_of_tile[static_cast<std::size_t>(t)];
                      const TileRow& row = s.tile_rows[static_cast<std::size_t>(r)];
                      const std::int64_t staged_row =
                          (z - row.oz) / ax[0].out_step * ny + (y - row.oy) / ax[1].out_step;
                      return staged.data() + (r - g0) * row_floats + (staged_row * ax[2].out + x) * oc;
                    },
                    row_out_steps);
          if (next == end || !s.copies_items) continue;
          // Tiles are sorted by their first output: every output of the next tile's row left of its first one is
          // done, and so is every row before it.
          const Tile& tile = s.tiles[static_cast<std::size_t>(next)];
          const std::int64_t row = s.row_of_tile[static_cast<std::size_t>(next)];
          const std::int64_t x = s.output(tile, 2, 0) / kWriteBackColumns * kWriteBackColumns;
          for (; done_row < row; ++done_row, done_x = 0) write_back(done_row, done_x, ax[2].out);
          if (x > done_x) write_back(row, done_x, x), done_x = x;
        }
        for (; done_row < g1; ++done_row, done_x = 0) write_back(done_row, done_x, ax[2].out);
        if (s.stream) hwy::FlushStream();
      }
    }
  }

 private:
  // Tiles [first, first + count) of one image: src is the image in channels_last, out_at(t, z, y, x) where output
  // pixel (z, y, x) of tile t (an index into State::tiles) goes (oc consecutive floats), out_steps the floats from
  // there to the tile's next output along z, y and x (a step of its class: every destination is a grid). The tiles
  // of one batch may use different kernels (phases).
  template <class OutAt>
  void run_batch(const Problem& p, const State& s, const Packed& packed, const void* bias_data, const float* src,
                 std::int64_t first, std::int64_t count, const OutAt& out_at,
                 const std::array<std::int64_t, 3>& out_steps, bool stream = false) const {
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    const auto& ax = s.axes;

    // Per-thread scratch (grows once per thread): the transformed patches of one chunk of input channels and the
    // products, one plane per element. Chunk by chunk, each chunk's patches are transformed and multiplied into the
    // products before the next: the transformed patches of all 2048 channels of ASPP had taken 4.7 MiB per thread.
    const std::int64_t chunk = std::min(ic, kPassChannels);
    thread_local util::AlignedFloats v_buf, m_buf;
    v_buf.resize(static_cast<std::size_t>(s.max_elements * s.tiles_per_batch * chunk));
    m_buf.resize(static_cast<std::size_t>(s.max_elements * s.tiles_per_batch * oc));
    const std::int64_t m_plane = s.tiles_per_batch * oc;
    thread_local std::vector<const float*> patches;  // [tile][element]: the patch's pixels, null in padding
    patches.resize(static_cast<std::size_t>(s.tiles_per_batch * s.max_elements));

    // Tile t's patch: the pixels of its elements (null in padding), into patches[t].
    const auto find_patch = [&](std::int64_t t, const KernelShape& shape, const Tile& tile) {
      const std::array<std::int64_t, 3>& extent = shape.extent;
      std::array<std::int64_t, 3> i0{};  // input index of the patch's first element per axis
      bool inside = true;
      for (std::size_t a = 0; a < 3; ++a) {
        const AxisClass& k = ax[a].classes[static_cast<std::size_t>(tile.cls[a])];
        // Padded ends: the patch starts at F(2, 3)'s second input (its third element, F(2, 3)'s fourth, is padding).
        i0[a] = k.in_first + (tile.j[a] + (k.padded_ends ? 1 : 0)) * ax[a].in_step;
        inside = inside && i0[a] >= 0 && i0[a] + shape.span[a] < ax[a].in;
      }
      const float** patch = patches.data() + t * s.max_elements;
      if (inside) {  // most tiles: every element's pixel at its offset from the first
        const float* first_pixel = src + ((i0[0] * ax[1].in + i0[1]) * ax[2].in + i0[2]) * ic;
        for (int e = 0; e < shape.elements; ++e) {
          patch[e] = first_pixel + shape.element_offset[static_cast<std::size_t>(e)];
        }
        return;
      }
      int e = 0;  // patch elements row-major
      for (std::int64_t ez = 0; ez < extent[0]; ++ez) {
        const std::int64_t iz = i0[0] + ez * ax[0].in_step;
        for (std::int64_t ey = 0; ey < extent[1]; ++ey) {
          const std::int64_t iy = i0[1] + ey * ax[1].in_step;
          const bool inside_zy = iz >= 0 && iz < ax[0].in && iy >= 0 && iy < ax[1].in;
          for (std::int64_t ex = 0; ex < extent[2]; ++ex, ++e) {
            const std::int64_t ix = i0[2] + ex * ax[2].in_step;
            patch[e] =
                inside_zy && ix >= 0 && ix < ax[2].in ? src + ((iz * ax[1].in + iy) * ax[2].in + ix) * ic : nullptr;
          }
        }
      }
    };

    TileCall call;
    const float* a_ptr = nullptr;
    const float* b_ptr = nullptr;
    call.a = &a_ptr;
    call.b = &b_ptr;
    call.ntaps = 1;
    call.c_pixel_stride = oc;
    call.nr_valid = static_cast<int>(s.nr);
    for (std::int64_t c0 = 0; c0 < ic; c0 += chunk) {
      const std::int64_t k = std::min(chunk, ic - c0);
      const std::int64_t v_plane = s.tiles_per_batch * k;
      std::array<const float*, kMaxPatchElements> patch{};
      for (std::int64_t t = 0; t < count; ++t) {
        const Tile& tile = s.tiles[static_cast<std::size_t>(first + t)];
        const KernelShape& shape = s.shapes[static_cast<std::size_t>(tile.kernel)];
        if (c0 == 0) find_patch(t, shape, tile);
        const float* const* from = patches.data() + t * s.max_elements;
        if (c0 > 0) {  // the chunk's channels of the patch's pixels
          for (int e = 0; e < shape.elements; ++e) {
            patch[static_cast<std::size_t>(e)] = from[e] != nullptr ? from[e] + c0 : nullptr;
          }
          from = patch.data();
        }
        shape.input(from, k, v_buf.data() + t * k, v_plane);
      }
      call.k = k;
      call.a_pixel_stride = k;
      call.accumulate = c0 > 0;
      // Runs of consecutive tiles with one kernel share each GEMM (a transposed convolution's tiles are listed phase
      // by phase, so runs are long; a convolution's tiles all have one kernel).
      for (std::int64_t t0 = 0; t0 < count;) {
        const std::int64_t kernel = s.tiles[static_cast<std::size_t>(first + t0)].kernel;
        std::int64_t t1 = t0 + 1;
        while (t1 < count && s.tiles[static_cast<std::size_t>(first + t1)].kernel == kernel) ++t1;
        const KernelShape& shape = s.shapes[static_cast<std::size_t>(kernel)];
        for (int e = 0; e < shape.elements; ++e)
          for (std::int64_t block = 0; block < s.blocks; ++block) {
            b_ptr = packed.u.data() + shape.offset + ((e * s.blocks + block) * ic + c0) * s.nr;
            for (std::int64_t t = t0; t < t1; t += s.rows) {
              call.m = static_cast<int>(std::min<std::int64_t>(s.rows, t1 - t));
              a_ptr = v_buf.data() + e * v_plane + t * k;
              call.c = m_buf.data() + e * m_plane + t * oc + block * s.nr;
              s.kernels.gemm[s.vectors](call);
            }
          }
        t0 = t1;
      }
    }

    const float* bias = static_cast<const float*>(bias_data);
    std::array<float*, 8> outputs{};  // 2 x 2 x 2 (3D) or 2 x 4 (2D with F(4, 3) along x) at most
    std::array<std::int64_t, 3> outs{};  // outputs per axis of a tile
    for (std::size_t a = 0; a < 3; ++a) outs[a] = ax[a].active ? s.outs(a) : 1;
    for (std::int64_t t = 0; t < count; ++t) {
      const Tile& tile = s.tiles[static_cast<std::size_t>(first + t)];
      std::array<std::int64_t, 3> left{};  // outputs of the tile's class from the tile's first one on, per axis
      for (std::size_t a = 0; a < 3; ++a) {
        left[a] = ax[a].classes[static_cast<std::size_t>(tile.cls[a])].count - tile.j[a];
      }
      float* const first_output = out_at(first + t, s.output(tile, 0, 0), s.output(tile, 1, 0), s.output(tile, 2, 0));
      int j = 0;  // outputs row-major
      for (std::int64_t kz = 0; kz < outs[0]; ++kz)
        for (std::int64_t ky = 0; ky < outs[1]; ++ky)
          for (std::int64_t kx = 0; kx < outs[2]; ++kx, ++j) {
            const bool inside = kz < left[0] && ky < left[1] && kx < left[2];
            outputs[static_cast<std::size_t>(j)] =
                inside ? first_output + kz * out_steps[0] + ky * out_steps[1] + kx * out_steps[2] : nullptr;
          }
      s.shapes[static_cast<std::size_t>(tile.kernel)].output(m_buf.data() + t * oc, m_plane, oc, bias,
                                                             outputs.data(), stream);
    }
  }
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_winograd_engine() { return std::make_shared<Winograd>(); }

}  // namespace tdconv::engine
