// Differential tests of the SIMD engine against the reference: random shapes that reach every edge (kernel smaller
// than stride, kernel not a multiple of stride, padding past the kernel, output padding, dilation with stride,
// groups and depthwise, odd channel counts up to 67, 1D/2D/3D), every compiled SIMD target, 1 and 2 threads,
// outputs pre-filled with NaN so unwritten elements show.
#include <algorithm>
#include <array>
#include <gtest/gtest.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

#include "engine/kernels.hpp"
#include "util/aligned_buffer.hpp"
#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "tdconv/plan.hpp"

namespace tdconv::testing {
namespace {

struct Case {
  Problem problem;
  std::vector<float> src, weights, bias;
};

Case random_case(std::mt19937_64& rng, int index) {
  ProblemLimits lim;
  Case c;
  const int kind = index % 5;
  if (kind == 1) {  // many channels, small spatial: odd counts up to 67
    lim.max_channels_per_group = 67;
    lim.max_groups = 1;
    lim.max_input = 4;
    lim.max_spatial_dims = 2;
  }
  c.problem = random_problem(rng, index % 2 ? Op::conv : Op::conv_transpose, lim);
  Problem& p = c.problem;
  if (kind == 3) {  // depthwise with a channel count the depthwise kernel takes (a multiple of 16)
    p.groups = p.in_channels = p.out_channels = 16 * uniform(rng, 1, 3);
  }
  if (kind == 4) {  // few outputs per group, many inputs: the dot kernel, with partial lane blocks
    p.in_channels = p.groups * uniform(rng, 8, 40);
    p.out_channels = p.groups * uniform(rng, 1, 4);
  }
  p.dtype = DType::f32;
  validate(p);
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  c.src = to_float(random_values(rng, src_shape(p)));
  c.weights = to_float(random_values(rng, weights_shape(p)));
  c.bias = to_float(random_values(rng, bias_shape(p)));
  return c;
}

// `aligned`: the output starts on a 64-byte boundary (where vector stores may stream); otherwise it is where the
// allocator put it (16 bytes past a page for large outputs).
std::vector<float> run_plan(const Case& c, [[maybe_unused]] int threads, std::string* implementation,
                            bool aligned = false, const std::string& forced = "",
                            [[maybe_unused]] int plan_threads = 1) {
  const Problem& p = c.problem;
#ifdef _OPENMP
  // Plans made for one thread unless told, whatever ran before (their choice may depend on the threads).
  omp_set_num_threads(plan_threads);
#endif
  const Plan plan(p, PlanOptions{forced});
  *implementation = plan.implementation_name();
  const auto count = static_cast<std::size_t>(element_count(dst_shape(p), "t"));
  std::vector<float> storage(count + 16, std::numeric_limits<float>::quiet_NaN());
  float* dst_begin = storage.data();
  while (aligned && reinterpret_cast<std::uintptr_t>(dst_begin) % 64 != 0) ++dst_begin;
  const std::span<float> dst(dst_begin, count);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  const PackedWeights packed = plan.pack_weights(view(c.weights.data(), weights_shape(p)));
  plan.forward(view(c.src.data(), src_shape(p)), packed, view(c.bias.data(), bias_shape(p)),
               mutable_view(dst.data(), dst_shape(p)));
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  return {dst.begin(), dst.end()};
}

void check_against_reference(const Case& c, const std::vector<float>& got, const std::string& implementation) {
  const Problem& p = c.problem;
  std::vector<float> want(got.size());
  reference::forward(p, c.src.data(), c.weights.data(), c.bias.data(), want.data());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "element " << i << " not written by " << implementation << ": "
                                     << to_string(p);
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::abs(want[i])))
        << "element " << i << " by " << implementation << ": " << to_string(p);
  }
}

class EngineTarget : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engine::force_target(GetParam()));
    ASSERT_EQ(engine::best_kernels().target, GetParam());
  }
  void TearDown() override { engine::force_target(""); }
};

TEST_P(EngineTarget, MatchesReferenceOnRandomProblemsWithOneAndTwoThreads) {
  std::mt19937_64 rng(21);
  int fast = 0;
  for (int i = 0; i < 400; ++i) {
    const Case c = random_case(rng, i);
    std::string impl1, impl2;
    const auto one = run_plan(c, 1, &impl1);
    const auto two = run_plan(c, 2, &impl2);
    check_against_reference(c, one, impl1);
    ASSERT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)))
        << "1 and 2 threads differ: " << to_string(c.problem);
    fast += impl1 != "reference";
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(fast, 400) << "every float32 problem should take a SIMD path";
}

// One problem with random values (from rng) must take `expected`: against the reference, 1 and 2 threads bitwise
// equal. `forced`: run it on `expected` even where the planner would choose another implementation.
// `plan_threads`: the threads its plan is made for (whose choice may depend on them).
void check_problem(std::mt19937_64& rng, const Problem& p, const std::string& expected, bool aligned = false,
                   bool forced = false, int plan_threads = 1) {
  Case c;
  c.problem = p;
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  c.src = to_float(random_values(rng, src_shape(p)));
  c.weights = to_float(random_values(rng, weights_shape(p)));
  c.bias = to_float(random_values(rng, bias_shape(p)));
  std::string impl1, impl2;
  const std::string force = forced ? expected : "";
  const auto one = run_plan(c, 1, &impl1, aligned, force, plan_threads);
  EXPECT_EQ(impl1, expected) << to_string(p);
  check_against_reference(c, one, impl1);
  const auto two = run_plan(c, 2, &impl2, aligned, force, plan_threads);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << to_string(p);
}

// Named problems that must take `expected`, against the reference, 1 and 2 threads bitwise equal.
void check_problems(const std::vector<const char*>& problems, const std::string& expected, bool aligned = false,
                    bool forced = false) {
  std::mt19937_64 rng(31);
  for (const char* text : problems) check_problem(rng, parse_problem(text), expected, aligned, forced);
}

// 40 valid problems from draw(rng, i), i = 0, 1, ... (invalid draws skipped, at most `draws`), each checked as
// above. `taken_only`: draws the planner gives to another implementation are skipped too (for a path whose rules
// depend on the target's vector width).
template <class Draw>
void check_random_problems(std::uint64_t seed, const Draw& draw, const std::string& expected, bool taken_only = false,
                           int draws = 200) {
  std::mt19937_64 rng(seed);
  int ran = 0;
  for (int i = 0; ran < 40 && i < draws; ++i) {
    const Problem p = draw(rng, i);
    try {
      validate(p);
    } catch (const Error&) {
      continue;  // e.g. padding that leaves no output
    }
    if (taken_only && Plan(p).implementation_name() != expected) continue;
    check_problem(rng, p, expected);
    if (::testing::Test::HasFailure()) return;
    ++ran;
  }
  EXPECT_EQ(ran, 40) << "too many draws were invalid" << (taken_only ? " or taken by another implementation" : "");
}

// Winograd takes 3x3 stride-1 layers with many channels; tiles cross the image edge, residue classes of odd sizes,
// a partial last batch of tiles, both weight layouts.
void check_winograd(const std::vector<const char*>& problems) { check_problems(problems, "winograd"); }

// Packed weights and workspaces start on a cache line whatever their size (small blocks come from the heap, large
// ones from mmap, both 16 bytes into a line with plain std::vector), so that no vector load of a packed row spans
// two lines.
TEST(Engine, AlignedBuffersStartOnACacheLine) {
  for (std::size_t n : {1u, 3u, 17u, 1000u, 40000u, 3000000u}) {
    util::AlignedFloats v(n, 1.0f);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % util::kCacheLineBytes, 0u) << n;
    v.resize(2 * n + 5);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % util::kCacheLineBytes, 0u) << n;
  }
}

// Buffers of kHugeBufferBytes or more (relayout copies, Winograd's transformed kernels) start on a 2 MiB boundary,
// where the kernel can back them with huge pages; smaller ones keep the cache line alignment, and both kinds grow,
// shrink and copy between each other like any vector.
TEST(Engine, LargeAlignedBuffersStartOnAHugePage) {
  const std::size_t large = util::kHugeBufferBytes / sizeof(float);
  for (std::size_t n : {large, large + 1, 3 * large + 17}) {
    util::AlignedFloats v(n, 2.0f);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % util::kHugePageBytes, 0u) << n;
    v.back() = 3.0f;
    util::AlignedFloats small(v.begin(), v.begin() + 10);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small.data()) % util::kCacheLineBytes, 0u) << n;
    v.resize(2 * n);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % util::kHugePageBytes, 0u) << n;
    EXPECT_EQ(v[n - 1], 3.0f);
    EXPECT_EQ(v[n - 2], 2.0f);
    v.assign(large - 1, 1.0f);
    v.shrink_to_fit();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % util::kCacheLineBytes, 0u) << n;
  }
}

// The gemm path adds products in passes (tap groups x input channel chunks) when a tile's weights exceed 256 KiB
// (kPassBytes; the smaller ones here take one pass): many input channels (channel chunks, which only the 4200
// input channels reach: 1024 per chunk with AVX-512's 6 x 64 tile, 2048 with AVX2's 2 x 4 tile, 4096 with its 6 x 2
// tile and SSE4's; a partial output block), several taps per pass (300 channels x 9 taps: 3 a pass with AVX-512),
// border tiles with fewer taps than a pass skips, both layouts, both weight layouts, groups, 1D to 3D, strided
// transposed; 64 output channels in long runs take AVX2's 6 x 2 tile (520 channels x 9 taps: two passes of taps).
TEST(Engine, GemmPassesMatchReference) {
  check_problems({"conv_mb1_g1_ic300_oc70_i7x9_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch",
                  "conv_mb1_g1_ic300_oc70_i7x9_k3x3_s1x1_d2x2_p5:1x0:4_f32_cfirst_wtf",
                  "convT_mb2_g1_ic400_oc40_i5x6_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
                  "convT_mb3_g1_ic300_oc64_i2x2_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
                  "conv_mb1_g2_ic140_oc130_i4x5x6_k3x3x3_s1x1x1_d1x1x1_p1:1x1:1x1:1_f32_clast_wtorch",
                  "conv_mb1_g1_ic40_oc20_i4x5x6_k3x3x3_s1x1x1_d2x1x2_p3:3x1:1x0:2_f32_clast_wtorch",
                  "conv_mb2_g1_ic520_oc33_i37_k5_s2_d3_p7:1_f32_cfirst_wtorch",
                  "convT_mb7_g1_ic300_oc70_i2x2_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                  "conv_mb1_g1_ic4200_oc40_i3x5_k1x2_s1x1_d1x3_p0:0x2:1_f32_clast_wtorch",
                  "conv_mb1_g1_ic4200_oc40_i3x5_k1x2_s1x1_d1x3_p0:0x2:1_f32_cfirst_wtf",
                  "conv_mb1_g1_ic520_oc64_i9x11_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch",
                  "conv_mb1_g1_ic520_oc64_i9x11_k3x3_s1x1_d2x3_p3:1x0:4_f32_cfirst_wtf",
                  "conv_mb1_g1_ic4200_oc64_i3x5_k1x2_s1x1_d1x3_p0:0x2:1_f32_clast_wtorch"},
                 "gemm_simd");
}

// Gemm tiles whose block of packed weights exceeds 1 MiB take work items of as many rows as leave 8 of them (9 rows
// of 36 here, 4 bands x 2 blocks, the second block one channel), not 256 pixels' worth: both layouts.
TEST(Engine, GemmItemsOfLargeWeightsMatchReference) {
  check_problems({"conv_mb1_g1_ic456_oc65_i36x30_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch",
                  "conv_mb1_g1_ic456_oc65_i36x30_k3x3_s1x1_d2x2_p2:2x2:2_f32_cfirst_wtf"},
                 "gemm_simd");
}

// channels_first runs on the channels_last kernels over chunks of images copied into channels_last (a batch of 3
// in chunks of 1 here), which write the destination in channels_first; a source too large to copy runs directly on
// the gemm kernel with channels a plane apart (the 1500x1500 one). Tiles with several passes keep their partial
// sums in channels_last (GemmPassesMatchReference has those, with channels_first too).
TEST(Engine, ChannelsFirstMatchesReference) {
  check_problems({"conv_mb3_g1_ic2_oc3_i1000x1000_k1x1_s1x1_d1x1_p0:0x0:0_f32_cfirst_wtorch",
                  "conv_mb2_g4_ic64_oc64_i20x21_k3x3_s1x1_d2x2_p2:2x2:2_f32_cfirst_wtorch"},
                 "gemm_simd");
  // Strided along x: the planar path declines, depthwise_simd runs it through channels_last.
  check_problems({"conv_mb1_g16_ic16_oc16_i9x11_k3x3_s1x2_d3x3_p3:3x3:3_f32_cfirst_wtorch",
                  "conv_mb2_g32_ic32_oc32_i300x300_k4x4_s2x2_d1x1_p1:1x1:1_f32_cfirst_wtorch"},
                 "depthwise_simd");
  // (The second one subpixel_gemm would take: run on gemm_simd.)
  check_problems({"conv_mb1_g1_ic2_oc2_i1500x1500_k1x1_s1x1_d1x1_p0:0x0:0_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic3_oc5_i700x700_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtf"},
                 "gemm_simd", false, true);
}

// A work item computes every phase of a transposed row in its columns (256 pixels per phase): rows longer than one
// column (2080 outputs at stride 8 against 2048 per column, 904 at stride 3 against 768, 2200 at stride 2 against
// 512), cut mid-phase, FCN-8s' 8 phases of 21 channels, output padding, channels_last written directly and
// channels_first staged, 1D and 2D, 1 and 2 threads. Dropping one pixel of the second phase at each cut fails all four.
TEST(Engine, TransposedRowsLongerThanAColumnMatchReference) {
  check_problems({"convT_mb1_g1_ic21_oc21_i2x260_k16x16_s8x8_d1x1_p4:4x4:4_op0x0_f32_clast_wtorch",
                  "convT_mb1_g1_ic21_oc21_i2x260_k16x16_s8x8_d1x1_p4:4x4:4_op0x0_f32_cfirst_wtorch",
                  "convT_mb2_g1_ic9_oc13_i2x301_k5x5_s3x3_d1x1_p1:1x1:1_op2x1_f32_clast_wtf",
                  "convT_mb1_g1_ic16_oc24_i1100_k4_s2_d1_p1:2_op1_f32_clast_wtorch"},
                 "gemm_simd", false, true);  // the channels_last ones would take subpixel_gemm
}

// Every implementation that takes `p` (forced), against the reference, 1 and 2 threads bitwise equal, within 16 MiB
// of workspace at 2 threads; returns how many took it.
int check_every_implementation(std::mt19937_64& rng, const Problem& p) {
  int checked = 0;
  for (const std::string& name : implementation_names()) {
    if (name == "reference") continue;
    try {
      const Plan plan(p, PlanOptions{name});
#ifdef _OPENMP
      omp_set_num_threads(2);
#endif
      EXPECT_LE(plan.forward_workspace_bytes(), 16u << 20) << name << ": " << to_string(p);
#ifdef _OPENMP
      omp_set_num_threads(1);
#endif
    } catch (const Error&) {
      continue;  // declined
    }
    check_problem(rng, p, name, false, true);
    ++checked;
  }
  return checked;
}

// Extreme geometries: strides of thousands (a transposed convolution's phases, mostly without taps), with dilation,
// padding, output padding, groups, kernels of 2806 and 40000 taps, output rows of 100000 pixels: every implementation
// that takes each problem, against the reference, 1 and 2 threads, within 16 MiB of workspace at 2 threads. The
// depthwise planar path had divided by zero (chunks of no pixels of each of 20000 phases), the gemm path's
// channels_first staging had grown with the stride (a column held 256 pixels of every phase: 100 MB of workspace at
// stride 100000), the sub-pixel path's with the output row (21 MiB for 105572 pixels of 26 channels), and the scatter
// path's products with the kernel (41 MiB for 2806 taps).
TEST(Engine, ExtremeGeometriesMatchReferenceInBoundedWorkspace) {
  std::mt19937_64 rng(43);
  int checked = 0;
  const std::vector<const char*> problems = {
      "convT_mb1_g16_ic16_oc16_i9_k3_s20000_d1_p0:0_op0_f32_cfirst_wtorch",
      "convT_mb1_g1_ic4_oc3_i9_k3_s100000_d1_p0:0_op0_f32_cfirst_wtorch",
      "convT_mb1_g1_ic4_oc26_i460_k2_s230_d1_p5:0_op0_f32_cfirst_wtorch",
      "convT_mb1_g1_ic3_oc3_i2101_k2806_s57_d8_p15483:20114_op0_f32_cfirst_wtf",
      "convT_mb2_g2_ic8_oc6_i7_k5_s3000_d700_p1000:200_op17_f32_clast_wtorch",
      "convT_mb2_g2_ic8_oc6_i7_k5_s3000_d700_p1000:200_op17_f32_cfirst_wtf",
      "convT_mb1_g1_ic8_oc8_i9_k40000_s20000_d1_p0:0_op0_f32_clast_wtorch",
      "convT_mb1_g1_ic16_oc16_i5x5_k3x3_s100x100_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
      "convT_mb1_g4_ic4_oc4_i3x3x3_k2x2x2_s40x40x40_d1x1x1_p5:0x0:5x3:3_op0x0x1_f32_cfirst_wtorch"};
  for (const char* text : problems) checked += check_every_implementation(rng, parse_problem(text));
  EXPECT_GE(checked, 10);
}

// Random extreme geometries (seeded): log-uniform strides up to 50000 for transposed convolutions (300 for
// convolutions), dilations up to 3000, paddings past the kernel by up to 2000, kernels up to 3000 taps in 1D, inputs
// of 1 to 5000 pixels, 1D to 3D, groups, both layouts and weight layouts; outputs and inputs up to 500000 elements,
// at most 2000 products per output (so that float32's rounding stays within the tolerance) and a reference of at
// most 3e7 multiply-adds. Every implementation that takes each one, as above. The sweep this samples (400 problems
// per seed) found the bounds of the gemm, sub-pixel and scatter paths fixed with the problems above.
TEST(Engine, RandomExtremeGeometriesMatchReferenceInBoundedWorkspace) {
  std::mt19937_64 rng(47);
  const auto log_uniform = [&](std::int64_t hi) {
    const double e = std::uniform_real_distribution<double>(0, std::log(static_cast<double>(hi) + 1))(rng);
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::exp(e)), 1, hi);
  };
  int problems = 0, checked = 0;
  for (int draw = 0; problems < 800 && draw < 300000; ++draw) {
    Problem p;
    p.op = uniform(rng, 0, 1) ? Op::conv : Op::conv_transpose;
    p.spatial_dims = static_cast<int>(uniform(rng, 1, 3));
    p.batch = uniform(rng, 1, 2);
    p.groups = uniform(rng, 0, 2) == 0 ? uniform(rng, 1, 16) : 1;
    p.in_channels = p.groups * (uniform(rng, 0, 1) ? uniform(rng, 1, 4) : uniform(rng, 1, 40));
    p.out_channels = uniform(rng, 0, 3) == 0 ? p.in_channels : p.groups * uniform(rng, 1, 40);
    const std::int64_t max_input = p.spatial_dims == 1 ? 5000 : p.spatial_dims == 2 ? 200 : 30;
    for (int d = 0; d < p.spatial_dims; ++d) {
      p.input[d] = log_uniform(max_input);
      p.kernel[d] = uniform(rng, 0, 3) == 0 ? log_uniform(p.spatial_dims == 1 ? 3000 : 20) : uniform(rng, 1, 5);
      p.stride[d] = log_uniform(p.op == Op::conv_transpose ? 50000 : 300);
      p.dilation[d] = log_uniform(3000);
      const std::int64_t extent = p.dilation[d] * (p.kernel[d] - 1) + 1;
      p.pad_begin[d] = uniform(rng, 0, 2) == 0 ? 0 : uniform(rng, 0, extent + log_uniform(2000));
      p.pad_end[d] = uniform(rng, 0, 2) == 0 ? 0 : uniform(rng, 0, extent + log_uniform(2000));
      if (p.op == Op::conv_transpose && uniform(rng, 0, 2) == 0) {
        p.output_padding[d] = uniform(rng, 0, std::max(p.stride[d], p.dilation[d]) - 1);
      }
    }
    p.dtype = DType::f32;
    p.layout = uniform(rng, 0, 1) ? Layout::channels_last : Layout::channels_first;
    p.weight_layout = uniform(rng, 0, 1) ? WeightLayout::tf : WeightLayout::torch;
    try {
      validate(p);
    } catch (const Error&) {
      continue;
    }
    const std::int64_t dst = element_count(dst_shape(p), "dst"), src = element_count(src_shape(p), "src");
    const std::int64_t weights = element_count(weights_shape(p), "weights");
    const std::int64_t products = weights / p.out_channels * (p.op == Op::conv ? 1 : p.out_channels / p.groups);
    const std::int64_t strided = p.op == Op::conv ? dst / p.out_channels : src / p.in_channels;
    if (dst > 500000 || src > 500000 || products > 2000 || static_cast<double>(strided) * weights > 3e7) continue;
    checked += check_every_implementation(rng, p);
    ++problems;
    if (HasFailure()) return;
  }
  EXPECT_EQ(problems, 800);
  EXPECT_GE(checked, 850) << "too few problems taken by more than one implementation";
}

// Tiles across the batch (small images) whose images are a multiple of 4 KiB apart run on a copy of the source with
// the images one cache line further apart (copied_image_stride), channels_last (copied as is, in parallel) and
// channels_first (copied into channels_last); 1 and 2 threads. The copy's buffer belongs to the calling thread, and
// a parallel copy that named it from the other thread had crashed at 2 threads. Images of 1024 floats (64 channels
// of 4x4, 256 of 4), batches of 7 and 9 (tiles of 6 and of fewer), 2D transposed and 1D convolutions.
TEST(Engine, BatchTilesOverImagesFourKiBApartMatchReference) {
  check_problems({"convT_mb7_g1_ic64_oc40_i4x4_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
                  "convT_mb7_g1_ic64_oc64_i4x4_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
                  "conv_mb9_g1_ic256_oc24_i4_k3_s1_d1_p1:1_f32_clast_wtorch",
                  "conv_mb9_g1_ic256_oc24_i4_k3_s1_d2_p2:1_f32_cfirst_wtorch"},
                 "gemm_simd", false, true);
}

// Channels_first depthwise, plane by plane: rows shorter and longer than the unrolled vectors, rows whose taps all
// land in padding (padding past the kernel), dilation with stride, transposed strides 2 to 5 (interleaved phases,
// including a stride larger than the output row; 5 is past the fused kernels) and larger than the kernel, output
// padding, rows over 4096 pixels cut into chunks (conv and transposed), odd channel counts, 1D to 3D, a batch, both
// weight layouts.
TEST(Engine, PlanarDepthwiseMatchesReference) {
  check_problems({"conv_mb1_g3_ic3_oc3_i9x11_k3x3_s1x1_d3x3_p3:3x3:3_f32_cfirst_wtorch",
                  "conv_mb2_g5_ic5_oc5_i37x130_k5x4_s2x1_d2x3_p7:1x9:2_f32_cfirst_wtf",
                  "conv_mb1_g7_ic7_oc7_i301_k7_s1_d5_p40:3_f32_cfirst_wtorch",
                  "conv_mb1_g2_ic2_oc2_i5x6x7_k3x3x3_s2x1x1_d1x2x1_p1:1x2:2x1:1_f32_cfirst_wtf",
                  "convT_mb1_g16_ic16_oc16_i64x64_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                  "convT_mb2_g3_ic3_oc3_i13x17_k3x5_s3x3_d1x2_p1:0x2:1_op2x1_f32_cfirst_wtf",
                  "convT_mb1_g4_ic4_oc4_i29_k2_s5_d1_p0:0_op4_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic2_oc2_i1x2_k1x2_s1x7_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
                  "convT_mb1_g3_ic3_oc3_i70x3_k4x3_s4x4_d1x1_p2:1x3:3_op1x2_f32_cfirst_wtorch",
                  "convT_mb1_g5_ic5_oc5_i4x5x6_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtf",
                  "convT_mb1_g2_ic2_oc2_i2500_k4_s2_d1_p1:1_op1_f32_cfirst_wtorch",
                  "conv_mb1_g3_ic3_oc3_i9001_k5_s1_d3_p6:2_f32_cfirst_wtf",
                  // Short rows in blocks of rows (34 pixels: a partial third vector; 17; segments of 12, 9 and 12
                  // rows, of 3 and 26). Rows, not flat planes: the output is a pixel wider than the input.
                  "conv_mb1_g5_ic5_oc5_i33x33_k3x3_s1x1_d12x12_p12:12x12:13_f32_cfirst_wtorch",
                  "conv_mb2_g3_ic3_oc3_i29x17_k2x3_s1x1_d3x5_p0:2x6:3_f32_cfirst_wtf"},
                 "depthwise_planar");
}

// Dense channels_first layers with pixels as lanes (gemm_planar): 1D to 3D, dilation with asymmetric padding, rows cut
// into chunks (rows over 1024 pixels; chunks of 4 spans of the taps, at most 2048) with and without phases, transposed
// strides 2 and 3 with output padding and a stride past the kernel (a phase with no taps), phases stored interleaved by
// the kernel (one pass) or through phase rows (several passes, or runs per segment), groups, odd channel counts, input
// channels in several passes with rows whose taps all land in padding, a strided y axis, rows run per segment of equal
// taps and rows run whole over zero-padded columns, bands of several rows sharing input rows, a batch, both weight
// layouts.
const std::vector<const char*> kPlanarGemmProblems = {
    "conv_mb1_g1_ic31_oc67_i301_k3_s1_d7_p9:7_f32_cfirst_wtorch",
    "conv_mb2_g1_ic16_oc24_i3000_k2_s1_d256_p256:0_f32_cfirst_wtf",  // 24 outputs: too few for winograd_planar
    "convT_mb1_g1_ic24_oc17_i1500_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic9_oc12_i70_k5_s3_d1_p2:1_op2_f32_cfirst_wtf",
    "convT_mb1_g2_ic32_oc24_i9x70_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtorch",
    "conv_mb1_g1_ic100_oc20_i7x300_k3x3_s1x1_d1x2_p4:2x2:5_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc8_i3x4x66_k3x3x3_s1x2x2_d1x1x1_p1:1x0:0x1:1_op0x1x1_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc9_i80_k2_s3_d1_p0:0_op1_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc8_i5x70_k3x3_s1x1_d1x30_p1:1x30:30_f32_cfirst_wtorch",
    "conv_mb2_g1_ic8_oc16_i9x64_k3x3_s2x1_d2x1_p2:2x1:1_f32_cfirst_wtf",
    "conv_mb4_g1_ic8_oc8_i64x100_k3x3_s1x1_d2x1_p2:2x1:1_f32_cfirst_wtorch",
    "convT_mb2_g1_ic8_oc12_i40x70_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
    "convT_mb1_g1_ic200_oc16_i5x300_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic16_oc32_i4x5x33_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc12_i5000_k3_s1_d700_p700:650_f32_cfirst_wtorch",
    // 3D bands of 2 planes x 3 rows (Band), the last ones partial along z (11 planes) and y (13 rows)
    "convT_mb2_g1_ic9_oc16_i6x7x33_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op0x0x0_f32_cfirst_wtorch"};

TEST(Engine, PlanarGemmMatchesReference) { check_problems(kPlanarGemmProblems, "gemm_planar"); }

// winograd_planar: x phases of 2 taps on consecutive columns (transposed kernel 4 at stride 2, or a convolution's
// kernel 2), or of 1 and 2 (kernel 3 at stride 2), in groups of 4 pixels (long rows) or 2 (with AVX-512, the 3D
// problem's 64-pixel phases; see also PlanarWinogradGroupsOfTwoMatchReference). Rows cut into chunks (over 1024
// pixels) with windows inside the input (transformed straight from the source, with a batch and groups too) and at
// its edges (through the panel), both phases from one pair of loads (kernel 4, padding 1) and each from its own,
// odd phase lengths (a last group of fewer pixels), odd channel counts and a batch, padding past the kernel,
// asymmetric padding and output padding, 2D and 3D with several (z, y) taps per row, a strided y axis, one phase (a
// convolution), groups, both weight layouts.
const std::vector<const char*> kPlanarWinogradProblems = {
    "convT_mb1_g1_ic24_oc32_i1500_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch",
    "convT_mb2_g1_ic9_oc33_i301_k4_s2_d1_p2:1_op1_f32_cfirst_wtf",
    "convT_mb1_g1_ic16_oc40_i130_k4_s2_d1_p0:0_op0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc32_i200_k4_s2_d1_p5:6_op1_f32_cfirst_wtorch",
    "convT_mb1_g2_ic16_oc64_i9x64_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc32_i3x4x64_k2x3x4_s1x2x2_d1x1x1_p0:0x1:1x1:1_op0x1x0_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc32_i500_k2_s1_d1_p1:0_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc32_i9x64_k3x2_s2x1_d2x1_p2:2x0:1_f32_cfirst_wtf",
    "convT_mb1_g1_ic16_oc32_i4x5x64_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch",
    "convT_mb1_g1_ic12_oc32_i700_k3_s2_d1_p1:1_op1_f32_cfirst_wtorch",
    "convT_mb1_g1_ic12_oc33_i333_k3_s2_d1_p0:0_op0_f32_cfirst_wtf",
    // chunks transformed from the source with a batch and groups; both phases' lower taps on one column (padding 2)
    "convT_mb2_g2_ic32_oc64_i1500_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc32_i1500_k4_s2_d1_p2:2_op0_f32_cfirst_wtorch",
    // 2 taps along x a dilation apart (a multiple of every target's vectors): groups along the dilation, in blocks of
    // n d pixels. Causal padding and a partial last block (one chunk per row); long rows in chunks of whole blocks
    // (the first and last with padding, through the panel; those between from the source), asymmetric padding, a
    // batch, output channels not a multiple of a tile's; groups and a dilation of 3 vectors; 2D, taps along y too;
    // rows of 64 pixels at dilation 16 (groups of 2 with 16 lanes); a transposed convolution at stride 1 (its taps
    // reversed)
    "conv_mb1_g1_ic16_oc32_i1000_k2_s1_d32_p32:0_f32_cfirst_wtorch",
    "conv_mb2_g1_ic8_oc40_i5000_k2_s1_d16_p9:7_f32_cfirst_wtf",
    "conv_mb1_g2_ic16_oc64_i3000_k2_s1_d48_p0:48_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc32_i6x300_k2x2_s1x1_d1x32_p1:0x32:32_f32_cfirst_wtorch",
    "conv_mb1_g1_ic8_oc32_i5x64_k1x2_s1x1_d1x16_p0:0x16:0_f32_cfirst_wtorch",
    "convT_mb1_g1_ic8_oc32_i700_k2_s1_d16_p3:5_op0_f32_cfirst_wtf"};

TEST_P(EngineTarget, PlanarWinogradMatchesReference) { check_problems(kPlanarWinogradProblems, "winograd_planar"); }

// Groups of 2 pixels where they fill the vectors better than groups of 4 (group_cost), which depends on the vector
// width: with 8 lanes, phases of 32 pixels (16 groups: two vectors, against one vector of 8 groups of 4), kernel 4
// (two 2-tap phases) and 3 (1 and 2 taps) at stride 2; with 16 lanes, phases of 64 pixels (a 1-tap and a 2-tap
// phase; kPlanarWinogradProblems' 3D one) or a convolution's kernel 2. With 16 lanes the 32-pixel phases save too
// little and go to gemm_planar; targets of 4 lanes or fewer always take groups of 4 (32 pixels at least per phase).
TEST_P(EngineTarget, PlanarWinogradGroupsOfTwoMatchReference) {
  const int lanes = engine::best_kernels().lanes;
  if (lanes == 8) {
    check_problems({"convT_mb1_g1_ic16_oc32_i9x32_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                    "convT_mb1_g1_ic16_oc32_i4x5x32_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch"},
                   "winograd_planar");
  } else if (lanes == 16) {
    check_problems({"convT_mb1_g1_ic16_oc32_i4x5x64_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch",
                    "conv_mb1_g1_ic8_oc40_i7x64_k1x2_s1x1_d1x1_p0:0x0:1_f32_cfirst_wtf"},
                   "winograd_planar");
  } else {
    GTEST_SKIP() << "no groups of 2 with " << lanes << " lanes";
  }
}

// winograd_planar's sums stay within 256 products (its rounding errors grow with them): 160 channels x 2 rows of taps
// go to gemm_planar.
TEST(Engine, PlanarWinogradDeclinesLongSums) {
  const Plan plan(parse_problem("convT_mb1_g1_ic160_oc64_i9x300_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"));
  EXPECT_EQ(plan.implementation_name(), "gemm_planar");
  const auto& candidates = plan.candidates();
  const auto winograd = std::find_if(candidates.begin(), candidates.end(),
                                     [](const auto& c) { return c.name == "winograd_planar"; });
  ASSERT_NE(winograd, candidates.end());
  EXPECT_EQ(winograd->declined_because, "over 256 input channels per group x taps along z and y");
}

// ... and its groups along a dilation of x only where the dilation is a multiple of the vectors (18 is of none but
// the scalar target's) and at most a quarter of the row: blocks of 4 d pixels, whose panels grow with d (a
// dilation of 2^20 on a 1000-pixel row would have taken 360 MiB per thread, one of 2^59 overflowed their sizes).
TEST(Engine, PlanarWinogradDeclinesLongDilations) {
  for (const char* text :
       {"conv_mb1_g1_ic8_oc32_i1000_k2_s1_d1048576_p1048576:0_f32_cfirst_wtorch",
        "conv_mb1_g1_ic8_oc32_i1000_k2_s1_d576460752303423488_p576460752303423488:0_f32_cfirst_wtorch",
        "conv_mb1_g1_ic8_oc32_i1000_k2_s1_d256_p256:0_f32_cfirst_wtorch"}) {
    const Plan plan(parse_problem(text));
    EXPECT_EQ(plan.implementation_name(), "gemm_planar") << text;
    const auto& candidates = plan.candidates();
    const auto winograd = std::find_if(candidates.begin(), candidates.end(),
                                       [](const auto& c) { return c.name == "winograd_planar"; });
    ASSERT_NE(winograd, candidates.end());
    EXPECT_EQ(winograd->declined_because, "2 taps along the last axis a dilation apart over a quarter of the row")
        << text;
  }
}

TEST(Engine, PlanarWinogradDeclinesDilationsBetweenVectors) {
  const Plan plan(parse_problem("conv_mb1_g1_ic16_oc32_i1000_k2_s1_d18_p18:0_f32_cfirst_wtorch"));
  const auto& candidates = plan.candidates();
  const auto winograd = std::find_if(candidates.begin(), candidates.end(),
                                     [](const auto& c) { return c.name == "winograd_planar"; });
  ASSERT_NE(winograd, candidates.end());
  if (engine::best_kernels().lanes == 1) {
    EXPECT_EQ(plan.implementation_name(), "winograd_planar");
  } else {
    EXPECT_EQ(plan.implementation_name(), "gemm_planar");
    EXPECT_EQ(winograd->declined_because,
              "2 taps along the last axis a dilation apart that is not a multiple of the vectors");
  }
}

// The same problems on gemm_planar, which winograd_planar takes them from.
TEST(Engine, PlanarGemmOfWinogradsProblemsMatchesReference) {
  check_problems(kPlanarWinogradProblems, "gemm_planar", false, true);
}

// gemm_planar streams outputs over 4 MiB: one-pass tiles (4.2 MiB), into aligned and unaligned destinations. On the
// best target only: the streamed stores are the same template code on every target, and these outputs made the
// per-target test the slowest under the sanitizers. Its fused phases, whose streamed stores differ by target, are
// in StreamedOutputsMatchReference.
TEST(Engine, PlanarGemmStreamedOutputsMatchReference) {
  for (bool aligned : {true, false}) {
    check_problems({"conv_mb1_g1_ic8_oc64_i16500_k3_s1_d1_p1:1_f32_cfirst_wtorch"}, "gemm_planar", aligned);
  }
}

// winograd_planar's streamed outputs (8 MiB): one phase of a convolution's kernel 2, 64 pixels a row (groups of 2
// with AVX-512, whose tiles of two stored parts interleave in registers where the target can; groups of 4 with
// fewer lanes), into aligned and unaligned destinations.
TEST(Engine, PlanarWinogradStreamedOutputsMatchReference) {
  for (bool aligned : {true, false}) {
    check_problems({"conv_mb1_g1_ic8_oc64_i512x64_k1x2_s1x1_d1x1_p0:0x0:1_f32_cfirst_wtorch"}, "winograd_planar",
                   aligned);
    // ... and groups along a dilation (4.2 MiB), a partial block at the end
    check_problems({"conv_mb1_g1_ic8_oc64_i16500_k2_s1_d32_p32:0_f32_cfirst_wtorch"}, "winograd_planar", aligned);
  }
}

// Workspace as reported: the channels_first copy of a chunk of images is counted, stays within the 16 MiB budget
// (TCN's batch of 8 x 2 MiB images is copied 4 at a time), and the reference's double accumulators are counted.
TEST(Engine, ReportsForwardWorkspace) {
#ifdef _OPENMP
  omp_set_num_threads(2);
#endif
  PlanOptions gemm;
  gemm.implementation = "gemm_simd";
  const Plan tcn(parse_problem("conv_mb8_g1_ic256_oc256_i2048_k3_s1_d8_p8:8_f32_cfirst_wtorch"), gemm);
  EXPECT_GE(tcn.forward_workspace_bytes(), 4u * 256 * 2048 * sizeof(float));
  EXPECT_LE(tcn.forward_workspace_bytes(), 16u << 20);
  const Plan last(parse_problem("conv_mb8_g1_ic256_oc256_i2048_k3_s1_d8_p8:8_f32_clast_wtorch"), gemm);
  EXPECT_LT(last.forward_workspace_bytes(), 64u << 10);
  // Winograd: per thread a plane per transformed element (6 with TCN's F(4, 3) tiles) of 36 tiles' transformed
  // inputs (a chunk of 128 input channels) and products, and the tiles' patch pointers (one per element, two
  // floats' worth); channels_first adds per thread a staged tile row and, in 1D, the channels_last copy of the
  // image the thread computes (TCN's 2 MiB images).
  const Plan winograd(parse_problem("conv_mb8_g1_ic256_oc256_i2048_k3_s1_d8_p8:8_f32_cfirst_wtorch"));
  ASSERT_EQ(winograd.implementation_name(), "winograd");
  EXPECT_EQ(winograd.forward_workspace_bytes(),
            2u * (6 * 36 * (128 + 256) + 36 * 6 * 2 + 2048 * 256 + 256 * 2048) * sizeof(float));
  // ... WaveNet's (channels_last): F(4, 2) tiles, 5 transformed elements, no staging.
  const Plan wavenet(parse_problem("conv_mb1_g1_ic64_oc128_i16384_k2_s1_d256_p256:0_f32_clast_wtorch"));
  ASSERT_EQ(wavenet.implementation_name(), "winograd");
  EXPECT_EQ(wavenet.forward_workspace_bytes(), 2u * (5 * 36 * (64 + 128) + 36 * 5 * 2) * sizeof(float));
  // 2D tile rows copy a chunk of images for all threads: the context module's 4 MiB image.
  const Plan context(parse_problem("conv_mb1_g1_ic64_oc64_i128x128_k3x3_s1x1_d16x16_p16:16x16:16_f32_cfirst_wtorch"));
  ASSERT_EQ(context.implementation_name(), "winograd");
  EXPECT_GE(context.forward_workspace_bytes(), 64u * 128 * 128 * sizeof(float));
  // DeepLab's res5 (16 MiB of transformed kernels): channels_last, batches of up to 144 tiles, its 1089 tiles in 8
  // batches of 138 (4 per thread, whole gemm tiles of 6 with AVX-512); channels_first (its 8.6 MiB image copied) 72
  // in pairs of tile rows; within 16 MiB at 2 threads.
  const Plan res5_last(parse_problem("conv_mb1_g1_ic512_oc512_i65x65_k3x3_s1x1_d4x4_p4:4x4:4_f32_clast_wtorch"));
  ASSERT_EQ(res5_last.implementation_name(), "winograd");
  EXPECT_LE(res5_last.forward_workspace_bytes(), 16u << 20);
  if (engine::best_kernels().lanes >= 16) {
    EXPECT_EQ(res5_last.forward_workspace_bytes(), 2u * (16 * 138 * (128 + 512) + 138 * 16 * 2) * sizeof(float));
  }
  const Plan res5_first(parse_problem("conv_mb1_g1_ic512_oc512_i65x65_k3x3_s1x1_d4x4_p4:4x4:4_f32_cfirst_wtorch"));
  ASSERT_EQ(res5_first.implementation_name(), "winograd");
  EXPECT_EQ(res5_first.forward_workspace_bytes(),
            (2u * (16 * 72 * (128 + 512) + 72 * 16 * 2 + 2 * 2 * 65 * 512) + 512u * 65 * 65) * sizeof(float));
  // A transposed channels_first plan with an 8 MiB source image and a 1 MiB output image: each thread copies and
  // stages whole images only up to 2 MiB each (at 8 MiB per thread, Winograd's plan had reached 23 MiB).
  const Plan wide_source(
      parse_problem("convT_mb1_g1_ic2048_oc64_i32x32_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"));
  EXPECT_LE(wide_source.forward_workspace_bytes(), 16u << 20);
  // ASPP's channels_first plan (its 8.9 MiB image copied, its 1.1 MiB output staged) stays within 16 MiB at 2
  // threads. With AVX-512 it runs on Winograd (6-row gemm tiles): its 324 tiles in 4 batches of 84 (2 per thread),
  // not the 6 of 54 that halving 144 to 72 and balancing gave.
  const Plan aspp(parse_problem("conv_mb1_g1_ic2048_oc256_i33x33_k3x3_s1x1_d6x6_p6:6x6:6_f32_cfirst_wtorch"));
  EXPECT_LE(aspp.forward_workspace_bytes(), 16u << 20);
  if (engine::best_kernels().lanes >= 16) {
    ASSERT_EQ(aspp.implementation_name(), "winograd");
    EXPECT_EQ(aspp.forward_workspace_bytes(),
              (2u * (16 * 84 * (128 + 256) + 84 * 16 * 2) + (2048u + 256) * 33 * 33) * sizeof(float));
  }
  const Plan f64(parse_problem("conv_mb1_g1_ic3_oc5_i7x9_k3x3_s1x1_d1x1_p1:1x1:1_f64_clast_wtorch"));
  EXPECT_EQ(f64.forward_workspace_bytes(), 5u * 7 * 9 * sizeof(double));
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
}

// Transposed convolutions with 1 to 4 output channels, a GEMM per input row scattered into the output: both
// layouts (channels_first rows copied into channels_last first, or the planar GEMM, which one output channel in
// channels_last takes too), 1D and 2D, stride larger than the kernel, kernel not a multiple of the stride, padding,
// output padding, dilation, widths not a multiple of the tile, a batch, both weight layouts.
TEST(Engine, ScatterMatchesReference) {
  check_problems({"convT_mb1_g1_ic56_oc1_i37x29_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_cfirst_wtorch",
                  "convT_mb2_g1_ic64_oc3_i13x11_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
                  "convT_mb2_g1_ic64_oc3_i13x11_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
                  // pairs of 32-pixel rows read in place, the tiles prefetching 8 channels ahead (DCGAN's last layer)
                  "convT_mb2_g1_ic64_oc3_i7x32_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic21_oc2_i9x10_k3x2_s5x4_d2x3_p2:0x1:3_op1x2_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic33_oc4_i301_k16_s8_d1_p4:4_op0_f32_cfirst_wtf",
                  // channels_first: rows over 512 pixels (GEMM chunks); a stride along y past the kernel's reach
                  // (output rows no input row reaches, bias only, also after the last); a tall dilated kernel
                  "convT_mb1_g1_ic9_oc4_i40x1100_k3x6_s2x4_d1x1_p1:1x2:2_op1x3_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic7_oc2_i9x30_k2x3_s5x2_d1x1_p0:1x1:0_op3x1_f32_cfirst_wtorch",
                  "convT_mb2_g1_ic6_oc3_i23x17_k3x4_s2x3_d3x1_p4:2x0:1_op1x2_f32_cfirst_wtf",
                  // a channels_first row whose phase rows would exceed 2 MiB: the transposing path instead
                  "convT_mb1_g1_ic3_oc1_i75000_k16_s8_d1_p4:4_op0_f32_cfirst_wtorch",
                  // one output channel, channels_last: the planar GEMM on rows transposed into the panel
                  "convT_mb2_g1_ic19_oc1_i13x11_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_clast_wtorch",
                  "convT_mb1_g1_ic33_oc1_i1301_k16_s8_d1_p4:4_op0_f32_clast_wtf",
                  "convT_mb1_g1_ic9_oc1_i40x1100_k3x6_s2x4_d1x2_p1:1x2:2_op1x3_f32_clast_wtorch"},
                 "scatter_gemm");
}

// Transposed convolutions with few output channels, their phases along x fused into the columns of one GEMM (each
// chosen with 8 and 16 floats a vector): FCN-8s' shape, 1D and 3D, a kernel one short of a multiple of the stride
// (zero taps), padding past the stride and asymmetric, output padding, dilation along y, a stride along y past the
// kernel's reach (bias-only rows), a batch, no bias, both weight layouts and both layouts.
const std::vector<const char*> kSubpixelProblems = {
    "convT_mb1_g1_ic21_oc21_i9x30_k16x16_s8x8_d1x1_p4:4x4:4_op0x0_f32_clast_wtorch",
    "convT_mb2_g1_ic33_oc7_i301_k16_s8_d1_p4:4_op0_f32_clast_wtf",
    "convT_mb1_g1_ic6_oc5_i4x5x24_k4x4x8_s2x2x4_d1x1x1_p1:1x1:1x3:3_op0x0x0_f32_clast_wtorch",
    "convT_mb1_g1_ic13_oc9_i7x31_k3x8_s2x3_d1x1_p1:0x5:1_op1x2_f32_clast_wtorch",
    "convT_mb2_g1_ic8_oc11_i5x30_k4x11_s2x4_d2x1_p3:1x9:0_op0x3_f32_clast_wtf",
    "convT_mb1_g1_ic5_oc19_i6x40_k2x6_s5x3_d1x1_p0:1x2:3_op3x1_f32_clast_wtorch",
    "convT_mb1_g1_ic40_oc6_i3x50_k3x8_s1x4_d1x1_p1:1x0:0_op0x1_f32_clast_wtorch",
    // channels_first: copied into channels_last a chunk of images at a time, rows transposed into the planes
    "convT_mb3_g1_ic21_oc21_i5x30_k16x16_s8x8_d1x1_p4:4x4:4_op0x0_f32_cfirst_wtorch",
    "convT_mb2_g1_ic9_oc11_i2x301_k5x10_s3x5_d1x1_p1:1x2:1_op2x1_f32_cfirst_wtf",
    "convT_mb1_g1_ic7_oc7_i3x4x25_k2x3x8_s1x2x8_d1x2x1_p0:1x1:2x1:2_op0x1x1_f32_cfirst_wtorch",
    // channels_last row ends (run_row_ends) as tiles down runs of rows of one y phase: runs longer than a tile (items
    // of 30 rows), broken where the y taps change (the first and last rows) and at the ends of planes (3D items of
    // 20 rows across planes of 82), with a batch; blocks of different widths (4 floats a vector: 4 + 1 vectors)
    "convT_mb2_g1_ic5_oc5_i480x21_k3x8_s2x4_d1x1_p1:1x2:2_op1x0_f32_clast_wtorch",
    "convT_mb1_g1_ic5_oc5_i4x41x21_k3x3x8_s2x2x4_d1x1x1_p1:1x1:1x2:2_op1x1x0_f32_clast_wtf"};

TEST(Engine, SubpixelMatchesReference) {
  check_problems(kSubpixelProblems, "subpixel_gemm");
  // channels_first images of 4.2 MiB: copied one at a time (12 MiB of scratch, 3 images).
  check_problems({"convT_mb3_g1_ic64_oc9_i16400_k10_s5_d1_p2:3_op1_f32_cfirst_wtorch"}, "subpixel_gemm");
  // 32 channels, channels_last, taken where fusing widens the tiles: with 16 floats a vector (3D U-Net's shape).
  if (engine::best_kernels().lanes == 16) {
    check_problems({"convT_mb1_g1_ic16_oc32_i3x4x20_k2x2x2_s2x2x2_d1x1x1_p0:0x0:0x0:0_op0x0x0_f32_clast_wtorch",
                    "convT_mb2_g1_ic24_oc48_i5x33_k3x4_s2x2_d1x1_p1:1x1:2_op1x1_f32_clast_wtf"},
                   "subpixel_gemm");
    // Pair tiles whose second tap has weights in part of the block: 3 taps at stride 2 (vol_up_k3's shape: 2 of 4
    // vectors), and 40 channels in blocks of 64 + 16 columns, the second block without the second tap (0 vectors).
    check_problems({"convT_mb1_g1_ic20_oc32_i3x4x21_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_clast_wtorch",
                    "convT_mb2_g1_ic19_oc40_i4x35_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtf",
                    "convT_mb1_g1_ic7_oc40_i3x37_k3x3_s2x2_d1x1_p1:0x1:2_op1x0_f32_cfirst_wtorch"},
                   "subpixel_gemm");
    // A kernel shorter than the stride (one x tap, 24 of its 48 columns zeros): the gemm tile multiplies all 3 of
    // its vectors, zeros too, so half of the multiplied weights are zeros and the path declines.
    const Plan short_kernel(
        parse_problem("convT_mb1_g1_ic8_oc24_i3x40_k2x1_s2x2_d1x1_p0:0x0:0_op0x1_f32_clast_wtorch"));
    const auto& candidates = short_kernel.candidates();
    const auto subpixel = std::find_if(candidates.begin(), candidates.end(),
                                       [](const Candidate& c) { return c.name == "subpixel_gemm"; });
    ASSERT_NE(subpixel, candidates.end());
    EXPECT_EQ(subpixel->declined_because,
              "kernel along x far from a multiple of the stride (fused phases would multiply zeros)");
  }
  // Without bias.
  std::mt19937_64 rng(5);
  Case c;
  c.problem = parse_problem(kSubpixelProblems[0]);
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  c.src = to_float(random_values(rng, src_shape(c.problem)));
  c.weights = to_float(random_values(rng, weights_shape(c.problem)));
  const Plan plan(c.problem);
  ASSERT_EQ(plan.implementation_name(), "subpixel_gemm");
  std::vector<float> got(static_cast<std::size_t>(element_count(dst_shape(c.problem), "t")),
                         std::numeric_limits<float>::quiet_NaN());
  plan.forward(view(c.src.data(), src_shape(c.problem)),
               plan.pack_weights(view(c.weights.data(), weights_shape(c.problem))), {},
               mutable_view(got.data(), dst_shape(c.problem)));
  c.bias.assign(static_cast<std::size_t>(c.problem.out_channels), 0.0f);
  check_against_reference(c, got, "subpixel_gemm");
}

// Random transposed convolutions (both layouts) with 5 to 40 output channels and a stride along x, among those the
// sub-pixel path takes (it declines where fusing fills too few more lanes, or the kernel is far from a multiple of
// the stride).
Problem subpixel_problem(std::mt19937_64& rng, int) {
  ProblemLimits lim;
  lim.max_groups = 1;
  lim.max_channels_per_group = 40;
  lim.max_input = 9;
  Problem p = random_problem(rng, Op::conv_transpose, lim);
  const int x = p.spatial_dims - 1;
  p.out_channels = uniform(rng, 5, 40);
  p.input[x] = uniform(rng, 18, 40);  // enough inner positions
  p.stride[x] = uniform(rng, 2, 5);
  p.dilation[x] = 1;
  p.kernel[x] = p.stride[x] * uniform(rng, 1, 3) - uniform(rng, 0, 1);
  p.pad_begin[x] = uniform(rng, 0, p.kernel[x] - 1);
  p.pad_end[x] = uniform(rng, 0, p.kernel[x] - 1);
  p.output_padding[x] = uniform(rng, 0, p.stride[x] - 1);
  p.layout = uniform(rng, 0, 1) ? Layout::channels_last : Layout::channels_first;
  p.dtype = DType::f32;
  return p;
}

TEST(Engine, WinogradMatchesReference) {
  check_winograd({"conv_mb2_g1_ic128_oc128_i11x13_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch",
                  "conv_mb1_g1_ic128_oc144_i25x23_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtf",
                  "conv_mb1_g1_ic160_oc128_i15x15_k3x3_s1x1_d1x2_p0:2x1:3_f32_clast_wtorch",
                  "conv_mb1_g1_ic128_oc128_i27x25_k3x3_s1x1_d3x3_p3:3x3:3_f32_clast_wtorch",
                  // channels_first: odd sizes, dilation, asymmetric padding, a batch
                  "conv_mb2_g1_ic128_oc144_i17x15_k3x3_s1x1_d2x2_p2:2x2:2_f32_cfirst_wtf",
                  "conv_mb1_g1_ic128_oc128_i15x15_k3x3_s1x1_d1x2_p0:2x1:3_f32_cfirst_wtorch",
                  "conv_mb1_g1_ic128_oc128_i27x25_k3x3_s1x1_d3x3_p3:3x3:3_f32_cfirst_wtorch",
                  // the fewest channels it takes, output channels not a multiple of the widest tile (F(4, 3)
                  // along x, as the next three)
                  "conv_mb1_g1_ic64_oc80_i20x18_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch",
                  "conv_mb2_g1_ic96_oc64_i19x29_k3x3_s1x1_d1x2_p1:0x2:3_f32_clast_wtf",
                  "conv_mb1_g1_ic64_oc64_i24x22_k3x3_s1x1_d2x2_p2:2x2:2_f32_cfirst_wtorch",
                  // channels_first output images up to 2 MiB staged whole (above, and with batches of tiles in
                  // every image), larger ones tile row by tile row (2.1 MiB, dilation along both axes)
                  "conv_mb1_g1_ic64_oc64_i70x120_k3x3_s1x1_d2x3_p2:2x3:3_f32_cfirst_wtorch"});
}

// Dilated by about half the image (ASPP rate 18's shape): every tile's F(2, 3) patch starts and ends in the padding,
// and takes 3 multiplications per axis (kWinogradPaddedEnds) instead of 4. Classes of 2 outputs and of 1, on every
// axis (2D, 1D, 3D) or on one of two (mixed with F(2, 3), either way round), asymmetric padding, a batch, both
// layouts and weight layouts. Each but the last would decline with F(2, 3)'s tiles (too few multiplications saved),
// so the plan choosing Winograd is part of the check.
// From 32 channels on where Winograd takes 1.6x fewer multiplications than the valid taps (kMinChannelsLargeSaving):
// 2D and 3D convolutions, a 1D one (F(4, 3)), a 3D transposed one of mixed phases (vol_up_k3's shape), both layouts.
TEST(Engine, WinogradOfFewChannelsMatchesReference) {
  check_winograd({"conv_mb1_g1_ic32_oc48_i23x21_k3x3_s1x1_d2x1_p2:2x1:1_f32_clast_wtorch",
                  "conv_mb2_g1_ic48_oc32_i17x19_k3x3_s1x1_d1x1_p1:1x1:1_f32_cfirst_wtf",
                  "conv_mb1_g1_ic32_oc32_i9x8x10_k3x3x3_s1x1x1_d2x1x1_p2:2x1:1x1:1_f32_clast_wtorch",
                  "conv_mb1_g1_ic32_oc32_i301_k3_s1_d4_p4:4_f32_clast_wtf",
                  "convT_mb1_g1_ic64_oc32_i16x18x16_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_clast_wtorch"});
}

TEST(Engine, WinogradPaddedEndsMatchReference) {
  check_winograd({"conv_mb1_g1_ic64_oc64_i19x19_k3x3_s1x1_d10x10_p10:10x10:10_f32_clast_wtorch",
                  "conv_mb2_g1_ic64_oc80_i19x19_k3x3_s1x1_d10x10_p10:9x10:9_f32_cfirst_wtf",
                  "conv_mb1_g1_ic64_oc64_i19x40_k3x3_s1x1_d10x2_p10:10x2:2_f32_clast_wtf",
                  "conv_mb1_g1_ic64_oc64_i40x19_k3x3_s1x1_d2x10_p2:2x10:10_f32_cfirst_wtorch",
                  "conv_mb2_g1_ic64_oc64_i39_k3_s1_d20_p20:20_f32_clast_wtorch",
                  "conv_mb1_g1_ic64_oc64_i9x9x9_k3x3x3_s1x1x1_d5x5x5_p5:5x5:5x5:5_f32_cfirst_wtorch",
                  // 3D with padded ends along z only: no transforms compiled for that mix, so F(2, 3) on every axis
                  "conv_mb1_g1_ic64_oc64_i9x12x12_k3x3x3_s1x1x1_d5x1x1_p5:5x1:1x1:1_f32_clast_wtorch"});
}

// channels_first layers whose work items are whole images (a 1D convolution's tile row, an image staged whole) go to
// the planar paths with fewer images than threads, which would leave threads idle; plans made for 2 threads.
TEST(Engine, WinogradDeclinesFewerImagesThanThreads) {
#ifdef _OPENMP
  omp_set_num_threads(2);
  const auto winograd_reason = [](const char* text) {
    const Plan plan(parse_problem(text));
    return plan.candidates()[0].declined_because;
  };
  const std::string reason = "channels_first with fewer images than threads (a work item per image)";
  EXPECT_EQ(winograd_reason("conv_mb1_g1_ic128_oc128_i4096_k3_s1_d4_p4:4_f32_cfirst_wtorch"), reason);
  EXPECT_EQ(winograd_reason("conv_mb1_g1_ic64_oc128_i4096_k2_s1_d64_p64:0_f32_cfirst_wtorch"), reason);
  // ... except transposed ones staged whole, whose threads then share each image (shares_staged_images)
  EXPECT_EQ(winograd_reason("convT_mb1_g1_ic64_oc64_i16x24_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"), "");
  EXPECT_EQ(winograd_reason("conv_mb2_g1_ic128_oc128_i4096_k3_s1_d4_p4:4_f32_cfirst_wtorch"), "");
  EXPECT_EQ(winograd_reason("conv_mb1_g1_ic128_oc128_i4096_k3_s1_d4_p4:4_f32_clast_wtorch"), "");
  EXPECT_EQ(winograd_reason("conv_mb1_g1_ic64_oc64_i70x120_k3x3_s1x1_d2x3_p2:2x3:3_f32_cfirst_wtorch"), "");
  const Plan planar(parse_problem("conv_mb1_g1_ic64_oc128_i4096_k2_s1_d64_p64:0_f32_cfirst_wtorch"));
  EXPECT_EQ(planar.implementation_name(), "winograd_planar");
  omp_set_num_threads(1);
#else
  GTEST_SKIP() << "one thread without OpenMP";
#endif
}

// Transposed, kernel longer than the stride and at most twice it: phases of 1 and 2 taps (3 at stride 2, 5 at
// stride 3 with two phases of 2 taps), mixed with 2 taps on another axis, asymmetric padding, output padding, 2D and
// 3D, both layouts and weight layouts (a test of its own, which ctest runs in parallel with the others).
TEST(Engine, WinogradMixedPhasesMatchReference) {
  check_winograd({"convT_mb1_g1_ic128_oc128_i32x30_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch",
                  "convT_mb2_g1_ic128_oc144_i8x9_k5x4_s3x2_d1x1_p2:1x1:2_op1x0_f32_cfirst_wtf",
                  "convT_mb1_g1_ic128_oc128_i8x9_k5x4_s3x2_d1x1_p2:1x1:2_op1x0_f32_clast_wtf",
                  "convT_mb1_g1_ic128_oc128_i8x6x6_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic128_oc128_i8x8x8_k3x4x3_s2x2x2_d1x1x1_p1:0x1:1x1:1_op0x0x1_f32_clast_wtorch"});
}

// channels_first transposed layers staged whole with fewer images than threads (plans made for 2 threads): the
// threads share each image's batches of tiles and transposes (shares_staged_images); 1D, 2D and 3D, phases of 1 and
// 2 taps and of 2, output padding, both weight layouts; run at 1 and 2 threads, bitwise equal.
TEST(Engine, WinogradSharedTransposedImagesMatchReference) {
#ifdef _OPENMP
  std::mt19937_64 rng(37);
  for (const char* text : {"convT_mb1_g1_ic64_oc64_i16x24_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                           "convT_mb1_g1_ic128_oc64_i99_k6_s3_d1_p4:2_op2_f32_cfirst_wtf",
                           "convT_mb1_g1_ic128_oc128_i8x6x6_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_"
                           "cfirst_wtorch"}) {
    check_problem(rng, parse_problem(text), "winograd", false, false, 2);
  }
#else
  GTEST_SKIP() << "one thread without OpenMP";
#endif
}

// channels_first transposed layers whose images are not staged whole (outputs over 2 MiB): tile row by tile row,
// each row's tiles listed phase by phase; 3D phases of 1 and 2 taps with odd sizes, output padding on some axes and
// a batch; 2D phases of 2 taps with asymmetric padding; both weight layouts.
TEST(Engine, WinogradTransposedTileRowsMatchReference) {
  check_winograd({"convT_mb2_g1_ic64_oc32_i16x15x18_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x0x1_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic128_oc128_i33x35_k4x4_s2x2_d1x1_p1:1x2:1_op0x1_f32_cfirst_wtf"});
}

// Winograd beyond 2D 3x3 convolutions (its own test so that ctest runs the two halves in parallel).
TEST(Engine, WinogradOtherShapesMatchReference) {
  check_winograd({// 1D and 3D: odd sizes, asymmetric padding, dilation on some axes, a batch, both weight layouts
                  "conv_mb2_g1_ic64_oc80_i401_k3_s1_d3_p3:5_f32_clast_wtorch",
                  "conv_mb3_g1_ic64_oc64_i133_k3_s1_d2_p1:3_f32_cfirst_wtf",
                  // ... channels_first 1D: each image copied by the thread that computes it, and its outputs
                  // written back batch by batch as they complete, streamed (4 MiB in all), on unaligned planes
                  "conv_mb2_g1_ic64_oc64_i7999_k3_s1_d4_p4:4_f32_cfirst_wtorch",
                  // 8 MiB of transformed kernels: batches of 144 tiles (a partial last one), input channels in 8
                  // chunks of 128
                  "conv_mb1_g1_ic1024_oc512_i290_k3_s1_d1_p1:1_f32_clast_wtorch",
                  // ... channels_first: 2.1 MiB output images (staged tile row by tile row), their 33 tile rows in
                  // pairs, each pair's tiles batched together
                  "conv_mb1_g1_ic64_oc2048_i66x4_k3x3_s1x1_d1x1_p1:1x1:1_f32_cfirst_wtf",
                  "conv_mb1_g1_ic64_oc64_i9x10x11_k3x3x3_s1x1x1_d2x2x2_p2:2x2:2x2:2_f32_clast_wtorch",
                  "conv_mb2_g1_ic64_oc80_i7x9x8_k3x3x3_s1x1x1_d1x2x1_p0:2x2:1x1:1_f32_cfirst_wtf",
                  // 2 taps per axis: F(2, 2)
                  "conv_mb1_g1_ic64_oc64_i21x18_k2x2_s1x1_d2x1_p1:0x1:1_f32_clast_wtorch",
                  "conv_mb1_g1_ic64_oc80_i6x7x5_k2x2x2_s1x1x1_d1x1x1_p0:1x1:0x1:1_f32_cfirst_wtf",
                  // transposed, kernel 2 or 3 times the stride: stride phases with different strides per axis,
                  // asymmetric padding, output padding, 3D, both layouts and weight layouts
                  "convT_mb2_g1_ic64_oc64_i12x13_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
                  "convT_mb1_g1_ic64_oc80_i9x12_k6x4_s3x2_d1x1_p2:1x1:2_op1x0_f32_cfirst_wtf",
                  "convT_mb1_g1_ic80_oc64_i8x9_k6x6_s2x2_d1x1_p2:2x2:2_op1x1_f32_clast_wtf",
                  "convT_mb1_g1_ic64_oc64_i5x4x6_k4x4x4_s2x2x2_d1x1x1_p1:1x1:1x1:1_op0x0x0_f32_cfirst_wtorch",
                  // channels_first images over 2 MiB of output: staged tile row by tile row, not whole
                  "conv_mb1_g1_ic64_oc64_i64x130_k2x2_s1x1_d1x1_p0:1x1:0_f32_cfirst_wtorch",
                  // 1D, 2 taps: F(4, 2) along x (WaveNet's causal padding, residue classes of 40 and 41 outputs whose
                  // last tiles are partly past the output; symmetric padding without dilation), a batch, both
                  // layouts and weight layouts
                  "conv_mb2_g1_ic64_oc80_i203_k2_s1_d5_p5:0_f32_clast_wtorch",
                  "conv_mb1_g1_ic128_oc64_i301_k2_s1_d1_p1:1_f32_cfirst_wtf",
                  // ... transposed, kernel twice the stride (phases of 2 taps): padding past the stride, output
                  // padding, odd lengths
                  "convT_mb2_g1_ic64_oc64_i157_k4_s2_d1_p1:2_op1_f32_clast_wtorch",
                  "convT_mb1_g1_ic128_oc64_i99_k6_s3_d1_p4:2_op2_f32_cfirst_wtf"});
  // channels_first outputs over 2 MiB are written back with streaming stores, here from whole images (transposed)
  check_problems({"convT_mb6_g1_ic64_oc64_i16x24_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"}, "winograd", true);
  // channels_last outputs over 4 MiB are stored by the output transforms with streaming stores, where the output is
  // vector-aligned (4.2 MiB, F(4, 2) in raster order)
  for (bool aligned : {true, false}) {
    check_problems({"conv_mb1_g1_ic64_oc64_i16400_k2_s1_d7_p7:0_f32_clast_wtorch"}, "winograd", aligned);
  }
}

// The copies between channels_first and channels_last: every block size's edges (rows and columns not multiples of
// it, strides past the sizes), plain and streaming stores, on an aligned and a misaligned destination.
TEST_P(EngineTarget, TransposeCopiesEveryElementAndNothingElse) {
  const engine::KernelSet kernels = engine::best_kernels();
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const std::int64_t rows = uniform(rng, 1, 40), cols = uniform(rng, 1, 300);
    const std::int64_t in_stride = rows + uniform(rng, 0, 5), out_stride = cols + 16 * uniform(rng, 0, 2);
    const std::int64_t offset = trial % 3 == 0 ? 1 : 0;  // a misaligned destination
    std::vector<float> in(static_cast<std::size_t>(cols * in_stride));
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
    alignas(64) static float out[40 * 400 + 64];
    std::fill(std::begin(out), std::end(out), -1.0f);
    kernels.transpose(in.data(), in_stride, out + offset, out_stride, rows, cols, trial % 2 == 0);
    for (std::int64_t i = 0; i < rows * out_stride + 64 - offset; ++i) {
      const std::int64_t r = i / out_stride, c = i % out_stride;
      const float want = r < rows && c < cols ? in[static_cast<std::size_t>(c * in_stride + r)] : -1.0f;
      ASSERT_EQ(out[offset + i], want) << "rows " << rows << " cols " << cols << " at " << r << "," << c;
    }
  }
}

// The merge of a transposed convolution's phases into an output row: 1 to 6 parts (past the 4 with vector code),
// counts that leave some parts one element short, plain and streaming stores, aligned and misaligned rows.
TEST_P(EngineTarget, InterleaveMergesEveryPartAndWritesNothingElse) {
  const engine::KernelSet kernels = engine::best_kernels();
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 200; ++trial) {
    const int parts = static_cast<int>(uniform(rng, 1, 6));
    const std::int64_t count = uniform(rng, 1, 700), offset = trial % 3 == 0 ? 1 : 0;
    std::vector<std::vector<float>> rows(static_cast<std::size_t>(parts));
    std::vector<const float*> part;
    for (int q = 0; q < parts; ++q) {
      rows[static_cast<std::size_t>(q)].resize(static_cast<std::size_t>(count / parts + 1));
      for (std::size_t j = 0; j < rows[static_cast<std::size_t>(q)].size(); ++j)
        rows[static_cast<std::size_t>(q)][j] = static_cast<float>(j * parts + q);
      part.push_back(rows[static_cast<std::size_t>(q)].data());
    }
    alignas(64) static float out[800];
    std::fill(std::begin(out), std::end(out), -1.0f);
    kernels.interleave(part.data(), parts, out + offset, count, trial % 2 == 0);
    for (std::int64_t i = 0; i < 800 - offset; ++i) {
      ASSERT_EQ(out[offset + i], i < count ? static_cast<float>(i) : -1.0f)
          << parts << " parts, count " << count << ", at " << i;
    }
  }
}

TEST_P(EngineTarget, PlanarDepthwiseMatchesReference) {
  check_problems({"conv_mb1_g3_ic3_oc3_i9x75_k3x3_s1x1_d3x3_p3:3x3:3_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic2_oc2_i13x70_k3x5_s3x3_d1x2_p1:0x2:1_op2x1_f32_cfirst_wtf",
                  "convT_mb1_g2_ic2_oc2_i13x70_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
                  "convT_mb1_g2_ic2_oc2_i9x40_k4x4_s4x4_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic2_oc2_i13_k5_s5_d1_p2:1_op3_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic2_oc2_i3001_k3_s3_d1_p1:0_op2_f32_cfirst_wtf",
                  // Expanded rows (strides dividing the lanes): phases with fewer taps than others (zero weights),
                  // padding past the kernel, a batch, output padding; 3D with a dilated x kernel whose phases
                  // read offsets 0, 3, 6 and 0, 3; stride 4 with taps 2, 2, 1, 1, and with a phase that starts a
                  // column later than the others; a row cut into chunks.
                  "convT_mb2_g3_ic3_oc3_i7x45_k3x3_s2x2_d1x1_p3:0x0:4_op1x1_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic2_oc2_i3x2x37_k2x3x5_s1x2x2_d1x1x3_p0:1x1:0x2:3_op0x1x1_f32_cfirst_wtf",
                  "convT_mb1_g2_ic2_oc2_i5x23_k3x6_s2x4_d1x1_p1:1x2:1_op1x3_f32_cfirst_wtorch",
                  "convT_mb1_g3_ic3_oc3_i9x31_k3x8_s2x4_d1x1_p1:1x1:2_op1x0_f32_cfirst_wtf",
                  "convT_mb1_g1_ic1_oc1_i2100_k3_s2_d1_p0:2_op1_f32_cfirst_wtorch",
                  // Rows of two y phases that read the same input rows, computed in pairs: stride 3 (two of three
                  // phases pair, rows at the edges alone), bands of 12 rows that cut pairs, 3D with z taps.
                  "convT_mb1_g2_ic2_oc2_i11x37_k6x4_s3x2_d1x1_p2:1x1:1_op1x0_f32_cfirst_wtorch",
                  "convT_mb1_g32_ic32_oc32_i12x650_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
                  "convT_mb1_g2_ic2_oc2_i4x9x30_k3x2x2_s1x2x2_d1x1x1_p1:1x0:0x0:0_op0x1x0_f32_cfirst_wtorch",
                  // z levels with no valid taps (z stride past the kernel): their rows pair with no taps at all.
                  "convT_mb1_g2_ic2_oc2_i3x9x30_k1x2x2_s3x2x2_d1x1x1_p0:0x0:0x0:0_op2x0x0_f32_cfirst_wtf",
                  // 200 small planes, one item each, handed out 6 at a time (the last group short).
                  "conv_mb2_g100_ic100_oc100_i5x7_k3x3_s1x1_d2x2_p2:2x2:2_f32_cfirst_wtorch"},
                 "depthwise_planar");
}

// Row pairs on random shapes: channels_first depthwise transposed layers whose y phases read the same input rows
// (kernels of twice the stride along y, the stride dividing every target's lanes along x), 2D and 3D, with padding
// up to past the kernel and output padding, batches and bands of rows, 1 and 2 threads.
Problem row_pair_problem(std::mt19937_64& rng, int i) {
  Problem p;
  p.op = Op::conv_transpose;
  p.spatial_dims = i % 4 == 3 ? 3 : 2;
  p.batch = testing::uniform(rng, 1, 2);
  p.groups = p.in_channels = p.out_channels = testing::uniform(rng, 2, 40);
  p.layout = Layout::channels_first;
  p.weight_layout = i % 2 ? WeightLayout::tf : WeightLayout::torch;
  for (int d = 0; d < p.spatial_dims; ++d) {
    const bool x = d == p.spatial_dims - 1;
    p.stride[d] = x ? 2 : testing::uniform(rng, 2, 3);
    p.kernel[d] = x ? testing::uniform(rng, 2, 4) : (d == 0 && p.spatial_dims == 3 ? 2 : 2 * p.stride[d]);
    p.input[d] = testing::uniform(rng, 1, p.spatial_dims == 3 ? 6 : 20);
    p.pad_begin[d] = testing::uniform(rng, 0, p.kernel[d] + 1);  // up to past the kernel
    p.pad_end[d] = testing::uniform(rng, 0, p.kernel[d] + 1);
    p.output_padding[d] = testing::uniform(rng, 0, p.stride[d] - 1);
  }
  return p;
}
TEST_P(EngineTarget, PlanarDepthwisePairsOnRandomProblems) {
  check_random_problems(47, row_pair_problem, "depthwise_planar");
}

// A channels_first depthwise problem of draw i with 1 to 9 channels, a batch of 1 or 2, 1D to 3D; spatial sizes to
// be set.
Problem small_depthwise_problem(std::mt19937_64& rng, int i, Op op) {
  Problem p;
  p.op = op;
  p.spatial_dims = 1 + i % 3;
  p.batch = testing::uniform(rng, 1, 2);
  p.groups = p.in_channels = p.out_channels = testing::uniform(rng, 1, 9);
  p.layout = Layout::channels_first;
  p.weight_layout = i % 2 ? WeightLayout::tf : WeightLayout::torch;
  return p;
}

// Short rows on random shapes: channels_first depthwise convolutions whose rows, up to 70 pixels (those under 4
// vectors: 64 pixels with AVX-512, 32 with AVX2, 16 with SSE; longer ones too), are computed in blocks of 8, 4, 2
// and 1 rows with a partial last vector (dw_atrous_r12's 33 x 33 planes): y segments of every height (dilation up
// to 13 with padding up to past the kernel, a strided y axis), 1D to 3D, batches, 1 and 2 threads.
Problem short_row_problem(std::mt19937_64& rng, int i) {
  Problem p = small_depthwise_problem(rng, i, Op::conv);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const bool x = d == p.spatial_dims - 1;
    p.kernel[d] = testing::uniform(rng, 1, p.spatial_dims == 3 ? 3 : 4);
    p.dilation[d] = testing::uniform(rng, 1, p.spatial_dims == 3 ? 3 : 13);
    p.stride[d] = x ? 1 : testing::uniform(rng, 1, 2);
    p.input[d] = testing::uniform(rng, 1, x ? 70 : (p.spatial_dims == 3 ? 9 : 40));
    const std::int64_t span = p.dilation[d] * (p.kernel[d] - 1) + 1;
    p.pad_begin[d] = testing::uniform(rng, 0, span);
    p.pad_end[d] = testing::uniform(rng, 0, span);
  }
  return p;
}
TEST_P(EngineTarget, PlanarDepthwiseShortRowsOnRandomProblems) {
  check_random_problems(53, short_row_problem, "depthwise_planar");
}

// Flat planes on random shapes: channels_first depthwise layers whose output has the input's extents (stride 1,
// padding on each axis summing to the kernel's span), computed a whole plane per call as one run of vectors across
// the rows with masked loads: dilation up to 13 with the padding split anywhere (up to the whole span on one side,
// past the kernel), transposed ones (stride 1), planes from 1 pixel to a few thousand (groups of vectors cut short
// at the end), 1D to 3D, batches, bias, 1 and 2 threads. Targets with masked loads (AVX2, AVX-512) must take the flat
// planes (no workspace), the others the rows.
Problem flat_plane_problem(std::mt19937_64& rng, int i) {
  Problem p = small_depthwise_problem(rng, i, i % 3 == 2 ? Op::conv_transpose : Op::conv);
  for (int d = 0; d < p.spatial_dims; ++d) {
    const bool x = d == p.spatial_dims - 1;
    p.kernel[d] = testing::uniform(rng, 1, p.spatial_dims == 3 ? 3 : 5);
    p.dilation[d] = testing::uniform(rng, 1, p.spatial_dims == 3 ? 3 : 13);
    p.input[d] = testing::uniform(rng, 1, p.spatial_dims == 1 ? 300 : (x ? 70 : (p.spatial_dims == 3 ? 9 : 40)));
    const std::int64_t span = p.dilation[d] * (p.kernel[d] - 1);
    p.pad_begin[d] = testing::uniform(rng, 0, span);
    p.pad_end[d] = span - p.pad_begin[d];
  }
  return p;
}
bool has_masked_loads(const std::string& target) {
  return target == "AVX2" || target == "AVX3" || target == "AVX3_DL";
}
TEST_P(EngineTarget, PlanarDepthwiseFlatPlanesOnRandomProblems) {
  check_random_problems(59, flat_plane_problem, "depthwise_planar");
  const bool masked_loads = has_masked_loads(GetParam());
  std::mt19937_64 rng(59);
  for (int i = 0; i < 20; ++i) {
    const Problem p = flat_plane_problem(rng, i);
    EXPECT_EQ(Plan(p).forward_workspace_bytes() == 0, masked_loads) << to_string(p);
  }
}

// Planes whose flat mask table would pass 128 KiB (512 x 512 pixels, 9 taps) keep the rows; a 1D plane of 200000
// pixels with 3 taps fits it. Outputs over 4 MiB (1100 planes of 33 x 33 pixels and of 9 x 11 x 13, each starting
// at another offset within a vector), vector-aligned or not.
TEST(Engine, PlanarDepthwiseLargePlanesFlatWithinTheMaskTable) {
  const char* rows = "conv_mb1_g2_ic2_oc2_i512x512_k3x3_s1x1_d1x2_p1:1x2:2_f32_cfirst_wtorch";
  const char* flat = "conv_mb1_g2_ic2_oc2_i200000_k3_s1_d4_p5:3_f32_cfirst_wtf";
  const char* large = "conv_mb1_g1100_ic1100_oc1100_i33x33_k3x3_s1x1_d12x12_p12:12x12:12_f32_cfirst_wtorch";
  const char* large_3d = "conv_mb2_g550_ic550_oc550_i9x11x13_k3x3x3_s1x1x1_d2x1x3_p4:0x1:1x3:3_f32_cfirst_wtf";
  check_problems({rows, flat, large, large_3d}, "depthwise_planar");
  check_problems({large, large_3d}, "depthwise_planar", true);
  EXPECT_GT(Plan(parse_problem(rows)).forward_workspace_bytes(), 0U);
  if (has_masked_loads(engine::best_kernels().target)) {
    for (const char* text : {flat, large, large_3d}) {
      EXPECT_EQ(Plan(parse_problem(text)).forward_workspace_bytes(), 0U) << text;
    }
  }
}

// Tap pairs on random shapes: channels_last depthwise layers whose x taps lie one pixel apart (stride-1
// convolutions, transposed layers with kernels of twice the stride or more), which the depthwise kernel computes
// two at a time from one load per pixel. Rows up to 40 pixels (whole tiles of every height and a remainder),
// channel counts that take one and two vectors per tile, padding up to past the kernel, 1D to 3D, 1 and 2 threads.
Problem tap_pair_problem(std::mt19937_64& rng, int i) {
  constexpr std::array<std::int64_t, 5> kChannels = {8, 16, 24, 32, 48};
  Problem p;
  p.op = i % 2 ? Op::conv : Op::conv_transpose;
  p.spatial_dims = 1 + i % 3;
  p.batch = testing::uniform(rng, 1, 2);
  p.groups = p.in_channels = p.out_channels = kChannels[static_cast<std::size_t>(testing::uniform(rng, 0, 4))];
  p.layout = Layout::channels_last;
  p.weight_layout = i % 4 < 2 ? WeightLayout::tf : WeightLayout::torch;
  for (int d = 0; d < p.spatial_dims; ++d) {
    const bool x = d == p.spatial_dims - 1;
    p.stride[d] = p.op == Op::conv ? (x ? 1 : testing::uniform(rng, 1, 2)) : testing::uniform(rng, 1, 3);
    p.kernel[d] = p.op == Op::conv ? testing::uniform(rng, x ? 2 : 1, 5)
                                   : testing::uniform(rng, x ? 2 * p.stride[d] : 1, 2 * p.stride[d] + 1);
    p.input[d] = testing::uniform(rng, 1, x ? 40 : 5);
    p.pad_begin[d] = testing::uniform(rng, 0, p.kernel[d] + 1);  // up to past the kernel
    p.pad_end[d] = testing::uniform(rng, 0, p.kernel[d] + 1);
    if (p.op == Op::conv_transpose) p.output_padding[d] = testing::uniform(rng, 0, p.stride[d] - 1);
  }
  return p;
}
TEST_P(EngineTarget, DepthwiseTapPairsOnRandomProblems) {
  check_random_problems(53, tap_pair_problem, "depthwise_simd");
}

// The depthwise tile's stores other than whole vectors into channels_last pixels, which no engine problem reaches
// (its blocks are whole vectors of channels_last or staged pixels) but the tile contract allows: a partial block
// (nr_valid < NR) and channels a plane apart, called directly for every tile width and height, with a tap pair
// and a single tap. Untouched outputs must stay NaN.
TEST_P(EngineTarget, DepthwiseTileStoresPartialAndPlanarBlocks) {
  const engine::KernelSet k = engine::best_kernels();
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int v = 1; v <= engine::kMaxVectorsPerTile; ++v) {
    const std::int64_t nr = v * k.lanes, blocks = 2, channels = blocks * nr, a_stride = channels + 3;
    for (const int m : {1, k.mr[v]}) {
      for (const std::int64_t c_channel_stride : {std::int64_t{1}, std::int64_t{37}}) {
        std::vector<float> a((m + 2) * a_stride), b(3 * channels), init(channels);
        for (float& x : a) x = u(rng);
        for (float& x : b) x = u(rng);
        for (float& x : init) x = u(rng);
        const float* taps_a[3] = {a.data(), a.data() + a_stride, a.data() + 2 * a_stride};  // a pair, then one
        const float* taps_b[3] = {b.data(), b.data() + channels, b.data() + 2 * channels};
        const std::int64_t c_pixel_stride = c_channel_stride == 1 ? channels + 5 : 1;
        std::vector<float> c(static_cast<std::size_t>(channels * 37 + m * (channels + 5)),
                             std::numeric_limits<float>::quiet_NaN());
        engine::TileCall call;
        call.m = m, call.ntaps = 3, call.a = taps_a, call.b = taps_b, call.a_pixel_stride = a_stride;
        call.init = init.data(), call.c = c.data(), call.c_pixel_stride = c_pixel_stride;
        call.c_channel_stride = c_channel_stride, call.nr_valid = static_cast<int>(nr - 1), call.blocks = 2;
        k.depthwise[v](call);
        for (std::int64_t r = 0; r < m; ++r)
          for (std::int64_t ch = 0; ch < channels; ++ch) {
            const float got = c[static_cast<std::size_t>(r * c_pixel_stride + ch * c_channel_stride)];
            if (ch % nr == nr - 1) {
              EXPECT_TRUE(std::isnan(got)) << "v " << v << " m " << m << " pixel " << r << " channel " << ch;
              continue;
            }
            double want = init[static_cast<std::size_t>(ch)];
            for (int t = 0; t < 3; ++t) want += double{taps_a[t][r * a_stride + ch]} * taps_b[t][ch];
            EXPECT_NEAR(got, want, 1e-5) << "v " << v << " m " << m << " stride " << c_channel_stride << " pixel "
                                         << r << " channel " << ch;
          }
      }
    }
  }
}

TEST_P(EngineTarget, ScatterMatchesReference) {
  check_problems({"convT_mb1_g1_ic19_oc1_i13x11_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic19_oc3_i13x11_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtf",
                  "convT_mb1_g1_ic5_oc2_i3x700_k2x5_s1x3_d1x2_p0:1x2:0_op0x1_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic19_oc1_i13x11_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_clast_wtorch",
                  // channels_first rows read where they are when they fill whole vectors, else copied: groups of
                  // short rows (AVX-512: 8 rows of 8, then 5; AVX2: 2 rows, then 1), and 32-pixel rows up to the
                  // source's last pixel
                  "convT_mb2_g1_ic19_oc3_i13x8_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic7_oc2_i5x32_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtf"},
                 "scatter_gemm");
}

TEST_P(EngineTarget, SubpixelMatchesReference) {
  // One float a vector: fusing fills no lanes, so the path declines.
  if (engine::best_kernels().lanes == 1) GTEST_SKIP() << "no lanes to fill";
  check_problems({kSubpixelProblems[0], kSubpixelProblems[1], kSubpixelProblems[3], kSubpixelProblems[7],
                  kSubpixelProblems[10], kSubpixelProblems[11]},
                 "subpixel_gemm");
  check_random_problems(59, subpixel_problem, "subpixel_gemm", true, 400);
}

TEST_P(EngineTarget, ChannelsFirstMatchesReference) {
  check_problems({"convT_mb6_g1_ic12_oc19_i3x3_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
                  "convT_mb2_g1_ic7_oc13_i41x37_k5x5_s3x3_d1x1_p1:1x1:1_op2x1_f32_cfirst_wtf",
                  "conv_mb1_g1_ic33_oc67_i21_k3_s1_d7_p9:7_f32_cfirst_wtorch"},
                 "gemm_simd", false, true);  // subpixel_gemm would take the second with 8 floats a vector or fewer
  // The panel rows' edge vectors (LoadInside) against their interior ones (plain loads): problem 11.
  check_problems({kPlanarGemmProblems[0], kPlanarGemmProblems[2], kPlanarGemmProblems[4], kPlanarGemmProblems[8],
                  kPlanarGemmProblems[11]},
                 "gemm_planar");
  check_problems({"conv_mb1_g32_ic32_oc32_i35x33_k4x4_s2x2_d1x1_p1:1x1:1_f32_cfirst_wtorch"}, "depthwise_simd");
  // 24 and 40 channels: AVX-512's narrow depthwise tiles (8 floats a vector), through the channels_last copy.
  check_problems({"conv_mb1_g24_ic24_oc24_i35x33_k4x4_s2x2_d1x1_p1:1x1:1_f32_cfirst_wtorch",
                  "conv_mb2_g40_ic40_oc40_i19x21_k3x3_s2x2_d1x1_p2:0x1:3_f32_cfirst_wtf"},
                 "depthwise_simd");
}

// gemm_planar's transposed layers whose kernel equals the stride along x: both x phases read the same input columns,
// computed in one pass and interleaved in registers (PlanarSharedPartsTile) where the target has the registers, in
// whole tiles of whole blocks; partial tiles (70 and 1000 pixels per phase), a partial block (17 and 13 outputs),
// 1D to 3D, a batch, both weight layouts, bias or none, and streamed outputs (4.2 MiB) into aligned and unaligned
// destinations. With padding the phases read different columns (not shared).
TEST_P(EngineTarget, PlanarSharedPartsMatchReference) {
  check_problems({"convT_mb1_g1_ic24_oc17_i3x70_k2x2_s2x2_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
                  "convT_mb2_g1_ic16_oc32_i3x4x64_k2x2x2_s2x2x2_d1x1x1_p0:0x0:0x0:0_op0x0x0_f32_cfirst_wtf",
                  "convT_mb1_g1_ic9_oc13_i1000_k2_s2_d1_p0:0_op0_f32_cfirst_wtorch",
                  "convT_mb1_g2_ic16_oc32_i2x96_k2x2_s2x2_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic8_oc16_i2x66_k2x2_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"},
                 "gemm_planar", false, true);
  for (bool aligned : {true, false}) {
    check_problems({"convT_mb1_g1_ic8_oc64_i8200_k2_s2_d1_p0:0_op0_f32_cfirst_wtorch"}, "gemm_planar", aligned, true);
  }
}

// Outputs over 4 MiB are written with streaming stores by one-pass tiles, a transposed layer (one tap per phase) and
// a depthwise one, channels_last, whose outputs are 8.1 and 4.1 MiB, and by the planar paths' interleaved rows
// (gemm_planar's two fused phases: interleaved in registers on AVX2 and SSE, through a buffer elsewhere; whole
// tiles, a partial last tile, a block of fewer rows).
TEST_P(EngineTarget, StreamedOutputsMatchReference) {
  for (bool aligned : {true, false}) {
    check_problems({"convT_mb1_g1_ic8_oc64_i8200_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch"}, "gemm_planar", aligned, true);
    check_problems({"convT_mb1_g1_ic8_oc64_i8200_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch"}, "winograd_planar", aligned);
    check_problems({"convT_mb1_g1_ic16_oc64_i64x124_k2x2_s2x2_d1x1_p0:0x0:0_op0x0_f32_clast_wtorch"}, "gemm_simd",
                   aligned);
    check_problems({"convT_mb1_g64_ic64_oc64_i65x65_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"},
                   "depthwise_simd", aligned);
    check_problems({"convT_mb1_g64_ic64_oc64_i65x66_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"},
                   "depthwise_planar", aligned);
  }
}

TEST_P(EngineTarget, WinogradMatchesReference) {
  check_winograd({"conv_mb1_g1_ic128_oc128_i11x13_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch",
                  // 2D with F(4, 3) along x
                  "conv_mb1_g1_ic128_oc128_i21x23_k3x3_s1x1_d2x1_p2:2x1:1_f32_cfirst_wtorch",
                  // 1D: F(4, 3) tiles, the last of each residue class partly past the output
                  "conv_mb2_g1_ic64_oc64_i67_k3_s1_d2_p3:1_f32_cfirst_wtorch",
                  "conv_mb1_g1_ic64_oc80_i130_k3_s1_d1_p0:2_f32_clast_wtf",
                  "conv_mb1_g1_ic64_oc64_i7x6x9_k3x3x3_s1x1x1_d1x1x2_p1:1x1:2x2:2_f32_clast_wtf",
                  "convT_mb1_g1_ic64_oc64_i10x9_k4x6_s2x3_d1x1_p1:2x2:1_op1x0_f32_cfirst_wtorch",
                  "convT_mb1_g1_ic128_oc128_i8x9_k5x4_s3x2_d1x1_p2:1x1:2_op1x0_f32_clast_wtorch",
                  // 32 channels (kMinChannelsLargeSaving)
                  "conv_mb1_g1_ic32_oc32_i13x15_k3x3_s1x1_d1x2_p1:1x2:2_f32_clast_wtorch",
                  // padded ends (kWinogradPaddedEnds) on both axes, and on y only
                  "conv_mb1_g1_ic64_oc64_i19x19_k3x3_s1x1_d10x10_p10:9x10:10_f32_clast_wtorch",
                  "conv_mb1_g1_ic64_oc64_i19x40_k3x3_s1x1_d10x2_p10:10x2:2_f32_cfirst_wtf",
                  // 1D: F(4, 2), a convolution and a transposed one
                  "conv_mb1_g1_ic64_oc64_i171_k2_s1_d3_p3:0_f32_clast_wtorch",
                  "convT_mb1_g1_ic64_oc64_i93_k4_s2_d1_p1:1_op0_f32_clast_wtf"});
}

INSTANTIATE_TEST_SUITE_P(AllTargets, EngineTarget, ::testing::ValuesIn(engine::supported_targets()),
                         [](const auto& target) { return target.param; });

// Transposed convolutions of one-pixel inputs as a dense layer (projection_gemm, channels_first): 1D to 3D, odd
// channel counts (output channels x taps not a multiple of a tile, five output channels), kernel 1 on a dilated axis,
// a stride (no effect on one pixel), batches of 1 to 67 images (tiles across the batch with a partial last one),
// both weight layouts. With padding, output padding, a dilated kernel or channels_last it declines.
const std::vector<const char*> kProjectionProblems = {
    "convT_mb64_g1_ic100_oc512_i1x1_k4x4_s1x1_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch",
    "convT_mb7_g1_ic13_oc11_i1x1_k3x5_s2x2_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtf",
    "convT_mb1_g1_ic67_oc5_i1_k7_s3_d1_p0:0_op0_f32_cfirst_wtorch",
    "convT_mb67_g1_ic9_oc17_i1x1x1_k2x1x3_s1x1x1_d1x3x1_p0:0x0:0x0:0_op0x0x0_f32_cfirst_wtf",
    "convT_mb3_g1_ic40_oc24_i1x1_k1x1_s1x1_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch"};
TEST_P(EngineTarget, ProjectionMatchesReference) {
  check_problems(kProjectionProblems, "projection_gemm");
}
TEST(Engine, ProjectionDeclinesWithReasons) {
  const auto reason = [](const char* text) {
    const Plan plan(parse_problem(text));
    for (const auto& c : plan.candidates()) {
      if (c.name == "projection_gemm") return c.declined_because;
    }
    return std::string("not listed");
  };
  EXPECT_EQ(reason("convT_mb4_g1_ic16_oc16_i1x1_k4x4_s1x1_d1x1_p0:0x0:0_op0x0_f32_clast_wtorch"),
            "not channels_first");
  EXPECT_EQ(reason("convT_mb4_g1_ic16_oc16_i1x1_k4x4_s1x1_d1x1_p1:0x0:0_op0x0_f32_cfirst_wtorch"),
            "padding or output padding (outputs are not the kernel's taps)");
  EXPECT_EQ(reason("convT_mb4_g1_ic16_oc16_i1x1_k4x4_s2x2_d1x1_p0:0x0:0_op0x1_f32_cfirst_wtorch"),
            "padding or output padding (outputs are not the kernel's taps)");
  EXPECT_EQ(reason("convT_mb4_g1_ic16_oc16_i1x1_k4x4_s1x1_d2x1_p0:0x0:0_op0x0_f32_cfirst_wtorch"),
            "dilated (outputs between the taps are zero)");
  EXPECT_EQ(reason("convT_mb4_g1_ic16_oc16_i1x2_k4x4_s1x1_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch"),
            "input larger than one pixel");
  EXPECT_EQ(reason("convT_mb4_g2_ic16_oc16_i1x1_k4x4_s1x1_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch"), "grouped");
}

TEST(Engine, ChoosesDepthwiseAndGemmWithReasons) {
  const Plan dw(parse_problem("conv_mb1_g32_ic32_oc32_i9x9_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch"));
  EXPECT_EQ(dw.implementation_name(), "depthwise_simd");
  const Plan gemm(parse_problem("convT_mb1_g1_ic8_oc8_i9x9_k5x5_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch"));
  EXPECT_EQ(gemm.implementation_name(), "gemm_simd");
  EXPECT_EQ(gemm.candidates()[0].declined_because,
            "neither a convolution with 2 or 3 taps per axis at stride 1 nor a transposed one whose kernel is 3 "
            "times the stride or longer than the stride and at most twice it, on every axis");
  EXPECT_EQ(gemm.candidates()[1].declined_because, "more than 4 output channels");
  EXPECT_EQ(gemm.candidates()[2].declined_because, "not channels_first");
  EXPECT_EQ(gemm.candidates()[3].name, "winograd_planar");
  EXPECT_EQ(gemm.candidates()[3].declined_because, "not channels_first");
  EXPECT_EQ(gemm.candidates()[4].declined_because, "not channels_first");
  EXPECT_EQ(gemm.candidates()[5].declined_because, "not depthwise (one channel per group)");
  EXPECT_EQ(gemm.candidates()[7].name, "subpixel_gemm");
  EXPECT_EQ(gemm.candidates()[7].declined_because, "rows of fewer than 16 inner positions");
  const Plan scatter(parse_problem("convT_mb1_g1_ic56_oc1_i9x9_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_clast_wtorch"));
  EXPECT_EQ(scatter.implementation_name(), "scatter_gemm");
  const Plan dot(parse_problem("conv_mb1_g1_ic56_oc1_i9x9_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch"));
  EXPECT_EQ(dot.implementation_name(), "dot_simd");
  // The planar path cuts long rows into chunks, so its scratch does not grow with them.
  const Plan long_rows(parse_problem("convT_mb1_g16_ic16_oc16_i600000_k4_s2_d1_p1:1_op0_f32_cfirst_wtorch"));
  EXPECT_EQ(long_rows.implementation_name(), "depthwise_planar");
  EXPECT_LT(long_rows.forward_workspace_bytes(), std::size_t{1} << 20);
  // Its slots hold a range of input rows: a dilation along y that would make them absurd goes elsewhere.
  const Plan far_rows(
      parse_problem("conv_mb1_g8_ic8_oc8_i3000x600_k3x3_s1x1_d1400x1_p1400:1400x1:1_f32_cfirst_wtorch"));
  EXPECT_NE(far_rows.implementation_name(), "depthwise_planar");
  EXPECT_EQ(far_rows.candidates()[2].declined_because, "input rows of a work item over 2 MiB (dilation along y)");
  // Winograd from 64 channels on (the context module's layer), when it saves enough over skipping padded taps.
  const Plan context(parse_problem("conv_mb1_g1_ic64_oc64_i128x128_k3x3_s1x1_d16x16_p16:16x16:16_f32_cfirst_wtorch"));
  EXPECT_EQ(context.implementation_name(), "winograd");
  const Plan narrow(parse_problem("conv_mb1_g1_ic16_oc64_i32x32_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch"));
  EXPECT_EQ(narrow.candidates()[0].declined_because, "fewer than 32 channels");
  // From 32 channels where it saves 1.6x or more: a 2D convolution of 3 taps does, a 2D transposed one of mixed
  // phases (1.41x) does not.
  const Plan conv32(parse_problem("conv_mb1_g1_ic48_oc64_i32x32_k3x3_s1x1_d1x1_p1:1x1:1_f32_clast_wtorch"));
  EXPECT_EQ(conv32.implementation_name(), "winograd");
  const Plan mixed32(parse_problem("convT_mb1_g1_ic64_oc32_i64x64_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch"));
  EXPECT_EQ(mixed32.candidates()[0].declined_because,
            "fewer than 64 channels where it saves under 1.6x the multiplications of the valid taps");
  // ASPP at rate 12 would multiply more than its valid taps; at rate 18 its tiles have padded ends.
  const Plan aspp12(parse_problem("conv_mb1_g1_ic512_oc256_i33x33_k3x3_s1x1_d12x12_p12:12x12:12_f32_clast_wtorch"));
  EXPECT_EQ(aspp12.candidates()[0].declined_because, "saves too few multiplications over skipping the padded taps");
  const Plan aspp18(parse_problem("conv_mb1_g1_ic512_oc256_i33x33_k3x3_s1x1_d18x18_p18:18x18:18_f32_clast_wtorch"));
  EXPECT_EQ(aspp18.implementation_name(), "winograd");
  // ASPP rate 6 (32 MiB of transformed kernels): Winograd with AVX-512's tiles only, channels_last and channels_first
  // (whose 1.1 MiB output images are staged whole); DeepLab's res5 channels_first (8.6 MiB output images, staged tile
  // row by tile row) takes 16 MiB at most.
  for (const char* layout : {"clast", "cfirst"}) {
    const std::string text = std::string("conv_mb1_g1_ic2048_oc256_i33x33_k3x3_s1x1_d6x6_p6:6x6:6_f32_") + layout;
    const Plan aspp6(parse_problem(text + "_wtorch"));
    if (engine::best_kernels().lanes >= 16) {
      EXPECT_EQ(aspp6.implementation_name(), "winograd") << layout;
    } else {
      EXPECT_EQ(aspp6.candidates()[0].declined_because,
                "transformed kernels over 16 MiB (every batch of tiles streams them)");
    }
  }
  const Plan res5_wide(parse_problem("conv_mb1_g1_ic512_oc1024_i65x65_k3x3_s1x1_d4x4_p4:4x4:4_f32_cfirst_wtorch"));
  EXPECT_EQ(res5_wide.candidates()[0].declined_because,
            "transformed kernels over 16 MiB (every batch of tiles streams them)");
  // Phases of 1 and 2 taps (CycleGAN's 3x3 at stride 2) from 64 channels on both sides, like the others.
  const Plan cyclegan(parse_problem("convT_mb1_g1_ic128_oc64_i128x128_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch"));
  EXPECT_EQ(cyclegan.implementation_name(), "winograd");
  const Plan vol(
      parse_problem("convT_mb1_g1_ic64_oc32_i32x32x32_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_clast_wtorch"));
  EXPECT_EQ(vol.implementation_name(), "winograd");  // 32 channels: its 3D phases save 1.67x (kLargeSaving)
  // ... channels_first (whole images staged) from 128 as before.
  const Plan first(parse_problem("convT_mb2_g1_ic64_oc64_i16x16_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtorch"));
  EXPECT_EQ(first.candidates()[0].declined_because, "channels_first stride phases of 1 and 2 taps with fewer than 128 "
                                                    "channels");
  const Plan wider(parse_problem("convT_mb1_g1_ic256_oc128_i64x64_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch"));
  EXPECT_EQ(wider.implementation_name(), "winograd");
  // channels_first transposed layers whose image outputs exceed the whole-image staging go tile row by tile row
  // where Winograd saves 1.6x or more (kernel 4 at stride 2 in 2D, 1.78x) from 64 input channels, in 1D and 2D from
  // 128 on both sides; the others to the planar paths.
  const Plan large_first(
      parse_problem("convT_mb1_g1_ic128_oc128_i64x64_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"));
  EXPECT_EQ(large_first.implementation_name(), "winograd");
  const Plan vol_first(
      parse_problem("convT_mb1_g1_ic64_oc32_i32x32x32_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch"));
  EXPECT_EQ(vol_first.implementation_name(), "winograd");
  const Plan narrow_first(
      parse_problem("convT_mb1_g1_ic64_oc64_i128x128_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"));
  EXPECT_EQ(narrow_first.implementation_name(), "winograd_planar");
  EXPECT_EQ(narrow_first.candidates()[0].declined_because,
            "channels_first 1D or 2D transposed, not staged whole, with fewer than 128 channels");
  const Plan cyclegan_first(
      parse_problem("convT_mb1_g1_ic128_oc64_i128x128_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtorch"));
  EXPECT_EQ(cyclegan_first.candidates()[0].declined_because,
            "channels_first transposed, not staged whole (image sources or outputs over 2 MiB), where it saves under "
            "1.6x the multiplications of the valid taps");
  const Plan vol32_first(
      parse_problem("convT_mb1_g1_ic32_oc32_i32x32x32_k3x3x3_s2x2x2_d1x1x1_p1:1x1:1x1:1_op1x1x1_f32_cfirst_wtorch"));
  EXPECT_EQ(vol32_first.candidates()[0].declined_because,
            "channels_first transposed, not staged whole, with fewer than 64 input channels");
  // Strides up to 2^62 are valid: the shape test must not multiply them (it did, an overflow UBSan caught through
  // the command-line tests).
  const Plan huge_stride(parse_problem("conv_mb1_g1_ic64_oc64_i9_k3_s4611686018427387904_d1_p0:0_f32_clast_wtorch"));
  EXPECT_EQ(huge_stride.candidates()[0].declined_because.substr(0, 30), "neither a convolution with 2 o");
  const Plan f64(parse_problem("convT_mb1_g1_ic8_oc8_i9x9_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f64_clast_wtorch"));
  EXPECT_EQ(f64.implementation_name(), "reference");
}

}  // namespace
}  // namespace tdconv::testing
