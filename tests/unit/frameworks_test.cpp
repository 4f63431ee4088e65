// Framework equivalents and the convention table behind `tdconv shape`.
#include <gtest/gtest.h>

#include "tdconv/frameworks.hpp"

namespace tdconv {
namespace {

Problem resolved(const std::string& base, PaddingMode mode) {
  Problem p = parse_problem(base);
  PaddingRequest r;
  r.mode = mode;
  resolve_padding(p, r);
  return p;
}

const FrameworkEquivalent& entry(const std::vector<FrameworkEquivalent>& all, const std::string& name) {
  for (const auto& f : all) {
    if (f.framework == name) return f;
  }
  throw std::runtime_error("no " + name);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Frameworks, TensorFlowSameTransposedIsNotOnePyTorchLayer) {
  // Kernel 3, stride 2, 'same': crop 0 at the start and 1 at the end; PyTorch crops symmetrically.
  const Problem p = resolved("convT_mb1_g1_ic8_oc4_i16x16_k3x3_s2x2_d1x1_p0:0x0:0_op0x0_f32_clast_wtf", PaddingMode::same);
  const auto all = framework_equivalents(p);
  EXPECT_FALSE(entry(all, "PyTorch").exact);
  EXPECT_TRUE(contains(entry(all, "PyTorch").note, "cannot") || contains(entry(all, "PyTorch").note, "crops"));
  EXPECT_TRUE(entry(all, "Keras").exact);
  EXPECT_TRUE(contains(entry(all, "Keras").code, "padding='same'")) << entry(all, "Keras").code;
  EXPECT_TRUE(entry(all, "ONNX").exact);
  // ONNX's SAME_UPPER puts the odd element at the end too, so auto_pad says it.
  EXPECT_TRUE(contains(entry(all, "ONNX").code, "auto_pad='SAME_UPPER'")) << entry(all, "ONNX").code;
}

TEST(Frameworks, CycleGanUpsamplingIsOneLayerEverywhere) {
  const Problem p = parse_problem("convT_mb1_g1_ic128_oc64_i128x128_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtorch");
  const auto all = framework_equivalents(p);
  EXPECT_TRUE(entry(all, "PyTorch").exact);
  EXPECT_TRUE(contains(entry(all, "PyTorch").code, "padding=(1, 1), output_padding=(1, 1)")) << entry(all, "PyTorch").code;
  // Keras: padding='same', output_padding=1 asks TF for length 256, which TF crops 0 at the start: not this.
  EXPECT_TRUE(entry(all, "ONNX").exact);
}

TEST(Frameworks, AsymmetricConvPaddingNeedsAPadLayerInPyTorchUnlessItIsSame) {
  const Problem causal = parse_problem("conv_mb1_g1_ic64_oc128_i16384_k2_s1_d256_p256:0_f32_cfirst_wtorch");
  const auto all = framework_equivalents(causal);
  EXPECT_FALSE(entry(all, "PyTorch").exact);
  EXPECT_TRUE(contains(entry(all, "PyTorch").code, "ConstantPad1d((256, 0)")) << entry(all, "PyTorch").code;
  EXPECT_FALSE(entry(all, "Keras").exact);
  EXPECT_TRUE(contains(entry(all, "ONNX").code, "pads=[256, 0]")) << entry(all, "ONNX").code;

  const Problem even = resolved("conv_mb1_g1_ic1_oc1_i10_k4_s1_d1_p0:0_f32_cfirst_wtorch", PaddingMode::same);
  EXPECT_TRUE(entry(framework_equivalents(even), "PyTorch").exact);
  EXPECT_TRUE(contains(entry(framework_equivalents(even), "PyTorch").code, "padding='same'"));
}

TEST(Frameworks, OnnxAutoPadIsNamedWhenItMatches) {
  const Problem p = resolved("conv_mb1_g1_ic1_oc1_i9x9_k4x4_s1x1_d1x1_p0:0x0:0_f32_cfirst_wtorch", PaddingMode::same_lower);
  EXPECT_TRUE(contains(entry(framework_equivalents(p), "ONNX").code, "auto_pad='SAME_LOWER'"));
}

TEST(Frameworks, ConventionTable) {
  const Problem p = parse_problem("convT_mb1_g1_ic1_oc1_i4_k3_s2_d1_p0:0_op0_f32_cfirst_wtorch");
  const auto table = padding_conventions(p);
  ASSERT_EQ(table.size(), 4u);
  EXPECT_EQ(table[0].convention, "valid");
  EXPECT_EQ(table[0].output[0], 9);
  EXPECT_EQ(table[1].convention, "same");
  EXPECT_EQ(table[1].output[0], 8);
  EXPECT_EQ(table[1].padding[0], (DimPadding{0, 1, 0}));
  const Problem c = parse_problem("conv_mb1_g1_ic1_oc1_i4_k3_s2_d1_p0:0_f32_cfirst_wtorch");
  const auto conv_table = padding_conventions(c);
  ASSERT_EQ(conv_table.size(), 6u);
  EXPECT_FALSE(conv_table[4].applies);  // torch 'same' needs stride 1
  EXPECT_NE(conv_table[4].why_not.find("stride 1"), std::string::npos);
  EXPECT_TRUE(conv_table[5].applies);  // fixed_padding
}

}  // namespace
}  // namespace tdconv
