// backward_data as the forward pass of the adjoint problem (src/plan/adjoint.hpp): the adjoint's shapes and values
// against the reference's backward loops, then Plan::backward_data on the fast paths.
#ifdef _OPENMP
#include <omp.h>
#endif
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "plan/adjoint.hpp"
#include "plan/phase_channels.hpp"
#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "support/training_layers.hpp"
#include "tdconv/error.hpp"
#include "tdconv/plan.hpp"

namespace tdconv::testing {
namespace {

// The adjoint exists for every convolution, and for a transposed convolution unless its output padding reaches past
// pad_end + stride - 1 (possible only with dilation > stride); where it exists, it is valid and its tensors are the
// original's with src and dst exchanged.
TEST(Adjoint, ShapesMirrorTheProblem) {
  std::mt19937_64 rng(71);
  int missing = 0;
  for (int i = 0; i < 3000; ++i) {
    const Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    const std::optional<Problem> a = detail::adjoint_problem(p);
    bool expected = true;
    for (int d = 0; d < p.spatial_dims; ++d) {
      expected = expected && p.output_padding[d] <= p.pad_end[d] + p.stride[d] - 1;
    }
    ASSERT_EQ(a.has_value(), expected) << to_string(p);
    if (!a) {
      ++missing;
      continue;
    }
    EXPECT_NE(a->op, p.op) << to_string(p);
    EXPECT_EQ(src_shape(*a), dst_shape(p)) << to_string(p) << " -> " << to_string(*a);
    EXPECT_EQ(dst_shape(*a), src_shape(p)) << to_string(p) << " -> " << to_string(*a);
    EXPECT_EQ(weights_shape(*a), weights_shape(p)) << to_string(p) << " -> " << to_string(*a);
  }
  EXPECT_GT(missing, 0) << "the draws should reach transposed problems without an adjoint";
  EXPECT_LT(missing, 300);
}

// The adjoint's forward pass (plain reference loops) is the reference's data gradient, element for element.
TEST(Adjoint, ForwardOfTheAdjointIsTheDataGradient) {
  std::mt19937_64 rng(73);
  for (int i = 0; i < 600; ++i) {
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    p.dtype = DType::f64;
    const std::optional<Problem> a = detail::adjoint_problem(p);
    if (!a) continue;
    const std::vector<double> dy = random_values(rng, dst_shape(p)), w = random_values(rng, weights_shape(p));
    std::vector<double> want(static_cast<std::size_t>(element_count(src_shape(p), "t")));
    std::vector<double> got(want.size(), std::numeric_limits<double>::quiet_NaN());
    reference::backward_data(p, dy.data(), w.data(), want.data());
    reference::forward(*a, dy.data(), w.data(), static_cast<const double*>(nullptr), got.data());
    for (std::size_t j = 0; j < want.size(); ++j) {
      ASSERT_NEAR(got[j], want[j], 1e-12 * (1 + std::abs(want[j]))) << "element " << j << ": " << to_string(p);
    }
  }
}

// The flipped adjoint (a convolution at stride 1 with the kernel reversed) exists exactly for convolutions at stride
// 1 whose padding reaches no further than the dilated kernel; with flip_weights' weights its reference forward pass
// is the reference's data gradient, in both weight layouts, with groups, 1D to 3D.
TEST(Adjoint, FlippedAdjointIsTheDataGradient) {
  std::mt19937_64 rng(75);
  int flipped = 0;
  for (int i = 0; i < 800; ++i) {
    Problem p = random_problem(rng, Op::conv);
    if (i % 2) {
      for (int d = 0; d < p.spatial_dims; ++d) p.stride[d] = 1;
      try {
        validate(p);
      } catch (const Error&) {
        continue;
      }
    }
    p.dtype = DType::f32;
    bool expected = true;
    for (int d = 0; d < p.spatial_dims; ++d) {
      const std::int64_t reach = p.dilation[d] * (p.kernel[d] - 1);
      expected = expected && p.stride[d] == 1 && p.pad_begin[d] <= reach && p.pad_end[d] <= reach;
    }
    const std::optional<Problem> a = detail::flipped_adjoint_problem(p);
    ASSERT_EQ(a.has_value(), expected) << to_string(p);
    if (!a) continue;
    ++flipped;
    EXPECT_EQ(a->op, Op::conv);
    EXPECT_EQ(src_shape(*a), dst_shape(p)) << to_string(p);
    EXPECT_EQ(dst_shape(*a), src_shape(p)) << to_string(p);
    auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    const std::vector<float> dy = to_float(random_values(rng, dst_shape(p)));
    const std::vector<float> w = to_float(random_values(rng, weights_shape(p)));
    std::vector<float> wf(w.size(), std::numeric_limits<float>::quiet_NaN());
    detail::flip_weights(p, w.data(), wf.data());
    std::vector<float> want(static_cast<std::size_t>(element_count(src_shape(p), "t"))), got(want.size());
    reference::backward_data(p, dy.data(), w.data(), want.data());
    reference::forward(*a, dy.data(), wf.data(), static_cast<const float*>(nullptr), got.data());
    for (std::size_t j = 0; j < want.size(); ++j) {
      ASSERT_NEAR(got[j], want[j], 1e-5 * (1 + std::abs(want[j]))) << "element " << j << ": " << to_string(p);
    }
  }
  EXPECT_GT(flipped, 40);
}

// Plan::backward_data in float32 with `threads` threads into a NaN-filled diff_src.
std::vector<float> plan_backward_data(const Plan& plan, const std::vector<float>& dy, const std::vector<float>& w,
                                      [[maybe_unused]] int threads) {
  const Problem& p = plan.problem();
  std::vector<float> dx(static_cast<std::size_t>(element_count(src_shape(p), "t")),
                        std::numeric_limits<float>::quiet_NaN());
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  plan.backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                     mutable_view(dx.data(), src_shape(p)));
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  return dx;
}

// One float32 problem: Plan::backward_data against the reference's loops, every element written, 1 and 2 threads
// bitwise equal, and the adjoint on a fast path. Returns the adjoint's implementation.
std::string check_backward_data(std::mt19937_64& rng, const Problem& p) {
  const std::optional<Problem> a = detail::adjoint_problem(p);
  EXPECT_TRUE(a.has_value()) << to_string(p);
  if (!a) return "";
#ifdef _OPENMP
  omp_set_num_threads(1);  // plans made for one thread (their choice may depend on the threads)
#endif
  const Plan adjoint(*a);
  const Plan plan(p);
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> dy = to_float(random_values(rng, dst_shape(p)));
  const std::vector<float> w = to_float(random_values(rng, weights_shape(p)));
  std::vector<float> want(static_cast<std::size_t>(element_count(src_shape(p), "t")));
  reference::backward_data(p, dy.data(), w.data(), want.data());
  const std::vector<float> one = plan_backward_data(plan, dy, w, 1);
  for (std::size_t j = 0; j < want.size(); ++j) {
    if (std::isnan(one[j])) {
      ADD_FAILURE() << "element " << j << " not written: " << to_string(p);
      break;
    }
    if (std::abs(one[j] - want[j]) > 1e-4 * (1 + std::abs(want[j]))) {
      ADD_FAILURE() << "element " << j << ": " << one[j] << " against " << want[j] << " by "
                    << adjoint.implementation_name() << ": " << to_string(p) << " (adjoint " << to_string(*a) << ")";
      break;
    }
  }
  const std::vector<float> two = plan_backward_data(plan, dy, w, 2);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << "1 and 2 threads differ: "
                                                                                  << to_string(p);
  return adjoint.implementation_name();
}

TEST(Adjoint, PlanBackwardDataMatchesTheReferenceOnRandomProblems) {
  std::mt19937_64 rng(79);
  int fast = 0, ran = 0;
  for (int i = 0; ran < 300; ++i) {
    ProblemLimits lim;
    if (i % 3 == 1) {  // many channels: the gemm and Winograd paths, odd counts
      lim.max_channels_per_group = 67;
      lim.max_groups = 1;
      lim.max_input = 6;
      lim.max_spatial_dims = 2;
    }
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose, lim);
    p.dtype = DType::f32;
    if (!detail::adjoint_problem(p)) continue;
    ++ran;
    const std::string impl = check_backward_data(rng, p);
    fast += impl != "reference";
    if (HasFailure()) return;
  }
  EXPECT_EQ(fast, ran) << "every float32 adjoint should take a SIMD path";
}

// Layers shaped like the suite's (smaller), whose adjoints take the gemm, Winograd, sub-pixel and depthwise paths.
TEST(Adjoint, PlanBackwardDataOnDecoderAndAtrousLayers) {
  std::mt19937_64 rng(83);
  for (const char* text : kTrainingLayers) {
    const std::string impl = check_backward_data(rng, parse_problem(text));
    EXPECT_NE(impl, "reference") << text;
  }
}

// float64 stays on the reference's loops, exactly (the adjoint would run them too).
TEST(Adjoint, Float64BackwardDataIsTheReferenceExactly) {
  std::mt19937_64 rng(89);
  const Problem p = parse_problem("convT_mb2_g1_ic5_oc3_i4x6_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f64_clast_wtorch");
  const std::vector<double> dy = random_values(rng, dst_shape(p)), w = random_values(rng, weights_shape(p));
  std::vector<double> want(static_cast<std::size_t>(element_count(src_shape(p), "t"))), got(want.size());
  reference::backward_data(p, dy.data(), w.data(), want.data());
  Plan(p).backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                        mutable_view(got.data(), src_shape(p)));
  EXPECT_EQ(got, want);
}

// A float32 plan made for the reference keeps both backward passes on it: exactly the reference's numbers.
TEST(Adjoint, PlanForcedOntoTheReferenceKeepsTheBackwardPassesThere) {
  std::mt19937_64 rng(91);
  const Problem p = parse_problem("conv_mb2_g1_ic20_oc24_i9x8_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch");
  const Plan plan(p, PlanOptions{"reference"});
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> x = to_float(random_values(rng, src_shape(p)));
  const std::vector<float> dy = to_float(random_values(rng, dst_shape(p)));
  const std::vector<float> w = to_float(random_values(rng, weights_shape(p)));
  std::vector<float> dx(x.size()), want_dx(x.size()), dw(w.size()), want_dw(w.size());
  plan.backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                     mutable_view(dx.data(), src_shape(p)));
  plan.backward_weights(view(x.data(), src_shape(p)), view(dy.data(), dst_shape(p)),
                        mutable_view(dw.data(), weights_shape(p)), MutableTensorView{});
  reference::backward_data(p, dy.data(), w.data(), want_dx.data());
  reference::backward_weights(p, x.data(), dy.data(), want_dw.data(), static_cast<float*>(nullptr));
  EXPECT_EQ(dx, want_dx);
  EXPECT_EQ(dw, want_dw);
}

// What TDCONV_VERBOSE=1 prints during a fresh float32 plan's first backward_data call.
std::string verbose_backward_data(const Problem& p) {
  std::vector<float> dy(static_cast<std::size_t>(element_count(dst_shape(p), "t")), 1.0f);
  std::vector<float> w(static_cast<std::size_t>(element_count(weights_shape(p), "t")), 0.5f);
  std::vector<float> dx(static_cast<std::size_t>(element_count(src_shape(p), "t")));
  const Plan plan(p);
  setenv("TDCONV_VERBOSE", "1", 1);
  ::testing::internal::CaptureStderr();
  plan.backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                     mutable_view(dx.data(), src_shape(p)));
  const std::string out = ::testing::internal::GetCapturedStderr();
  unsetenv("TDCONV_VERBOSE");
  return out;
}

TEST(Adjoint, VerboseSaysBackwardDataRunsAsTheFlippedAdjoint) {
  const std::string out =
      verbose_backward_data(parse_problem("conv_mb1_g1_ic16_oc32_i9x9_k3x3_s1x1_d2x2_p2:2x1:3_f32_clast_wtf"));
  EXPECT_NE(out.find("runs as the forward pass of its adjoint, a convolution with the kernel reversed"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tdconv: plan conv_mb1_g1_ic32_oc16_i9x9_k3x3_s1x1_d2x2_p2:2x3:1_f32_clast_wtf"),
            std::string::npos)
      << out;
}

TEST(Adjoint, VerboseSaysBackwardDataRunsAsTheAdjoint) {
  const Problem p = parse_problem("conv_mb1_g1_ic8_oc16_i9x9_k3x3_s2x2_d1x1_p1:1x1:1_f32_clast_wtorch");
  const std::string out = verbose_backward_data(p);
  EXPECT_NE(out.find("backward_data of " + to_string(p) + " runs as the forward pass of its adjoint"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tdconv: plan convT_mb1_g1_ic16_oc8_i5x5_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"),
            std::string::npos)
      << out;
}

// Transposed convolutions whose kernel is 2 or 3 times the stride: backward_data over diff_dst's stride phases as
// channels (phase_channels.hpp), a stride-1 convolution on Winograd's path. Padding up to the whole kernel, output
// padding, unequal strides, 1D to 3D, both weight layouts (Winograd takes channels in multiples of the vector width
// only); the last problem's Z (3 images of 2.9 MiB) is over kMaxPhaseSourceBytes, so it runs an image per call.
TEST(Adjoint, BackwardDataOverStridePhasesMatchesTheReference) {
  std::mt19937_64 rng(97);
  for (const char* text : {
           "convT_mb3_g1_ic64_oc36_i13x14_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
           "convT_mb2_g1_ic64_oc20_i13x15_k4x4_s2x2_d1x1_p3:0x2:3_op1x1_f32_clast_wtf",
           "convT_mb2_g1_ic64_oc16_i12x13_k6x6_s3x3_d1x1_p2:4x1:0_op2x0_f32_clast_wtorch",
           "convT_mb2_g1_ic64_oc24_i12x12_k4x6_s2x3_d1x1_p1:2x2:1_op0x1_f32_clast_wtorch",
           "convT_mb2_g1_ic64_oc40_i13x15_k6x3_s2x1_d1x1_p2:1x1:0_op1x0_f32_clast_wtf",
           "convT_mb4_g1_ic64_oc56_i120_k4_s2_d1_p1:2_op1_f32_clast_wtorch",
           "convT_mb1_g1_ic64_oc18_i9x10x9_k4x4x4_s2x2x2_d1x1x1_p1:1x0:1x2:1_op0x0x0_f32_clast_wtorch",
           "convT_mb3_g1_ic64_oc64_i52x52_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
       }) {
    const Problem p = parse_problem(text);
    const std::string out = verbose_backward_data(p);
    EXPECT_NE(out.find("over diff_dst's stride phases as channels"), std::string::npos) << text << "\n" << out;
    check_backward_data(rng, p);
    if (HasFailure()) return;
  }
}

TEST(Adjoint, StridePhasesOnlyWhereTheKernelIsTwoOrThreeStridesOnEveryAxis) {
  const auto takes = [](const char* text) {
    const Problem p = parse_problem(text);
    return detail::phase_channels_problem(p, 1).has_value();
  };
  EXPECT_TRUE(takes("convT_mb2_g1_ic8_oc4_i5x5_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));
  EXPECT_TRUE(takes("convT_mb2_g1_ic8_oc4_i5x5_k6x3_s2x1_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"));  // layout
  EXPECT_FALSE(takes("convT_mb2_g2_ic8_oc4_i5x5_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));  // groups
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k4x4_s2x2_d2x2_p1:1x1:1_op0x0_f32_clast_wtorch"));  // dilation
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));  // 1.5 strides
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k8x8_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));  // 4 strides
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k4x6_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch"));  // 2 and 3
  EXPECT_FALSE(takes("convT_mb2_g1_ic8_oc4_i5x5_k2x2_s1x1_d1x1_p0:0x0:0_op0x0_f32_clast_wtorch"));  // stride 1
  EXPECT_FALSE(takes("conv_mb2_g1_ic8_oc4_i9x9_k4x4_s2x2_d1x1_p1:1x1:1_f32_clast_wtorch"));           // conv
  const Problem dcgan = parse_problem("convT_mb64_g1_ic128_oc64_i16x16_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch");
  const std::optional<Problem> q = detail::phase_channels_problem(dcgan, detail::phase_channels_images(dcgan));
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(to_string(*q), "conv_mb16_g1_ic256_oc128_i17x17_k2x2_s1x1_d1x1_p0:0x0:0_f32_clast_wtorch");
}

}  // namespace
}  // namespace tdconv::testing
