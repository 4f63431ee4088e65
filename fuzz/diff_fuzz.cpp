// libFuzzer target: differential testing of every implementation against the reference.
//
// The input decodes into a small problem (op, 1-3 spatial dims, batch, groups, channels, sizes, kernel, stride,
// dilation, padding, output padding, layouts, dtype), a data mode and a seed. Problems that validate() refuses are
// skipped, and so are problems above kMaxMacs multiply-adds or kMaxElements per tensor (to keep each input fast;
// everything runs under ASan + UBSan, where the reference manages a few million multiply-adds a second). Every
// implementation that accepts the problem (tdconv::implementation_names() with PlanOptions::implementation) then
// runs forward, and:
//   - matches tdconv::reference::forward: exactly for integer-valued data (every partial sum is exactly
//     representable, so any order of summation gives the same numbers), else within 1e-4 * (1 + A) for float32 and
//     1e-10 * (1 + A) for float64 per element, where A is the reference run on |src|, |weights|, |bias| (the sum of
//     the magnitudes of the terms, which bounds any summation order's rounding error; A >= |ref|);
//   - writes every output element (outputs are pre-filled with NaN) and leaves its inputs unchanged;
//   - gives bitwise-identical output with 1 and 2 OpenMP threads, and with weights packed once (pack_weights) and
//     reused for a second call.
// The default plan's backward passes (data and weights, bias too) are checked likewise against the reference's.
// Any failure prints the canonical problem string (tdconv::to_string) and aborts.
#include <fuzzer/FuzzedDataProvider.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "reference/reference.hpp"
#include "tdconv/error.hpp"
#include "tdconv/plan.hpp"
#include "tdconv/problem.hpp"
#include "tdconv/tensor.hpp"

namespace {

using tdconv::DType;
using tdconv::Problem;

// DIFF_FUZZ_SHOW=1: print each problem that runs and the implementations that accept it (to see what a corpus
// exercises).
bool g_show = false;

constexpr double kMaxMacs = 2e5;
constexpr std::int64_t kMaxElements = 50000;  // per tensor

enum class DataMode { integers, uniform, bytes };
const char* to_string(DataMode m) {
  return m == DataMode::integers ? "integers" : m == DataMode::uniform ? "uniform" : "bytes";
}

struct Case {
  Problem p;
  bool bias = false;
  DataMode mode = DataMode::uniform;
  std::uint32_t seed = 0;
  std::vector<std::uint8_t> bytes;
};

// Decodes the problem. Ranges per the fuzzing plan: batch 1-2 (rarely up to 6), groups 1-3 with 1-20 channels per
// group or depthwise with 8-48 channels, input 1-9, kernel 1-5, stride 1-4, dilation 1-4, padding 0..k_eff+1 each
// side, output padding below max(stride, dilation).
Case decode(FuzzedDataProvider& in) {
  Case c;
  Problem& p = c.p;
  p.op = in.ConsumeBool() ? tdconv::Op::conv_transpose : tdconv::Op::conv;
  p.spatial_dims = in.ConsumeIntegralInRange(1, 3);
  const auto batch = in.ConsumeIntegral<std::uint8_t>();
  p.batch = batch < 224 ? 1 + batch % 2 : 3 + batch % 4;
  const auto channels = in.ConsumeIntegral<std::uint8_t>();
  if (channels < 48) {  // depthwise: one channel per group, channels as SIMD lanes
    static constexpr std::int64_t kDepthwise[] = {16, 32, 8, 24, 48, 16, 32, 5};
    p.groups = kDepthwise[channels % 8];
    const std::int64_t multiplier = channels < 40 ? 1 : 2;
    p.in_channels = p.groups;
    p.out_channels = p.groups * multiplier;
  } else {
    p.groups = in.ConsumeIntegralInRange(1, 3);
    p.in_channels = p.groups * in.ConsumeIntegralInRange(1, 20);
    p.out_channels = p.groups * in.ConsumeIntegralInRange(1, 20);
  }
  for (int d = 0; d < p.spatial_dims; ++d) {
    p.input[d] = in.ConsumeIntegralInRange(1, 9);
    p.kernel[d] = in.ConsumeIntegralInRange(1, 5);
    p.stride[d] = in.ConsumeIntegralInRange(1, 4);
    p.dilation[d] = in.ConsumeIntegralInRange(1, 4);
    const std::int64_t k_eff = p.dilation[d] * (p.kernel[d] - 1) + 1;
    p.pad_begin[d] = in.ConsumeIntegralInRange<std::int64_t>(0, k_eff + 1);
    p.pad_end[d] = in.ConsumeIntegralInRange<std::int64_t>(0, k_eff + 1);
    if (p.op == tdconv::Op::conv_transpose) {
      p.output_padding[d] = in.ConsumeIntegralInRange<std::int64_t>(0, std::max(p.stride[d], p.dilation[d]) - 1);
    }
  }
  p.dtype = in.ConsumeBool() ? DType::f64 : DType::f32;
  p.layout = in.ConsumeBool() ? tdconv::Layout::channels_last : tdconv::Layout::channels_first;
  p.weight_layout = in.ConsumeBool() ? tdconv::WeightLayout::tf : tdconv::WeightLayout::torch;
  c.bias = in.ConsumeBool();
  c.mode = static_cast<DataMode>(in.ConsumeIntegralInRange(0, 2));
  c.seed = in.ConsumeIntegral<std::uint32_t>();
  c.bytes = in.ConsumeRemainingBytes<std::uint8_t>();
  return c;
}

template <class T>
std::vector<T> make_data(const Case& c, std::int64_t n, std::uint32_t stream) {
  std::vector<T> v(static_cast<std::size_t>(n));
  std::mt19937 rng(c.seed * 2654435761u + stream);
  for (std::size_t i = 0; i < v.size(); ++i) {
    switch (c.mode) {
      case DataMode::integers:
        v[i] = static_cast<T>(static_cast<int>(rng() % 9) - 4);
        break;
      case DataMode::uniform:
        v[i] = static_cast<T>(std::uniform_real_distribution<double>(-1.0, 1.0)(rng));
        break;
      case DataMode::bytes:
        // The fuzz input's own bytes (cycled, offset per tensor) as values in [-2, 2), or the generator when none.
        v[i] = c.bytes.empty() ? static_cast<T>(std::uniform_real_distribution<double>(-1.0, 1.0)(rng))
                               : static_cast<T>((static_cast<int>(c.bytes[(i + stream * 7) % c.bytes.size()]) - 128) /
                                                64.0);
        break;
    }
  }
  return v;
}

template <class T>
std::vector<T> magnitudes(std::vector<T> v) {
  for (T& x : v) x = std::abs(x);
  return v;
}

std::string describe(const Case& c) {
  return tdconv::to_string(c.p) + " (bias " + (c.bias ? "yes" : "no") + ", data " + to_string(c.mode) + ", seed " +
         std::to_string(c.seed) + ")";
}

[[noreturn]] void fail(const Case& c, const std::string& what) {
  std::fprintf(stderr, "diff_fuzz: BUG: %s\n  problem: %s\n", what.c_str(), describe(c).c_str());
  std::abort();
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <class T>
void compare(const Case& c, const std::string& who, const std::vector<T>& got, const std::vector<T>& ref,
             const std::vector<T>& abs_ref) {
  const double rel = c.mode == DataMode::integers ? 0.0 : (std::is_same_v<T, float> ? 1e-4 : 1e-10);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double tol = rel * (1.0 + static_cast<double>(abs_ref[i]));
    const double diff = std::abs(static_cast<double>(got[i]) - static_cast<double>(ref[i]));
    if (!(diff <= tol)) {  // also catches NaN: an element the implementation did not write
      char line[256];
      std::snprintf(line, sizeof line, "%s differs from the reference at flat output index %zu of %zu: got %.9g, "
                    "reference %.9g, tolerance %.3g", who.c_str(), i, ref.size(), static_cast<double>(got[i]),
                    static_cast<double>(ref[i]), tol);
      fail(c, line);
    }
  }
}

// The default plan's backward passes (float32: the adjoint's forward path and the weight-gradient tiles) against
// the reference's, with the same tolerance rule (the bound from the reference on magnitudes), every element
// written, 1 and 2 threads bitwise equal, inputs unchanged.
template <class T>
void check_backward(const Case& c, const tdconv::Plan& plan, const std::vector<T>& src, const std::vector<T>& w) {
  const Problem& p = c.p;
  const auto src_dims = tdconv::src_shape(p), w_dims = tdconv::weights_shape(p), dst_dims = tdconv::dst_shape(p),
             b_dims = tdconv::bias_shape(p);
  const auto n_src = static_cast<std::size_t>(tdconv::element_count(src_dims, "src"));
  const auto n_w = static_cast<std::size_t>(tdconv::element_count(w_dims, "weights"));
  const auto n_b = static_cast<std::size_t>(p.out_channels);
  const std::vector<T> dy = make_data<T>(c, tdconv::element_count(dst_dims, "dst"), 4), dy0 = dy;
  constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> ref_dx(n_src, kNaN), ref_dw(n_w, kNaN), ref_db(n_b, kNaN);
  std::vector<T> abs_dx(n_src, 0), abs_dw(n_w, 0), abs_db(n_b, 0);
  tdconv::reference::backward_data<T>(p, dy.data(), w.data(), ref_dx.data());
  tdconv::reference::backward_weights<T>(p, src.data(), dy.data(), ref_dw.data(), ref_db.data());
  if (c.mode != DataMode::integers) {
    const std::vector<T> abs_src = magnitudes(src), abs_w = magnitudes(w), abs_dy = magnitudes(dy);
    tdconv::reference::backward_data<T>(p, abs_dy.data(), abs_w.data(), abs_dx.data());
    tdconv::reference::backward_weights<T>(p, abs_src.data(), abs_dy.data(), abs_dw.data(), abs_db.data());
  }
  const tdconv::TensorView dy_v = tdconv::view(dy.data(), dst_dims), w_v = tdconv::view(w.data(), w_dims);
  const tdconv::TensorView src_v = tdconv::view(src.data(), src_dims);
  std::vector<T> dx[2], dw[2], db[2];
  for (int threads = 1; threads <= 2; ++threads) {
    omp_set_num_threads(threads);
    std::vector<T>& x = dx[threads - 1] = std::vector<T>(n_src, kNaN);
    std::vector<T>& gw = dw[threads - 1] = std::vector<T>(n_w, kNaN);
    std::vector<T>& gb = db[threads - 1] = std::vector<T>(n_b, kNaN);
    plan.backward_data(dy_v, w_v, tdconv::mutable_view(x.data(), src_dims));
    plan.backward_weights(src_v, dy_v, tdconv::mutable_view(gw.data(), w_dims), tdconv::mutable_view(gb.data(), b_dims));
  }
  compare(c, "backward_data", dx[0], ref_dx, abs_dx);
  compare(c, "backward_weights (weights)", dw[0], ref_dw, abs_dw);
  compare(c, "backward_weights (bias)", db[0], ref_db, abs_db);
  if (!bitwise_equal(dx[0], dx[1]) || !bitwise_equal(dw[0], dw[1]) || !bitwise_equal(db[0], db[1])) {
    fail(c, "a backward pass differs bitwise between 1 and 2 threads");
  }
  if (!bitwise_equal(dy, dy0)) fail(c, "a backward pass modified diff_dst");
}

template <class T>
void run(const Case& c) {
  const Problem& p = c.p;
  const auto src_dims = tdconv::src_shape(p), w_dims = tdconv::weights_shape(p), dst_dims = tdconv::dst_shape(p),
             b_dims = tdconv::bias_shape(p);
  const std::int64_t n_dst = tdconv::element_count(dst_dims, "dst");
  const std::vector<T> src = make_data<T>(c, tdconv::element_count(src_dims, "src"), 1);
  const std::vector<T> w = make_data<T>(c, tdconv::element_count(w_dims, "weights"), 2);
  const std::vector<T> bias = c.bias ? make_data<T>(c, tdconv::element_count(b_dims, "bias"), 3) : std::vector<T>{};
  const std::vector<T> src0 = src, w0 = w, bias0 = bias;
  const T* bias_ptr = c.bias ? bias.data() : nullptr;
  constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

  std::vector<T> ref(static_cast<std::size_t>(n_dst), kNaN), abs_ref(static_cast<std::size_t>(n_dst), 0);
  tdconv::reference::forward<T>(p, src.data(), w.data(), bias_ptr, ref.data());
  if (c.mode != DataMode::integers) {  // integer data is compared exactly: no tolerance, no need for the bound
    const std::vector<T> abs_src = magnitudes(src), abs_w = magnitudes(w), abs_b = magnitudes(bias);
    tdconv::reference::forward<T>(p, abs_src.data(), abs_w.data(), c.bias ? abs_b.data() : nullptr, abs_ref.data());
  }
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i])) fail(c, "the reference left output element " + std::to_string(i) + " unwritten");
  }

  const tdconv::TensorView src_v = tdconv::view(src.data(), src_dims), w_v = tdconv::view(w.data(), w_dims);
  const tdconv::TensorView b_v = c.bias ? tdconv::view(bias.data(), b_dims) : tdconv::TensorView{};
  int accepted = 0;
  for (const std::string& name : tdconv::implementation_names()) {
    std::optional<tdconv::Plan> plan;
    try {
      plan.emplace(p, tdconv::PlanOptions{.implementation = name});
    } catch (const tdconv::Error&) {
      continue;  // this implementation declines the problem
    }
    ++accepted;
    if (g_show) std::fprintf(stderr, "diff_fuzz:   runs on %s\n", name.c_str());
    if (plan->implementation_name() != name) {
      fail(c, "asked for '" + name + "' but got '" + plan->implementation_name() + "'");
    }

    omp_set_num_threads(1);
    std::vector<T> one(static_cast<std::size_t>(n_dst), kNaN);
    plan->forward(src_v, w_v, b_v, tdconv::mutable_view(one.data(), dst_dims));
    compare(c, name + " (1 thread)", one, ref, abs_ref);

    omp_set_num_threads(2);
    const tdconv::PackedWeights packed = plan->pack_weights(w_v);
    std::vector<T> two(static_cast<std::size_t>(n_dst), kNaN);
    plan->forward(src_v, packed, b_v, tdconv::mutable_view(two.data(), dst_dims));
    if (!bitwise_equal(one, two)) fail(c, name + ": 2 threads (packed weights) differ bitwise from 1 thread");
    if (name != "reference") {  // the slowest, and single-threaded: one call with packed weights is enough
      std::vector<T> again(static_cast<std::size_t>(n_dst), kNaN);
      plan->forward(src_v, packed, b_v, tdconv::mutable_view(again.data(), dst_dims));
      if (!bitwise_equal(one, again)) fail(c, name + ": a second call with the same packed weights differs");
    }

    if (!bitwise_equal(src, src0) || !bitwise_equal(w, w0) || !bitwise_equal(bias, bias0)) {
      fail(c, name + " modified its inputs");
    }
  }
  if (accepted == 0) fail(c, "no implementation accepts a valid problem");
  // The default plan picks the first implementation that accepts.
  const tdconv::Plan chosen(p);
  for (const auto& candidate : chosen.candidates()) {
    if (candidate.name == chosen.implementation_name()) break;
    if (candidate.declined_because.empty()) fail(c, "the default plan skipped '" + candidate.name + "', which accepts");
  }
  check_backward<T>(c, chosen, src, w);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::unsetenv("TDCONV_VERBOSE");
  g_show = std::getenv("DIFF_FUZZ_SHOW") != nullptr && *std::getenv("DIFF_FUZZ_SHOW") != '\0';
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const Case c = decode(in);
  try {
    tdconv::validate(c.p);
  } catch (const tdconv::Error&) {
    return 0;  // not a valid problem
  }
  if (tdconv::nominal_macs(c.p) > kMaxMacs) return 0;
  for (const auto& shape : {tdconv::src_shape(c.p), tdconv::weights_shape(c.p), tdconv::dst_shape(c.p)}) {
    if (tdconv::element_count(shape, "tensor") > kMaxElements) return 0;
  }
  if (g_show) std::fprintf(stderr, "diff_fuzz: %s, %.0f MACs\n", describe(c).c_str(), tdconv::nominal_macs(c.p));
  if (c.p.dtype == DType::f32) {
    run<float>(c);
  } else {
    run<double>(c);
  }
  return 0;
}
