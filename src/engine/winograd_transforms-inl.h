// Winograd F(2, r) input and output transforms, r = 2 or 3 taps, along every axis of a 1D, 2D or 3D tile,
// vectorised over channels. Included by kernels.cpp inside its per-target namespace (Highway's "-inl.h"
// convention: no include guard, compiled once per target).
//
// A tile computes 2 outputs per axis of the correlation y[i] = sum g[a] d[i + a] (a sum over every axis) from an
// input patch d of r + 1 values per axis: V = B^T d B (B^T along each axis), products M = V . U with U = G g G^T
// (the transformed kernel, see winograd.cpp), outputs A^T M A.
//   r = 3: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1]
//   r = 2: B^T = [1 -1 0; 0 1 0; 0 -1 1],                 A^T = [1 1 0; 0 1 1]
// (r = 2: y0 = (d0 - d1) g0 + d1 (g0 + g1), y1 = d1 (g0 + g1) + (d2 - d1) g1.)

// Calls f(std::integral_constant<int, i>) for i < N, unrolled at compile time: the transforms index their vector
// arrays only with constants, so that the compiler keeps them in registers (written as loops, GCC 12 kept them on
// the stack, and Winograd on a 64-channel layer lost a quarter of its speed).
template <int N, class F>
HWY_INLINE void Unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}
constexpr int IntPow(int base, int exponent) { return exponent == 0 ? 1 : base * IntPow(base, exponent - 1); }

// B^T along one line of the patch: elements BASE, BASE + STEP, ...
template <int R, int BASE, int STEP>
HWY_INLINE void InputTransformLine(V* x) {
  if constexpr (R == 3) {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP], d3 = x[BASE + 3 * STEP];
    x[BASE] = hn::Sub(d0, d2);
    x[BASE + STEP] = hn::Add(d1, d2);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
    x[BASE + 3 * STEP] = hn::Sub(d1, d3);
  } else {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP];
    x[BASE] = hn::Sub(d0, d1);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
  }
}

// patch[i]: the input pixel of patch element i (row-major over the DIMS axes, R + 1 per axis; null: outside the
// input, read as zero). v[i * e_stride + c] receives element i of the transformed patch, for every channel c.
template <int DIMS, int R>
void WinogradInput(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride) {
  constexpr int kAlpha = R + 1, kElements = IntPow(kAlpha, DIMS);
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = patch[i] ? hn::LoadU(d, patch[i] + c) : hn::Zero(d); });
    Unroll<DIMS>([&](auto axis) {
      constexpr int kStep = IntPow(kAlpha, DIMS - 1 - axis);  // between consecutive elements along `axis`
      Unroll<kElements>([&](auto base) {
        if constexpr ((base / kStep) % kAlpha == 0) InputTransformLine<R, base, kStep>(x);  // one line per position
      });
    });
    Unroll<kElements>([&](auto i) { hn::StoreU(x[i], d, v + i * e_stride + c); });
  }
}

// m[i * e_stride + c]: the (R + 1)^DIMS products. out[j] receives output j (row-major, 2 per axis) for every
// channel, plus the bias (may be null); a null output pointer is outside the output and skipped.
template <int DIMS, int R>
void WinogradOutput(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                    float* const* out) {
  constexpr int kAlpha = R + 1, kElements = IntPow(kAlpha, DIMS);
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = hn::LoadU(d, m + i * e_stride + c); });
    // A^T along each axis, last axis first, packing the results: after axes DIMS-1 .. a, the element
    // (a0 .. a_{a-1}, j_a .. j_{DIMS-1}) sits at (a0 .. a_{a-1}) * 2^(DIMS-a) + (j_a .. j_{DIMS-1}) in binary.
    Unroll<DIMS>([&](auto done) {
      constexpr int kAxis = DIMS - 1 - done, kInner = IntPow(2, done), kOuter = IntPow(kAlpha, kAxis);
      Unroll<kOuter>([&](auto o) {
        Unroll<kInner>([&](auto j) {
          constexpr int kIn = o * kAlpha * kInner + j;
          V y0, y1;
          if constexpr (R == 3) {
            y0 = hn::Add(hn::Add(x[kIn], x[kIn + kInner]), x[kIn + 2 * kInner]);
            y1 = hn::Sub(hn::Sub(x[kIn + kInner], x[kIn + 2 * kInner]), x[kIn + 3 * kInner]);
          } else {
            y0 = hn::Add(x[kIn], x[kIn + kInner]);
            y1 = hn::Add(x[kIn + kInner], x[kIn + 2 * kInner]);
          }
          // Written at (o * 2 + k) * inner + j <= (o * kAlpha + k) * inner + j: never over an element still to be
          // read (those of this o were read just above, those of earlier o's are done).
          x[(o * 2 + 0) * kInner + j] = y0;
          x[(o * 2 + 1) * kInner + j] = y1;
        });
      });
    });
    const V init = bias ? hn::LoadU(d, bias + c) : hn::Zero(d);
    Unroll<IntPow(2, DIMS)>([&](auto j) {
      if (out[j]) hn::StoreU(hn::Add(init, x[j]), d, out[j] + c);
    });
  }
}
