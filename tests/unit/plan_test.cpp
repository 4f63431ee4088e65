// The Plan API: choice of implementation with reasons, view checks, and agreement with the reference.
#include <gtest/gtest.h>

#include <cstdlib>

#include "reference/reference.hpp"
#include "tdconv/conv.hpp"
#include "tdconv/error.hpp"

namespace tdconv {
namespace {

const char* const kSeed = "convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch";

TEST(Plan, ChoosesTheFirstSupportingImplementationAndListsAll) {
  const Plan plan(parse_problem(kSeed));
  ASSERT_EQ(plan.candidates().size(), implementation_names().size());
  EXPECT_EQ(implementation_names().back(), "reference");
  std::string first_supporting;
  for (const auto& c : plan.candidates()) {
    if (c.declined_because.empty()) {
      first_supporting = c.name;
      break;
    }
    EXPECT_FALSE(c.declined_because.empty());
  }
  EXPECT_EQ(plan.implementation_name(), first_supporting);
  EXPECT_NE(plan.implementation_name(), "reference");  // float32 takes a fast path
  Problem f64 = parse_problem(kSeed);
  f64.dtype = DType::f64;
  EXPECT_EQ(Plan(f64).implementation_name(), "reference");
}

TEST(Plan, RequestedImplementationMustExist) {
  PlanOptions options;
  options.implementation = "no_such_thing";
  EXPECT_THROW(Plan(parse_problem(kSeed), options), Error);
  options.implementation = "reference";
  EXPECT_EQ(Plan(parse_problem(kSeed), options).implementation_name(), "reference");
}

TEST(Plan, RejectsInvalidProblems) {
  Problem p = parse_problem(kSeed);
  p.stride[0] = 0;
  EXPECT_THROW(Plan{p}, Error);
}

TEST(Plan, ForwardComputesTheSeedExample) {
  const Problem p = parse_problem(kSeed);
  const std::vector<float> x{1, 2, 3, 4}, w{1, 1, 1, 0, 0, 0, -1, -1, -1};
  std::vector<float> y(9, -1.0f);
  forward(p, view(x.data(), src_shape(p)), view(w.data(), weights_shape(p)), TensorView{},
          mutable_view(y.data(), dst_shape(p)));
  EXPECT_EQ(y, (std::vector<float>{0, 0, 0, 2, 4, 2, 0, 0, 0}));
}

TEST(Plan, PackedWeightsBelongToTheirPlan) {
  const Plan a(parse_problem(kSeed)), b(parse_problem(kSeed));
  const std::vector<float> x{1, 2, 3, 4}, w{1, 1, 1, 0, 0, 0, -1, -1, -1};
  std::vector<float> y(9);
  const PackedWeights packed = a.pack_weights(view(w.data(), weights_shape(a.problem())));
  EXPECT_GE(packed.bytes(), w.size() * sizeof(float));
  const auto src = view(x.data(), src_shape(a.problem()));
  const auto dst = mutable_view(y.data(), dst_shape(a.problem()));
  a.forward(src, packed, {}, dst);
  EXPECT_EQ(y, (std::vector<float>{0, 0, 0, 2, 4, 2, 0, 0, 0}));
  EXPECT_THROW(b.forward(src, packed, {}, dst), Error);
  EXPECT_THROW(a.forward(src, PackedWeights{}, {}, dst), Error);
}

TEST(Plan, ChecksShapesAndDtypesOfViews) {
  const Plan plan(parse_problem(kSeed));
  const Problem& p = plan.problem();
  std::vector<float> x(4), w(9), y(9);
  std::vector<double> yd(9);
  const auto good_dst = mutable_view(y.data(), dst_shape(p));
  EXPECT_THROW(plan.forward(view(x.data(), {1, 1, 2, 3}), view(w.data(), weights_shape(p)), {}, good_dst), Error);
  EXPECT_THROW(plan.forward(view(x.data(), src_shape(p)), view(w.data(), {1, 1, 3}), {}, good_dst), Error);
  EXPECT_THROW(plan.forward(view(x.data(), src_shape(p)), view(w.data(), weights_shape(p)), {},
                            mutable_view(yd.data(), dst_shape(p))),
               Error);
  EXPECT_THROW(plan.forward(view(x.data(), src_shape(p)), view(w.data(), weights_shape(p)), view(x.data(), {4}),
                            good_dst),
               Error);
  try {
    plan.forward(view(x.data(), src_shape(p)), view(w.data(), weights_shape(p)), {}, mutable_view(y.data(), {1, 1, 9}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "dst: dst has shape (1, 1, 9) but the problem needs (1, 1, 3, 3)");
  }
}

TEST(Plan, BackwardPassesMatchTheReference) {
  const Problem p = parse_problem("conv_mb2_g2_ic4_oc2_i5x4_k3x2_s2x1_d1x2_p1:0x2:1_f64_clast_wtf");
  std::vector<double> x(2 * 4 * 5 * 4), w(3 * 2 * 2 * 2), dy(2 * 2 * 5 * 2);  // dst (2, 2, 5, 2)
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i % 7) - 3;
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = double(i % 5) - 2;
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = double(i % 3) - 1;
  ASSERT_EQ(static_cast<std::int64_t>(dy.size()), element_count(dst_shape(p), "t"));
  std::vector<double> dx(x.size()), dw(w.size()), db(2), rdx(x.size()), rdw(w.size()), rdb(2);
  const Plan plan(p);
  plan.backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                     mutable_view(dx.data(), src_shape(p)));
  plan.backward_weights(view(x.data(), src_shape(p)), view(dy.data(), dst_shape(p)),
                        mutable_view(dw.data(), weights_shape(p)), mutable_view(db.data(), bias_shape(p)));
  reference::backward_data(p, dy.data(), w.data(), rdx.data());
  reference::backward_weights(p, x.data(), dy.data(), rdw.data(), rdb.data());
  EXPECT_EQ(dx, rdx);
  EXPECT_EQ(dw, rdw);
  EXPECT_EQ(db, rdb);
}

TEST(Plan, VerboseReportsTheChoice) {
  setenv("TDCONV_VERBOSE", "1", 1);
  ::testing::internal::CaptureStderr();
  const Plan plan(parse_problem(kSeed));
  const std::string out = ::testing::internal::GetCapturedStderr();
  unsetenv("TDCONV_VERBOSE");
  EXPECT_NE(out.find(kSeed), std::string::npos) << out;
  EXPECT_NE(out.find(plan.implementation_name() + ": chosen"), std::string::npos) << out;
  EXPECT_NE(out.find("depthwise_simd: declined, channels not a multiple of the vector width"), std::string::npos) << out;
}

}  // namespace
}  // namespace tdconv
