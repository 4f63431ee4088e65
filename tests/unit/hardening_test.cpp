// Concurrency, determinism and numerics of every implementation: one plan executed from many threads at once,
// bitwise-identical results for any OpenMP thread count, NaN / Inf propagation exactly as in the reference, and
// IEEE denormals (tdconv never sets flush-to-zero or denormals-are-zero).
#include <gtest/gtest.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <xmmintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "tdconv/plan.hpp"

namespace tdconv::testing {
namespace {

// Problems that reach each fast path (gemm, dot, depthwise), in both layouts, and the reference (float64).
const char* const kProblems[] = {
    "convT_mb2_g1_ic24_oc40_i9x7_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_clast_wtorch",
    "convT_mb2_g1_ic24_oc40_i9x7_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtf",
    "conv_mb1_g2_ic32_oc6_i11x13_k3x3_s1x1_d2x2_p2:2x2:2_f32_clast_wtorch",
    "conv_mb1_g32_ic32_oc32_i12x12_k3x3_s1x1_d3x3_p3:3x3:3_f32_clast_wtorch",
    "conv_mb1_g1_ic8_oc8_i20_k3_s1_d4_p8:0_f64_cfirst_wtorch",
};

struct Data {
  Problem p;
  std::vector<float> x, w, b;
  std::vector<double> xd, wd, bd;
};

Data make_data(const std::string& problem, std::uint64_t seed) {
  Data d;
  d.p = parse_problem(problem);
  std::mt19937_64 rng(seed);
  d.xd = random_values(rng, src_shape(d.p));
  d.wd = random_values(rng, weights_shape(d.p));
  d.bd = random_values(rng, bias_shape(d.p));
  d.x.assign(d.xd.begin(), d.xd.end());
  d.w.assign(d.wd.begin(), d.wd.end());
  d.b.assign(d.bd.begin(), d.bd.end());
  return d;
}

// Runs the plan on float32 or float64 data and returns the output as bytes (for bitwise comparison).
std::vector<unsigned char> run(const Plan& plan, const PackedWeights& packed, const Data& d) {
  const Problem& p = plan.problem();
  const auto n = static_cast<std::size_t>(element_count(dst_shape(p), "t"));
  std::vector<unsigned char> bytes(n * dtype_size(p.dtype));
  if (p.dtype == DType::f32) {
    std::vector<float> y(n, std::numeric_limits<float>::quiet_NaN());
    plan.forward(view(d.x.data(), src_shape(p)), packed, view(d.b.data(), bias_shape(p)),
                 mutable_view(y.data(), dst_shape(p)));
    std::memcpy(bytes.data(), y.data(), bytes.size());
  } else {
    std::vector<double> y(n, std::numeric_limits<double>::quiet_NaN());
    plan.forward(view(d.xd.data(), src_shape(p)), packed, view(d.bd.data(), bias_shape(p)),
                 mutable_view(y.data(), dst_shape(p)));
    std::memcpy(bytes.data(), y.data(), bytes.size());
  }
  return bytes;
}

PackedWeights pack(const Plan& plan, const Data& d) {
  const auto shape = weights_shape(plan.problem());
  return plan.problem().dtype == DType::f32 ? plan.pack_weights(view(d.w.data(), shape))
                                            : plan.pack_weights(view(d.wd.data(), shape));
}

void set_threads([[maybe_unused]] int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

TEST(Concurrency, OnePlanExecutedFromManyThreadsAtOnce) {
  for (const char* problem : kProblems) {
    const Plan plan(parse_problem(problem));
    constexpr int kThreads = 8;
    std::vector<Data> data;
    std::vector<PackedWeights> packed;
    std::vector<std::vector<unsigned char>> expected;
    for (int t = 0; t < kThreads; ++t) {
      data.push_back(make_data(problem, 100 + t));
      packed.push_back(pack(plan, data.back()));
      expected.push_back(run(plan, packed.back(), data.back()));
    }
    std::vector<std::vector<unsigned char>> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int repeat = 0; repeat < 5; ++repeat) got[t] = run(plan, packed[t], data[t]);
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], expected[t]) << problem << " thread " << t;
  }
}

// Both gradients from float32 data (the reference's loops for float64), as bytes: diff_src, diff_weights, diff_bias.
std::vector<unsigned char> run_backward(const Plan& plan, const Data& d) {
  const Problem& p = plan.problem();
  const auto nx = static_cast<std::size_t>(element_count(src_shape(p), "t"));
  const auto nw = static_cast<std::size_t>(element_count(weights_shape(p), "t"));
  const auto nb = static_cast<std::size_t>(p.out_channels);
  const std::vector<double> dy_d = [&] {
    std::mt19937_64 rng(11);
    return random_values(rng, dst_shape(p));
  }();
  std::vector<unsigned char> bytes((nx + nw + nb) * dtype_size(p.dtype));
  auto both = [&](auto zero, const auto& x, const auto& w, const auto& dy) {
    using T = decltype(zero);
    std::vector<T> out(nx + nw + nb, std::numeric_limits<T>::quiet_NaN());
    plan.backward_data(view(dy.data(), dst_shape(p)), view(w.data(), weights_shape(p)),
                       mutable_view(out.data(), src_shape(p)));
    plan.backward_weights(view(x.data(), src_shape(p)), view(dy.data(), dst_shape(p)),
                          mutable_view(out.data() + nx, weights_shape(p)),
                          mutable_view(out.data() + nx + nw, bias_shape(p)));
    std::memcpy(bytes.data(), out.data(), bytes.size());
  };
  if (p.dtype == DType::f32) {
    both(0.0f, d.x, d.w, std::vector<float>(dy_d.begin(), dy_d.end()));
  } else {
    both(0.0, d.xd, d.wd, dy_d);
  }
  return bytes;
}

// The backward passes of one fresh plan from many threads at once (its adjoint's plan is made by whichever comes
// first), each thread on its own data, against the same data run alone on another plan.
TEST(Concurrency, BackwardPassesOfOnePlanFromManyThreadsAtOnce) {
  for (const char* problem : kProblems) {
    constexpr int kThreads = 8;
    std::vector<Data> data;
    std::vector<std::vector<unsigned char>> expected;
    const Plan alone(parse_problem(problem));
    for (int t = 0; t < kThreads; ++t) {
      data.push_back(make_data(problem, 200 + t));
      expected.push_back(run_backward(alone, data.back()));
    }
    const Plan shared(parse_problem(problem));
    std::vector<std::vector<unsigned char>> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int repeat = 0; repeat < 3; ++repeat) got[t] = run_backward(shared, data[t]);
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], expected[t]) << problem << " thread " << t;
  }
}

TEST(Determinism, BackwardPassesBitwiseIdenticalForOneTwoAndSevenThreads) {
  for (const char* problem : kProblems) {
    const Data d = make_data(problem, 9);
    const Plan plan(d.p);
    set_threads(1);
    const auto one = run_backward(plan, d);
    set_threads(2);
    const auto two = run_backward(plan, d);
    set_threads(7);
    const auto seven = run_backward(plan, d);
    set_threads(1);
    EXPECT_EQ(one, two) << problem;
    EXPECT_EQ(one, seven) << problem;
  }
}

TEST(Determinism, BitwiseIdenticalForOneTwoAndSevenThreads) {
  for (const char* problem : kProblems) {
    const Data d = make_data(problem, 7);
    const Plan plan(d.p);
    const PackedWeights packed = pack(plan, d);
    set_threads(1);
    const auto one = run(plan, packed, d);
    set_threads(2);
    const auto two = run(plan, packed, d);
    set_threads(7);
    const auto seven = run(plan, packed, d);
    set_threads(1);
    EXPECT_EQ(one, two) << problem;
    EXPECT_EQ(one, seven) << problem;
  }
}

// Class of a value for comparison: NaN, +Inf, -Inf, or finite.
int kind(double v) { return std::isnan(v) ? 0 : std::isinf(v) ? (v > 0 ? 1 : 2) : 3; }

TEST(Numerics, NanAndInfPropagateAsInTheReference) {
  for (const char* problem : kProblems) {
    Data d = make_data(problem, 9);
    std::mt19937_64 rng(10);
    const double specials[] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity()};
    for (int i = 0; i < 6; ++i) {  // a few special inputs and weights, and a zero weight that meets an Inf
      d.xd[uniform(rng, 0, static_cast<std::int64_t>(d.xd.size()) - 1)] = specials[i % 3];
      if (i < 2) d.wd[uniform(rng, 0, static_cast<std::int64_t>(d.wd.size()) - 1)] = specials[(i + 1) % 3];
    }
    d.wd[0] = 0.0;
    d.x.assign(d.xd.begin(), d.xd.end());
    d.w.assign(d.wd.begin(), d.wd.end());
    const Plan plan(d.p);
    const auto bytes = run(plan, pack(plan, d), d);
    const auto n = static_cast<std::size_t>(element_count(dst_shape(d.p), "t"));
    std::vector<double> want(n);
    reference::forward(d.p, d.xd.data(), d.wd.data(), d.bd.data(), want.data());
    for (std::size_t i = 0; i < n; ++i) {
      double got = 0;
      if (d.p.dtype == DType::f32) {
        float f;
        std::memcpy(&f, bytes.data() + i * 4, 4);
        got = f;
      } else {
        std::memcpy(&got, bytes.data() + i * 8, 8);
      }
      ASSERT_EQ(kind(got), kind(want[i])) << problem << " element " << i << ": " << got << " vs " << want[i]
                                          << " (" << plan.implementation_name() << ")";
    }
  }
}

TEST(Numerics, DenormalsAreComputedNotFlushed) {
  // tdconv leaves the floating-point environment alone: no flush-to-zero, no denormals-are-zero.
  EXPECT_EQ(_MM_GET_FLUSH_ZERO_MODE(), _MM_FLUSH_ZERO_OFF);
  for (const char* problem : kProblems) {
    Data d = make_data(problem, 11);
    if (d.p.dtype != DType::f32) continue;
    for (float& v : d.x) v *= 1e-38f;  // denormal and near-denormal inputs
    std::fill(d.b.begin(), d.b.end(), 0.0f);
    const Plan plan(d.p);
    const auto bytes = run(plan, pack(plan, d), d);
    const auto n = static_cast<std::size_t>(element_count(dst_shape(d.p), "t"));
    std::vector<float> want(n);
    reference::forward(d.p, d.x.data(), d.w.data(), d.b.data(), want.data());
    std::size_t nonzero = 0;
    for (std::size_t i = 0; i < n; ++i) {
      float got;
      std::memcpy(&got, bytes.data() + i * 4, 4);
      ASSERT_NEAR(got, want[i], 1e-4f * std::abs(want[i]) + 1e-44f) << problem << " element " << i;
      nonzero += got != 0.0f;
    }
    EXPECT_GT(nonzero, n / 2) << problem << ": denormal results were flushed";
    EXPECT_EQ(_MM_GET_FLUSH_ZERO_MODE(), _MM_FLUSH_ZERO_OFF);
  }
}

}  // namespace
}  // namespace tdconv::testing
