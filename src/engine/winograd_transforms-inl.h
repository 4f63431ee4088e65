// Winograd F(2, r) input and output transforms, r = 1, 2 or 3 taps per axis (not necessarily the same on every
// axis), along every axis of a 1D, 2D or 3D tile, vectorised over channels. Included by winograd_kernels.cpp inside
// its per-target namespace (Highway's "-inl.h" convention: no include guard, compiled once per target).
//
// A tile computes 2 outputs per axis of the correlation y[i] = sum g[a] d[i + a] (a sum over every axis) from an
// input patch d of r + 1 values per axis: V = B^T d B (B^T along each axis), products M = V . U with U = G g G^T
// (the transformed kernel, see winograd.cpp), outputs A^T M A.
//   r = 3: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1]
//   r = 2: B^T = [1 -1 0; 0 1 0; 0 -1 1],                 A^T = [1 1 0; 0 1 1]
//   r = 1: B^T = A^T = I (2 x 2): a stride phase of a transposed convolution with 1 tap along that axis
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

// Transform sizes of a tile whose axes have R... taps each (one template argument per axis of the problem, outermost
// first; an axis with 1 tap has a trivial transform: 2 outputs from 2 inputs, each the input times the tap).
template <int... R>
struct TileShape {
  static constexpr int kDims = sizeof...(R);
  static constexpr std::array<int, kDims> kTaps{R...};
  static constexpr int kElements = ((R + 1) * ...);
  // Elements between consecutive patch elements along `axis`: the sizes of the axes after it.
  static constexpr int Step(int axis) {
    int step = 1;
    for (int a = axis + 1; a < kDims; ++a) step *= kTaps[static_cast<std::size_t>(a)] + 1;
    return step;
  }
  // Patch elements before `axis` (outer positions).
  static constexpr int Outer(int axis) {
    int outer = 1;
    for (int a = 0; a < axis; ++a) outer *= kTaps[static_cast<std::size_t>(a)] + 1;
    return outer;
  }
};

// B^T along one line of the patch: elements BASE, BASE + STEP, ... (R = 1: the identity).
template <int R, int BASE, int STEP>
HWY_INLINE void InputTransformLine(V* x) {
  if constexpr (R == 3) {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP], d3 = x[BASE + 3 * STEP];
    x[BASE] = hn::Sub(d0, d2);
    x[BASE + STEP] = hn::Add(d1, d2);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
    x[BASE + 3 * STEP] = hn::Sub(d1, d3);
  } else if constexpr (R == 2) {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP];
    x[BASE] = hn::Sub(d0, d1);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
  }
}

// patch[i]: the input pixel of patch element i (row-major over the axes, R + 1 per axis; null: outside the input,
// read as zero). v[i * e_stride + c] receives element i of the transformed patch, for every channel c.
template <int... R>
void WinogradInput(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride) {
  using S = TileShape<R...>;
  constexpr int kElements = S::kElements;
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = patch[i] ? hn::LoadU(d, patch[i] + c) : hn::Zero(d); });
    Unroll<S::kDims>([&](auto axis) {
      constexpr int kAxisTaps = S::kTaps[axis], kAlpha = kAxisTaps + 1, kStep = S::Step(axis);
      Unroll<kElements>([&](auto base) {
        // one line per position of the other axes
        if constexpr ((base / kStep) % kAlpha == 0) InputTransformLine<kAxisTaps, base, kStep>(x);
      });
    });
    Unroll<kElements>([&](auto i) { hn::StoreU(x[i], d, v + i * e_stride + c); });
  }
}

// m[i * e_stride + c]: the products, one per transformed element. out[j] receives output j (row-major, 2 per axis)
// for every channel, plus the bias (may be null); a null output pointer is outside the output and skipped.
template <int... R>
void WinogradOutput(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                    float* const* out) {
  using S = TileShape<R...>;
  constexpr int kDims = S::kDims, kElements = S::kElements;
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = hn::LoadU(d, m + i * e_stride + c); });
    // A^T along each axis, last axis first, packing the results: after axes kDims-1 .. a, the element
    // (a0 .. a_{a-1}, j_a .. j_{kDims-1}) sits at (a0 .. a_{a-1}) * 2^(kDims-a) + (j_a .. j_{kDims-1}) in binary.
    // An axis of 1 tap (2 elements, 2 outputs) leaves every element where it is.
    Unroll<kDims>([&](auto done) {
      constexpr int kAxis = kDims - 1 - done, kAxisTaps = S::kTaps[kAxis], kAlpha = kAxisTaps + 1;
      constexpr int kInner = IntPow(2, done), kOuter = S::Outer(kAxis);
      if constexpr (kAxisTaps > 1) {
        Unroll<kOuter>([&](auto o) {
          Unroll<kInner>([&](auto j) {
            constexpr int kIn = o * kAlpha * kInner + j;
            V y0, y1;
            if constexpr (kAxisTaps == 3) {
              y0 = hn::Add(hn::Add(x[kIn], x[kIn + kInner]), x[kIn + 2 * kInner]);
              y1 = hn::Sub(hn::Sub(x[kIn + kInner], x[kIn + 2 * kInner]), x[kIn + 3 * kInner]);
            } else {
              y0 = hn::Add(x[kIn], x[kIn + kInner]);
              y1 = hn::Add(x[kIn + kInner], x[kIn + 2 * kInner]);
            }
            // Written at (o * 2 + k) * inner + j <= (o * kAlpha + k) * inner + j: never over an element still to
            // be read (those of this o were read just above, those of earlier o's are done).
            x[(o * 2 + 0) * kInner + j] = y0;
            x[(o * 2 + 1) * kInner + j] = y1;
          });
        });
      }
    });
    const V init = bias ? hn::LoadU(d, bias + c) : hn::Zero(d);
    Unroll<IntPow(2, kDims)>([&](auto j) {
      if (out[j]) hn::StoreU(hn::Add(init, x[j]), d, out[j] + c);
    });
  }
}
