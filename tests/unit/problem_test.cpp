// The Problem: validation messages, tensor shapes in every layout, and the canonical problem string.
#include <gtest/gtest.h>

#include "support/random_problem.hpp"
#include "tdconv/error.hpp"
#include "tdconv/problem.hpp"

namespace tdconv {
namespace {

std::string error_of(const Problem& p) {
  try {
    validate(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Problem seed_2d() { return parse_problem("convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch"); }

TEST(Problem, CanonicalStringOfTheSeedExample) {
  const Problem p = seed_2d();
  EXPECT_EQ(p.op, Op::conv_transpose);
  EXPECT_EQ(p.spatial_dims, 2);
  EXPECT_EQ(p.kernel, (Dims{3, 3, 1}));
  EXPECT_EQ(p.pad_begin, (Dims{1, 1, 0}));
  EXPECT_EQ(output_size(p), (Dims{3, 3, 1}));
  EXPECT_EQ(to_string(p), "convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch");
}

TEST(Problem, CanonicalStringRoundTripsOnRandomProblems) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const Problem p = testing::random_problem(rng, i % 2 ? Op::conv : Op::conv_transpose);
    const std::string s = to_string(p);
    EXPECT_EQ(parse_problem(s), p) << s;
    EXPECT_EQ(to_string(parse_problem(s)), s);
  }
}

TEST(Problem, ParseRejectsMalformedStrings) {
  for (const char* bad : {"", "conv", "convX_mb1", "conv_mb1_g1_ic1_oc1_i4_k3_s1_d1_p0:0_f32_cfirst",
                          "conv_mb1_g1_ic1_oc1_i4_k3_s1_d1_p0:0_f32_cfirst_wtorch_extra",
                          "conv_mb01_g1_ic1_oc1_i4_k3_s1_d1_p0:0_f32_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i4x4_k3_s1_d1_p0:0_f32_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i4_k3_s1_d1_p0_f32_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i4_k3_s1_d1_p0:0_op0_f32_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i4x4x4x4_k3_s1_d1_p0:0_f32_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i4_k3_s1_d1_p0:0_f16_cfirst_wtorch",
                          "conv_mb1_g1_ic1_oc1_i99999999999999999999_k3_s1_d1_p0:0_f32_cfirst_wtorch"}) {
    EXPECT_THROW(parse_problem(bad), Error) << bad;
  }
}

TEST(Problem, ValidationNamesParameterValueAndRule) {
  Problem p = seed_2d();
  p.output_padding = {2, 0, 0};
  EXPECT_EQ(error_of(p),
            "output_padding: output_padding 2 must be smaller than stride 2 or dilation 1 (spatial dimension 0)");
  p = seed_2d();
  p.groups = 2;
  p.in_channels = 3;
  p.out_channels = 2;
  EXPECT_EQ(error_of(p), "groups: in_channels 3 must be divisible by groups 2");
  p = seed_2d();
  p.stride = {1, 0, 1};
  EXPECT_EQ(error_of(p), "stride: stride 0 must be at least 1 (spatial dimension 1)");
  p = seed_2d();
  p.op = Op::conv;
  p.output_padding = {0, 0, 0};
  p.pad_begin = p.pad_end = {0, 0, 0};
  p.input = {2, 2, 1};
  EXPECT_NE(error_of(p).find("kernel extent 3"), std::string::npos) << error_of(p);
  p = seed_2d();
  p.spatial_dims = 4;
  EXPECT_EQ(error_of(p), "spatial_dims: spatial_dims 4 must be 1, 2 or 3");
  p = seed_2d();
  p.batch = std::int64_t{1} << 40;
  p.in_channels = std::int64_t{1} << 40;
  EXPECT_EQ(error_of(p), "src: the src tensor (1099511627776, 1099511627776, 2, 2) would hold more bytes than fit in 64 bits");
}

TEST(Problem, TensorShapesInEveryLayout) {
  Problem p = parse_problem("convT_mb2_g2_ic4_oc6_i5x7_k3x2_s2x1_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtorch");
  EXPECT_EQ(src_shape(p), (std::vector<std::int64_t>{2, 4, 5, 7}));
  EXPECT_EQ(weights_shape(p), (std::vector<std::int64_t>{4, 3, 3, 2}));  // (C_in, C_out/g, k...)
  EXPECT_EQ(dst_shape(p), (std::vector<std::int64_t>{2, 6, 11, 8}));
  p.layout = Layout::channels_last;
  p.weight_layout = WeightLayout::tf;
  EXPECT_EQ(src_shape(p), (std::vector<std::int64_t>{2, 5, 7, 4}));
  EXPECT_EQ(weights_shape(p), (std::vector<std::int64_t>{3, 2, 3, 4}));  // (k..., C_out/g, C_in)
  EXPECT_EQ(dst_shape(p), (std::vector<std::int64_t>{2, 11, 8, 6}));
  p.op = Op::conv;
  p.output_padding = {0, 0, 0};
  EXPECT_EQ(weights_shape(p), (std::vector<std::int64_t>{3, 2, 2, 6}));  // (k..., C_in/g, C_out)
  p.weight_layout = WeightLayout::torch;
  EXPECT_EQ(weights_shape(p), (std::vector<std::int64_t>{6, 2, 3, 2}));  // (C_out, C_in/g, k...)
}

TEST(Problem, NominalMultiplyAdds) {
  const Problem p = parse_problem("convT_mb1_g1_ic2_oc3_i4_k3_s2_d1_p0:0_op0_f32_cfirst_wtorch");
  EXPECT_EQ(nominal_macs(p), 2.0 * 3 * 4 * 3);
  const Problem c = parse_problem("conv_mb1_g2_ic4_oc2_i5_k3_s1_d1_p1:1_f32_cfirst_wtorch");
  EXPECT_EQ(nominal_macs(c), 2.0 * 2 * 5 * 3);
}

}  // namespace
}  // namespace tdconv
