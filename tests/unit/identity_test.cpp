// Identities that must hold for every parameter set, each over thousands of random problems. They tie the reference's
// two directions (gather and scatter) and its gradients to each other and to independent constructions.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/reference.hpp"
#include "support/random_problem.hpp"
#include "support/tensor_ops.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::testing {
namespace {

constexpr int kCases = 2000;

std::vector<double> forward(const Problem& p, const std::vector<double>& x, const std::vector<double>& w,
                            const double* bias = nullptr) {
  std::vector<double> y(static_cast<std::size_t>(element_count(dst_shape(p), "test")));
  reference::forward(p, x.data(), w.data(), bias, y.data());
  return y;
}

Problem random_f64(std::mt19937_64& rng, Op op, const ProblemLimits& lim = {}) {
  Problem p = random_problem(rng, op, lim);
  p.dtype = DType::f64;
  return p;
}

bool close(double a, double b, double tol) { return std::abs(a - b) <= tol * (1 + std::abs(a) + std::abs(b)); }

// The transposed problem whose output has the conv's input size: same kernel, stride, dilation and padding, output
// padding making up the conv's floor, channels swapped. Its weights are the conv's weights, unchanged.
Problem adjoint_of(const Problem& conv) {
  Problem t = conv;
  t.op = Op::conv_transpose;
  t.in_channels = conv.out_channels;
  t.out_channels = conv.in_channels;
  t.input = output_size(conv);
  for (int d = 0; d < conv.spatial_dims; ++d) {
    const std::int64_t k_eff = effective_kernel(conv.kernel[d], conv.dilation[d]);
    t.output_padding[d] = (conv.input[d] + conv.pad_begin[d] + conv.pad_end[d] - k_eff) % conv.stride[d];
  }
  return t;
}

TEST(Identity, AdjointnessConvAndTransposedConv) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < kCases; ++i) {
    const Problem conv = random_f64(rng, Op::conv);
    const Problem t = adjoint_of(conv);
    ASSERT_EQ(output_size(t), conv.input) << to_string(conv);
    const auto x = random_values(rng, src_shape(conv));
    const auto w = random_values(rng, weights_shape(conv));
    const auto y = random_values(rng, dst_shape(conv));
    const double lhs = dot(forward(conv, x, w), y);
    const double rhs = dot(x, forward(t, y, w));
    ASSERT_TRUE(close(lhs, rhs, 1e-12)) << to_string(conv) << ": " << lhs << " vs " << rhs;
  }
}

TEST(Identity, ConvInputGradientIsTransposedConv) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < kCases; ++i) {
    const Problem conv = random_f64(rng, Op::conv);
    const Problem t = adjoint_of(conv);
    const auto w = random_values(rng, weights_shape(conv));
    const auto dy = random_values(rng, dst_shape(conv));
    std::vector<double> dx(static_cast<std::size_t>(element_count(src_shape(conv), "test")));
    reference::backward_data(conv, dy.data(), w.data(), dx.data());
    const auto y = forward(t, dy, w);
    for (std::size_t j = 0; j < dx.size(); ++j) ASSERT_TRUE(close(dx[j], y[j], 1e-12)) << to_string(conv);
  }
}

// Transposed conv == insert stride-1 zeros between inputs, pad by d(k-1) on both sides (plus the output padding at
// the end), correlate with the flipped kernel with in/out channels swapped at stride 1, then crop pad_begin.
TEST(Identity, TransposedConvIsZeroInsertionThenConv) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < kCases; ++i) {
    Problem p = random_f64(rng, Op::conv_transpose);
    p.layout = Layout::channels_first;
    p.weight_layout = WeightLayout::torch;
    const int n = p.spatial_dims;
    const auto x = random_values(rng, src_shape(p));
    const auto w = random_values(rng, weights_shape(p));

    Problem q = p;
    q.op = Op::conv;
    q.stride = {1, 1, 1};
    q.pad_begin = q.pad_end = q.output_padding = {0, 0, 0};
    Dims full{1, 1, 1};
    for (int d = 0; d < n; ++d) {
      const std::int64_t reach = p.dilation[d] * (p.kernel[d] - 1);
      full[d] = (p.input[d] - 1) * p.stride[d] + reach + 1;
      q.input[d] = (p.input[d] - 1) * p.stride[d] + 1 + 2 * reach + p.output_padding[d];
    }
    const std::int64_t in_spatial = volume(p.input, n), z_spatial = volume(q.input, n), taps = volume(p.kernel, n);
    std::vector<double> z(static_cast<std::size_t>(p.batch * p.in_channels * z_spatial), 0.0);
    for (std::int64_t nc = 0; nc < p.batch * p.in_channels; ++nc)
      for (std::int64_t s = 0; s < in_spatial; ++s) {
        Dims pos = unflatten(s, p.input, n);
        for (int d = 0; d < n; ++d) pos[d] = pos[d] * p.stride[d] + p.dilation[d] * (p.kernel[d] - 1);
        z[nc * z_spatial + flatten(pos, q.input, n)] = x[nc * in_spatial + s];
      }
    // Transposed weights (C_in, C_out/g, k) -> conv weights (C_out, C_in/g, k), taps reversed.
    const std::int64_t icg = p.in_channels / p.groups, ocg = p.out_channels / p.groups;
    std::vector<double> wq(w.size());
    for (std::int64_t ic = 0; ic < p.in_channels; ++ic)
      for (std::int64_t o = 0; o < ocg; ++o)
        for (std::int64_t t = 0; t < taps; ++t) {
          const std::int64_t oc = (ic / icg) * ocg + o;
          wq[(oc * icg + ic % icg) * taps + (taps - 1 - t)] = w[(ic * ocg + o) * taps + t];
        }
    const auto conv_out = forward(q, z, wq);  // spatial size full + output_padding
    const auto expected = forward(p, x, w);
    const Dims out = output_size(p), conv_size = output_size(q);
    const std::int64_t out_spatial = volume(out, n), conv_spatial = volume(conv_size, n);
    for (std::int64_t nc = 0; nc < p.batch * p.out_channels; ++nc)
      for (std::int64_t s = 0; s < out_spatial; ++s) {
        Dims pos = unflatten(s, out, n);
        for (int d = 0; d < n; ++d) pos[d] += p.pad_begin[d];
        const double got = conv_out[nc * conv_spatial + flatten(pos, conv_size, n)];
        ASSERT_TRUE(close(expected[nc * out_spatial + s], got, 1e-12)) << to_string(p);
      }
  }
}

// Dilated conv (and transposed conv) == the same with a kernel that has dilation-1 zeros between taps.
TEST(Identity, DilationIsKernelWithHoles) {
  std::mt19937_64 rng(4);
  int checked = 0;
  while (checked < kCases) {
    Problem p = random_f64(rng, checked % 2 ? Op::conv_transpose : Op::conv);
    p.weight_layout = WeightLayout::torch;
    const int n = p.spatial_dims;
    Problem q = p;
    q.dilation = {1, 1, 1};
    for (int d = 0; d < n; ++d) q.kernel[d] = effective_kernel(p.kernel[d], p.dilation[d]);
    try {
      validate(q);  // an output padding allowed by the dilation may not be allowed without it
    } catch (const Error&) {
      continue;
    }
    const auto x = random_values(rng, src_shape(p));
    const auto w = random_values(rng, weights_shape(p));
    const std::int64_t taps = volume(p.kernel, n), holes_taps = volume(q.kernel, n);
    std::vector<double> wq(static_cast<std::size_t>(element_count(weights_shape(q), "test")), 0.0);
    for (std::int64_t pair = 0; pair < static_cast<std::int64_t>(w.size()) / taps; ++pair)
      for (std::int64_t t = 0; t < taps; ++t) {
        Dims pos = unflatten(t, p.kernel, n);
        for (int d = 0; d < n; ++d) pos[d] *= p.dilation[d];
        wq[pair * holes_taps + flatten(pos, q.kernel, n)] = w[pair * taps + t];
      }
    const auto a = forward(p, x, w), b = forward(q, x, wq);
    for (std::size_t j = 0; j < a.size(); ++j) ASSERT_TRUE(close(a[j], b[j], 1e-12)) << to_string(p);
    ++checked;
  }
}

// The backward passes against central finite differences of f(x, w, b) = <forward(x, w, b), y> in double.
TEST(Identity, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(5);
  constexpr double h = 1e-3;
  for (int i = 0; i < kCases; ++i) {
    const Problem p = random_f64(rng, i % 2 ? Op::conv_transpose : Op::conv);
    auto x = random_values(rng, src_shape(p));
    auto w = random_values(rng, weights_shape(p));
    auto b = random_values(rng, bias_shape(p));
    const auto y = random_values(rng, dst_shape(p));
    auto f = [&] { return dot(forward(p, x, w, b.data()), y); };

    std::vector<double> gx(x.size()), gw(w.size()), gb(b.size());
    reference::backward_data(p, y.data(), w.data(), gx.data());
    reference::backward_weights(p, x.data(), y.data(), gw.data(), gb.data());

    auto check = [&](std::vector<double>& v, const std::vector<double>& grad, const char* what) {
      const std::size_t j = static_cast<std::size_t>(uniform(rng, 0, static_cast<std::int64_t>(v.size()) - 1));
      const double saved = v[j];
      v[j] = saved + h;
      const double up = f();
      v[j] = saved - h;
      const double down = f();
      v[j] = saved;
      ASSERT_TRUE(close((up - down) / (2 * h), grad[j], 1e-8)) << what << "[" << j << "] of " << to_string(p);
    };
    check(x, gx, "diff_src");
    check(w, gw, "diff_weights");
    check(b, gb, "diff_bias");
  }
}

}  // namespace
}  // namespace tdconv::testing
