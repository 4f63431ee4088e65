// Plan::backward_weights in float32 (src/engine/weight_gradient.cpp) against the reference's loops: random problems
// that reach the edges (padding past the kernel, stride past the kernel, dilation with stride, output padding,
// groups and depthwise, odd channel counts, both layouts and weight layouts, 1D to 3D), every compiled SIMD target,
// NaN-filled outputs, 1 and 2 threads bitwise equal.
#ifdef _OPENMP
#include <omp.h>
#endif
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "engine/kernels.hpp"
#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "support/training_layers.hpp"
#include "tdconv/plan.hpp"

namespace tdconv::testing {
namespace {

struct Gradients {
  std::vector<float> weights, bias;
};

Gradients plan_gradients(const Plan& plan, const std::vector<float>& x, const std::vector<float>& dy, bool with_bias,
                         [[maybe_unused]] int threads) {
  const Problem& p = plan.problem();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Gradients g{std::vector<float>(static_cast<std::size_t>(element_count(weights_shape(p), "t")), nan),
              std::vector<float>(static_cast<std::size_t>(p.out_channels), nan)};
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  const MutableTensorView bias = with_bias ? mutable_view(g.bias.data(), bias_shape(p)) : MutableTensorView{};
  plan.backward_weights(view(x.data(), src_shape(p)), view(dy.data(), dst_shape(p)),
                        mutable_view(g.weights.data(), weights_shape(p)), bias);
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  return g;
}

// Within 1e-4 x (1 + the sum of the magnitudes of the element's terms): long sums over pixels cancel (3 images of
// 6400 pixels: 3e-4 off a gradient of 1.56 whose terms' magnitudes sum to thousands), and any order of summation
// rounds within that bound (the rule diff_fuzz uses).
void expect_near(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& bound,
                 const char* what, const Problem& p) {
  for (std::size_t j = 0; j < want.size(); ++j) {
    if (std::isnan(got[j])) {
      ADD_FAILURE() << what << " element " << j << " not written: " << to_string(p);
      return;
    }
    if (std::abs(got[j] - want[j]) > 1e-4 * (1 + bound[j])) {
      ADD_FAILURE() << what << " element " << j << ": " << got[j] << " against " << want[j] << ": " << to_string(p);
      return;
    }
  }
}

// One float32 problem with random values: weights and bias gradients against the reference, 1 and 2 threads
// bitwise equal; without a bias gradient the weights' are the same.
void check_weight_gradient(std::mt19937_64& rng, const Problem& p) {
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  const Plan plan(p);
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> x = to_float(random_values(rng, src_shape(p)));
  const std::vector<float> dy = to_float(random_values(rng, dst_shape(p)));
  std::vector<float> want_w(static_cast<std::size_t>(element_count(weights_shape(p), "t")));
  std::vector<float> want_b(static_cast<std::size_t>(p.out_channels));
  reference::backward_weights(p, x.data(), dy.data(), want_w.data(), want_b.data());
  std::vector<float> bound_w(want_w.size()), bound_b(want_b.size()), abs_x(x.size()), abs_dy(dy.size());
  std::transform(x.begin(), x.end(), abs_x.begin(), [](float v) { return std::abs(v); });
  std::transform(dy.begin(), dy.end(), abs_dy.begin(), [](float v) { return std::abs(v); });
  reference::backward_weights(p, abs_x.data(), abs_dy.data(), bound_w.data(), bound_b.data());
  const Gradients one = plan_gradients(plan, x, dy, true, 1);
  expect_near(one.weights, want_w, bound_w, "diff_weights", p);
  expect_near(one.bias, want_b, bound_b, "diff_bias", p);
  const Gradients two = plan_gradients(plan, x, dy, true, 2);
  EXPECT_EQ(0, std::memcmp(one.weights.data(), two.weights.data(), one.weights.size() * sizeof(float)))
      << "1 and 2 threads differ: " << to_string(p);
  EXPECT_EQ(0, std::memcmp(one.bias.data(), two.bias.data(), one.bias.size() * sizeof(float))) << to_string(p);
  const Gradients no_bias = plan_gradients(plan, x, dy, false, 2);
  EXPECT_EQ(0, std::memcmp(one.weights.data(), no_bias.weights.data(), one.weights.size() * sizeof(float)))
      << "weights differ without a bias gradient: " << to_string(p);
}

class WeightGradientTarget : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engine::force_target(GetParam()));
    ASSERT_EQ(engine::best_kernels().weight_grad_target, GetParam());
  }
  void TearDown() override { engine::force_target(""); }
};

TEST_P(WeightGradientTarget, MatchesReferenceOnRandomProblems) {
  std::mt19937_64 rng(97);
  for (int i = 0; i < 240; ++i) {
    ProblemLimits lim;
    const int kind = i % 4;
    if (kind == 1) {  // many channels, small spatial: odd counts up to 67, partial tiles both ways
      lim.max_channels_per_group = 67;
      lim.max_groups = 1;
      lim.max_input = 5;
      lim.max_spatial_dims = 2;
    }
    if (kind == 2) {  // longer rows: runs of many pixels, strides and dilations past the kernel
      lim.max_input = 19;
      lim.max_spatial_dims = 1;
      lim.max_stride = 5;
      lim.max_dilation = 5;
      lim.max_kernel = 5;
    }
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose, lim);
    if (kind == 3) p.groups = p.in_channels = p.out_channels = uniform(rng, 1, 20);  // depthwise
    p.dtype = DType::f32;
    validate(p);
    check_weight_gradient(rng, p);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, WeightGradientTarget, ::testing::ValuesIn(engine::supported_targets()),
                         [](const auto& target) { return target.param; });

// The training layers (support/training_layers.hpp), then shapes that reach the tiles' other arrangements.
TEST(WeightGradient, DecoderAndAtrousLayers) {
  std::mt19937_64 rng(101);
  for (const char* text : kTrainingLayers) check_weight_gradient(rng, parse_problem(text));
  for (const char* text : {
           "conv_mb1_g4_ic36_oc20_i7x30_k3x5_s1x2_d2x1_p9:0x0:7_f32_clast_wtf",
           // one output channel: the tiles' vectors run over the 56 input channels instead
           "convT_mb1_g1_ic56_oc1_i20x20_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_clast_wtorch",
           "convT_mb2_g1_ic56_oc1_i13x11_k9x9_s3x3_d1x1_p4:4x4:4_op2x2_f32_cfirst_wtf",
           // depthwise, 32 channels (vectors read in place) and 20 (copies with room after them)
           "conv_mb2_g32_ic32_oc32_i9x9_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch",
           "convT_mb1_g20_ic20_oc20_i9x7_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch",
           // rows longer than a chunk, in pieces; many small images in one chunk
           "convT_mb1_g1_ic24_oc16_i700_k4_s2_d1_p1:1_op0_f32_clast_wtorch",
           "conv_mb2_g1_ic16_oc24_i600_k3_s1_d8_p8:8_f32_cfirst_wtorch",
           "convT_mb40_g1_ic20_oc12_i2x2_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtf",
           "convT_mb70_g1_ic33_oc16_i1x1_k4x4_s1x1_d1x1_p0:0x0:0_op0x0_f32_clast_wtorch",
           // images of 3.1 MiB (both sides): two per copy, one per chunk, the second chunk from inside a copy
           "conv_mb3_g1_ic64_oc64_i80x80_k1x1_s1x1_d1x1_p0:0x0:0_f32_cfirst_wtorch",
       }) {
    check_weight_gradient(rng, parse_problem(text));
  }
}

// A tap whose every dense pixel lies in padding gets a zero gradient, not what the buffer held.
TEST(WeightGradient, TapsWhollyInPaddingAreZero) {
  const Problem p = parse_problem("conv_mb1_g1_ic3_oc2_i2x2_k3x3_s1x1_d4x4_p4:4x4:4_f32_clast_wtorch");
  std::vector<float> x(12, 1.0f), dy(static_cast<std::size_t>(element_count(dst_shape(p), "t")), 1.0f);
  std::vector<float> dw(static_cast<std::size_t>(element_count(weights_shape(p), "t")), 7.0f);
  std::vector<float> want(dw.size());
  reference::backward_weights(p, x.data(), dy.data(), want.data(), static_cast<float*>(nullptr));
  Plan(p).backward_weights(view(x.data(), src_shape(p)), view(dy.data(), dst_shape(p)),
                           mutable_view(dw.data(), weights_shape(p)), MutableTensorView{});
  EXPECT_EQ(dw, want);
  EXPECT_NE(std::count(want.begin(), want.end(), 0.0f), 0);
}

}  // namespace
}  // namespace tdconv::testing
