// The reference on hand-worked examples, and its layouts and groups against plain re-arrangements.
#include <gtest/gtest.h>

#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "support/tensor_ops.hpp"

namespace tdconv::testing {
namespace {

template <class T>
std::vector<T> run(const std::string& problem, const std::vector<T>& x, const std::vector<T>& w,
                   const std::vector<T>& bias = {}) {
  const Problem p = parse_problem(problem);
  std::vector<T> y(static_cast<std::size_t>(element_count(dst_shape(p), "test")));
  reference::forward(p, x.data(), w.data(), bias.empty() ? nullptr : bias.data(), y.data());
  return y;
}

TEST(Reference, Seed1DTransposed) {
  EXPECT_EQ(run<float>("convT_mb1_g1_ic1_oc1_i2_k3_s2_d1_p0:0_op0_f32_cfirst_wtorch", {2, 3}, {1, 2, 3}),
            (std::vector<float>{2, 4, 9, 6, 9}));
}

TEST(Reference, Seed2DTransposedWithPadding) {
  const std::vector<double> x{1, 2, 3, 4}, w{1, 1, 1, 0, 0, 0, -1, -1, -1};
  EXPECT_EQ(run<double>("convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f64_cfirst_wtorch", x, w),
            (std::vector<double>{0, 0, 0, 2, 4, 2, 0, 0, 0}));
  // Without padding: the full (intermediate) output of the walk-through.
  EXPECT_EQ(run<double>("convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p0:0x0:0_op0x0_f64_cfirst_wtorch", x, w),
            (std::vector<double>{1, 1, 3, 2, 2, 0, 0, 0, 0, 0, 2, 2, 4, 2, 2, 0, 0, 0, 0, 0, -3, -3, -7, -4, -4}));
}

TEST(Reference, OutputPaddingTakesBackCroppedElementsThenZeros) {
  // Full output [2,4,9,6,9]; crop 1:1 gives [4,9,6]; output padding 1 takes back the cropped 9.
  EXPECT_EQ(run<float>("convT_mb1_g1_ic1_oc1_i2_k3_s2_d1_p1:1_op1_f32_cfirst_wtorch", {2, 3}, {1, 2, 3}),
            (std::vector<float>{4, 9, 6, 9}));
  // Kernel 1, stride 3, output padding 2: past the full output only zeros (plus bias).
  EXPECT_EQ(run<float>("convT_mb1_g1_ic1_oc1_i2_k1_s3_d1_p0:0_op2_f32_cfirst_wtorch", {2, 3}, {5}, {1}),
            (std::vector<float>{11, 1, 1, 16, 1, 1}));
}

TEST(Reference, DilatedConvAndCausalPadding) {
  // y[o] = x[o] - x[o + 4]
  EXPECT_EQ(run<float>("conv_mb1_g1_ic1_oc1_i7_k3_s1_d2_p0:0_f32_cfirst_wtorch", {1, 2, 3, 4, 5, 6, 7}, {1, 0, -1}),
            (std::vector<float>{-4, -4, -4}));
  // Causal (WaveNet): padding 2:0 with dilation 2, kernel 2: y[o] = x[o-2] + 10 x[o].
  EXPECT_EQ(run<float>("conv_mb1_g1_ic1_oc1_i4_k2_s1_d2_p2:0_f32_cfirst_wtorch", {1, 2, 3, 4}, {1, 10}),
            (std::vector<float>{10, 20, 31, 42}));
}

TEST(Reference, BiasIsAddedPerOutputChannel) {
  // 2 output channels, kernel 1: y[c] = x * w[c] + b[c].
  EXPECT_EQ(run<float>("conv_mb1_g1_ic1_oc2_i3_k1_s1_d1_p0:0_f32_cfirst_wtorch", {1, 2, 3}, {1, 2}, {10, 20}),
            (std::vector<float>{11, 12, 13, 22, 24, 26}));
  EXPECT_EQ(run<float>("conv_mb1_g1_ic1_oc2_i3_k1_s1_d1_p0:0_f32_clast_wtorch", {1, 2, 3}, {1, 2}, {10, 20}),
            (std::vector<float>{11, 22, 12, 24, 13, 26}));
}

// Channels-last activations and tf weights are re-arrangements: results must be the same numbers, re-arranged.
TEST(Reference, LayoutsAreRearrangements) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 500; ++i) {
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    p.dtype = DType::f64;
    p.layout = Layout::channels_first;
    p.weight_layout = WeightLayout::torch;
    Problem q = p;
    q.layout = Layout::channels_last;
    q.weight_layout = WeightLayout::tf;
    const auto x = random_values(rng, src_shape(p));
    const auto w = random_values(rng, weights_shape(p));
    const auto b = random_values(rng, bias_shape(p));
    const int n = p.spatial_dims;
    const auto ws = weights_shape(p);
    const std::vector<double> xq = to_channels_last(x, p.batch, p.in_channels, volume(p.input, n));
    const std::vector<double> wq = torch_to_tf_weights(w, ws[0], ws[1], volume(p.kernel, n));
    std::vector<double> y(static_cast<std::size_t>(element_count(dst_shape(p), "t"))), yq(y.size());
    reference::forward(p, x.data(), w.data(), b.data(), y.data());
    reference::forward(q, xq.data(), wq.data(), b.data(), yq.data());
    EXPECT_EQ(to_channels_last(y, p.batch, p.out_channels, volume(output_size(p), n)), yq) << to_string(p);
  }
}

// A grouped problem is `groups` independent problems on slices of the channels.
TEST(Reference, GroupsAreIndependentSlices) {
  std::mt19937_64 rng(12);
  for (int i = 0; i < 300; ++i) {
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    p.dtype = DType::f64;
    p.layout = Layout::channels_first;
    p.weight_layout = WeightLayout::torch;
    p.batch = 1;
    if (p.groups == 1) continue;
    Problem one = p;
    one.groups = 1;
    one.in_channels = p.in_channels / p.groups;
    one.out_channels = p.out_channels / p.groups;
    const auto x = random_values(rng, src_shape(p));
    const auto w = random_values(rng, weights_shape(p));
    std::vector<double> y(static_cast<std::size_t>(element_count(dst_shape(p), "t")));
    reference::forward(p, x.data(), w.data(), static_cast<const double*>(nullptr), y.data());
    const std::size_t xs = x.size() / p.groups, ws = w.size() / p.groups, ys = y.size() / p.groups;
    for (std::int64_t g = 0; g < p.groups; ++g) {
      std::vector<double> yg(ys);
      reference::forward(one, x.data() + g * xs, w.data() + g * ws, static_cast<const double*>(nullptr), yg.data());
      EXPECT_EQ(yg, std::vector<double>(y.begin() + g * ys, y.begin() + (g + 1) * ys)) << to_string(p);
    }
  }
}

TEST(Reference, Float32AndFloat64AgreeOnExactValues) {
  std::mt19937_64 rng(13);
  for (int i = 0; i < 300; ++i) {
    Problem p = random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    const auto x = random_small_integers(rng, src_shape(p));
    const auto w = random_small_integers(rng, weights_shape(p));
    std::vector<double> y(static_cast<std::size_t>(element_count(dst_shape(p), "t")));
    reference::forward(p, x.data(), w.data(), static_cast<const double*>(nullptr), y.data());
    const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end());
    std::vector<float> yf(y.size());
    reference::forward(p, xf.data(), wf.data(), static_cast<const float*>(nullptr), yf.data());
    EXPECT_EQ(std::vector<double>(yf.begin(), yf.end()), y) << to_string(p);
  }
}

}  // namespace
}  // namespace tdconv::testing
