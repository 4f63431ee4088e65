// Shape arithmetic: the formulas, every padding convention, and the errors that name the broken rule.
#include <gtest/gtest.h>

#include "tdconv/error.hpp"
#include "tdconv/shape.hpp"

namespace tdconv {
namespace {

// Expects `fn` to throw tdconv::Error whose subject is `subject` and whose text contains `text`.
template <class Fn>
void expect_error(Fn fn, const std::string& subject, const std::string& text) {
  try {
    fn();
    FAIL() << "no error; expected one about " << subject;
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), subject) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Shape, EffectiveKernel) {
  EXPECT_EQ(effective_kernel(3, 1), 3);
  EXPECT_EQ(effective_kernel(3, 2), 5);
  EXPECT_EQ(effective_kernel(1, 100), 1);
  EXPECT_EQ(effective_kernel(2, 256), 257);
}

TEST(Shape, ConvOutputSizeFormula) {
  EXPECT_EQ(conv_output_size(5, 3, 1, 1, 0, 0), 3);
  EXPECT_EQ(conv_output_size(5, 3, 2, 1, 1, 1), 3);
  EXPECT_EQ(conv_output_size(6, 3, 2, 1, 0, 0), 2);    // floor((6 - 3) / 2) + 1
  EXPECT_EQ(conv_output_size(33, 3, 1, 18, 18, 18), 33);
  EXPECT_EQ(conv_output_size(16384, 2, 1, 256, 256, 0), 16384);  // WaveNet causal
  EXPECT_EQ(conv_output_size(2, 3, 1, 1, 5, 5), 10);   // padding larger than the kernel
}

TEST(Shape, TransposedOutputSizeFormula) {
  EXPECT_EQ(conv_transpose_output_size(2, 3, 2, 1, 0, 0, 0), 5);  // seed 1D
  EXPECT_EQ(conv_transpose_output_size(2, 3, 2, 1, 1, 1, 0), 3);  // seed 2D
  EXPECT_EQ(conv_transpose_output_size(4, 3, 1, 1, 2, 2, 0), 2);  // seed: i=4, k=3, p=2, s=1
  EXPECT_EQ(conv_transpose_output_size(128, 3, 2, 1, 1, 1, 1), 256);  // CycleGAN
  EXPECT_EQ(conv_transpose_output_size(64, 16, 8, 1, 4, 4, 0), 512);  // FCN-8s
  EXPECT_EQ(conv_transpose_full_size(4, 2, 3, 2), 12);              // (4-1)*3 + 2*(2-1)+1
}

TEST(Shape, FixedPaddingAndTorchSame) {
  EXPECT_EQ(fixed_padding(3, 2), (DimPadding{2, 2, 0}));
  EXPECT_EQ(fixed_padding(4, 1), (DimPadding{1, 2, 0}));
  EXPECT_EQ(fixed_padding(2, 3), (DimPadding{1, 2, 0}));  // k_eff 4, total 3
  EXPECT_EQ(torch_same_padding({10, 4, 1, 1}), (DimPadding{1, 2, 0}));
  expect_error([] { torch_same_padding({10, 3, 2, 1}); }, "padding", "requires stride 1");
}

TEST(Shape, ConvConventions) {
  // TF 'same': output ceil(10/3) = 4, total (4-1)*3 + 3 - 10 = 2.
  EXPECT_EQ(conv_padding(PaddingMode::same, {10, 3, 3, 1}), (DimPadding{1, 1, 0}));
  // total 3: odd element at the end (same, same_upper) or start (same_lower).
  EXPECT_EQ(conv_padding(PaddingMode::same, {5, 4, 1, 1}), (DimPadding{1, 2, 0}));
  EXPECT_EQ(conv_padding(PaddingMode::same_upper, {5, 4, 1, 1}), (DimPadding{1, 2, 0}));
  EXPECT_EQ(conv_padding(PaddingMode::same_lower, {5, 4, 1, 1}), (DimPadding{2, 1, 0}));
  EXPECT_EQ(conv_padding(PaddingMode::same, {7, 3, 1, 2}), (DimPadding{2, 2, 0}));
  EXPECT_EQ(conv_padding(PaddingMode::same, {2, 1, 4, 1}), (DimPadding{0, 0, 0}));  // negative total -> 0
  EXPECT_EQ(conv_padding(PaddingMode::valid, {7, 3, 2, 1}), (DimPadding{0, 0, 0}));
  expect_error([] { conv_padding(PaddingMode::valid, {2, 3, 1, 1}); }, "kernel", "exceeds the input 2");
}

TEST(Shape, TransposedTensorFlowConventions) {
  // 'same': output input*stride; crop (k_eff - s)//2 at the start, the rest at the end.
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same, {4, 3, 2, 1}), (DimPadding{0, 1, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same, {4, 4, 2, 1}), (DimPadding{1, 1, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same, {4, 5, 2, 1}), (DimPadding{1, 2, 0}));
  // k_eff < stride: zeros added at the end.
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same, {4, 1, 3, 1}), (DimPadding{0, 0, 2}));
  // 'valid': the full output, zero-extended to input*stride when k_eff < stride.
  EXPECT_EQ(conv_transpose_padding(PaddingMode::valid, {4, 3, 2, 1}), (DimPadding{0, 0, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::valid, {4, 2, 5, 1}), (DimPadding{0, 0, 3}));
  // TF output_shape: any size whose 'same' conv gives the input back.
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same, {4, 3, 2, 1}, 7), (DimPadding{1, 1, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::valid, {4, 3, 2, 1}, 10), (DimPadding{0, 0, 1}));
  expect_error([] { conv_transpose_padding(PaddingMode::same, {4, 3, 2, 1}, 9); }, "output_size",
               "between 7 and 8");
  expect_error([] { conv_transpose_padding(PaddingMode::valid, {4, 3, 2, 1}, 8); }, "output_size",
               "between 9 and 10");
}

TEST(Shape, TransposedOnnxConventions) {
  // total = full - input*stride; SAME_UPPER puts the odd element at the end, SAME_LOWER at the start.
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_upper, {3, 3, 2, 1}), (DimPadding{0, 1, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_lower, {3, 3, 2, 1}), (DimPadding{1, 0, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_upper, {3, 5, 2, 1}), (DimPadding{1, 2, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_lower, {3, 5, 2, 1}), (DimPadding{2, 1, 0}));
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_upper, {3, 1, 3, 1}), (DimPadding{0, 0, 2}));  // negative total
  EXPECT_EQ(conv_transpose_padding(PaddingMode::same_upper, {3, 3, 2, 1}, 8), (DimPadding{0, 0, 1}));
}

TEST(Shape, TorchOutputSizeToOutputPadding) {
  EXPECT_EQ(conv_transpose_output_padding_for_size({128, 3, 2, 1}, 1, 1, 256), 1);
  EXPECT_EQ(conv_transpose_output_padding_for_size({128, 3, 2, 1}, 1, 1, 255), 0);
  expect_error([] { conv_transpose_output_padding_for_size({128, 3, 2, 1}, 1, 1, 257); }, "output_size",
               "between 255 and 256");
  // max(stride, dilation): dilation 3 allows two extra elements at stride 1.
  EXPECT_EQ(conv_transpose_output_padding_for_size({5, 3, 1, 3}, 0, 0, 13), 2);
}

TEST(Shape, ErrorsNameTheRule) {
  expect_error([] { conv_transpose_output_size(4, 3, 2, 1, 0, 0, 2); }, "output_padding",
               "output_padding 2 must be smaller than stride 2 or dilation 1");
  expect_error([] { conv_output_size(2, 3, 1, 2, 0, 0); }, "kernel", "kernel extent 5");
  expect_error([] { conv_output_size(2, 3, 0, 1, 0, 0); }, "stride", "stride 0 must be at least 1");
  expect_error([] { conv_output_size(2, 3, 1, 1, -1, 0); }, "padding", "must not be negative");
  expect_error([] { conv_transpose_output_size(2, 3, 1, 1, 3, 3, 0); }, "padding", "crops more than the full output");
  expect_error([] { effective_kernel(3, std::int64_t{1} << 62); }, "dilation", "overflows");
  expect_error([] { conv_transpose_full_size(std::int64_t{1} << 40, 3, std::int64_t{1} << 40, 1); }, "stride",
               "overflows");
}

Problem problem_2d(Op op) {
  Problem p;
  p.op = op;
  p.spatial_dims = 2;
  p.input = {8, 5, 1};
  p.kernel = {3, 3, 1};
  p.stride = {2, 2, 1};
  return p;
}

TEST(Shape, ResolvePaddingPerDimension) {
  Problem p = problem_2d(Op::conv_transpose);
  PaddingRequest r;
  r.mode = PaddingMode::same;
  resolve_padding(p, r);
  EXPECT_EQ(output_size(p), (Dims{16, 10, 1}));

  Problem q = problem_2d(Op::conv_transpose);
  PaddingRequest sized;
  sized.begin = {1, 1, 0};
  sized.end = {1, 1, 0};
  sized.output_size = Dims{16, 9, 1};
  resolve_padding(q, sized);
  EXPECT_EQ(q.output_padding, (Dims{1, 0, 0}));

  Problem bad = problem_2d(Op::conv_transpose);
  PaddingRequest too_big = sized;
  too_big.output_size = Dims{16, 11, 1};
  expect_error([&] { resolve_padding(bad, too_big); }, "output_size", "(spatial dimension 1)");
}

TEST(Shape, ResolvePaddingRejectsCombinations) {
  Problem c = problem_2d(Op::conv);
  PaddingRequest op;
  op.output_padding = Dims{1, 1, 0};
  expect_error([&] { resolve_padding(c, op); }, "output_padding", "conv_transpose only");

  Problem t = problem_2d(Op::conv_transpose);
  PaddingRequest both = op;
  both.output_size = Dims{16, 10, 1};
  expect_error([&] { resolve_padding(t, both); }, "output_size", "cannot be combined");

  PaddingRequest keyword = op;
  keyword.mode = PaddingMode::same;
  expect_error([&] { resolve_padding(t, keyword); }, "output_padding", "give output_size");
}

}  // namespace
}  // namespace tdconv
